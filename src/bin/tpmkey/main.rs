//! `tpmkey`: keep SSH and signing keys inside the TPM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tpmkey::app::{parse_algorithm, App};
use tpmkey::keys::templates::SrkKind;
use tpmkey::tcti::Tcti;

mod cmd_cert;
mod cmd_check;
mod cmd_info;
mod cmd_seal;
mod pin;

use pin::{read_pin, PinSource};

/// Keep SSH and signing keys inside the TPM.
#[derive(Parser)]
#[command(name = "tpmkey", version, about, long_about = None)]
struct Cli {
    /// TPM to use, as a TCTI string (default: $TPMKEY_TCTI, $TPM2TOOLS_TCTI, device:/dev/tpmrm0).
    #[arg(long, short = 'T', global = true, value_name = "TCTI")]
    tcti: Option<String>,
    /// Key store directory (default: $TPMKEY_STORE, $XDG_DATA_HOME/tpmkey, ~/.local/share/tpmkey).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what TPM this is: manufacturer, firmware, algorithms, PCR banks, lockout state, SRK.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Walk through why a TPM cannot be used here, and what to do about it.
    Check,
    /// Print N random bytes from the TPM, in hex.
    Random {
        /// How many bytes.
        n: usize,
    },
    /// Set up the key store for this TPM: find or derive the storage root key and pin it.
    Init {
        /// Storage root key type.
        #[arg(long, value_parser = ["ecc", "rsa"], default_value = "ecc")]
        srk: String,
        /// Leave the SRK transient (derived again by every process) instead of
        /// making it persistent at 0x81000001.
        #[arg(long)]
        no_persist: bool,
    },
    /// Tokens: groups of keys sharing a user PIN and an SO PIN.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// X.509 certificates on a token: requests and self-signed certificates signed
    /// by the TPM, import, list, export, removal.
    #[command(subcommand)]
    Cert(cmd_cert::CertCmd),
    /// User PINs.
    #[command(subcommand)]
    Pin(PinCmd),
    /// Seal a secret (stdin or --in, at most 128 bytes) to this TPM under a PCR
    /// policy and/or a PIN; write the sealed file (JSON, 0600, not secret).
    Seal {
        /// PCRs whose current values the secret is sealed to: BANK:LIST, banks
        /// joined with '+', e.g. sha256:7,16 or sha256:7+sha1:0; empty = none
        /// (only with --with-pin).
        #[arg(long, default_value = "", value_name = "PCRS")]
        pcrs: String,
        /// Also require a PIN (PolicyAuthValue; the TPM counts wrong guesses).
        #[arg(long)]
        with_pin: bool,
        /// Read the PIN from the first line of this file (else $TPMKEY_PIN, else a prompt).
        #[arg(long, requires = "with_pin")]
        pin_file: Option<PathBuf>,
        /// Read the secret from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// The sealed file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Unseal a secret sealed with `tpmkey seal`; writes the raw bytes to stdout or --out.
    Unseal {
        /// The sealed file.
        file: PathBuf,
        /// Write the secret to this file (0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Read the PIN from the first line of this file (else $TPMKEY_PIN, else a prompt).
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// Sign data (stdin or --in) with a key of the store; prints the signature in
    /// hex (ECDSA r||s, RSA PKCS#1 v1.5), after checking it against the public key.
    Sign {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long)]
        label: String,
        /// The token's user PIN (prompted for when needed and absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Read the user PIN from the first line of this file.
        #[arg(long)]
        pin_file: Option<PathBuf>,
        /// The hash of the data: sha256, sha384, sha512 or sha1.
        #[arg(long, default_value = "sha256")]
        hash: String,
        /// Read the data from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// PCRs: read, extend.
    #[command(subcommand)]
    Pcr(PcrCmd),
    /// Print authorized_keys lines for the keys (comment = key label).
    SshPubkey {
        /// Only this token.
        #[arg(long)]
        token: Option<String>,
        /// Only this key.
        #[arg(long)]
        label: Option<String>,
    },
}

#[derive(Subcommand)]
enum PcrCmd {
    /// Extend a SHA-256 PCR with SHA-256(DATA) (TPM2_PCR_Extend). PCRs 16 (debug)
    /// and 23 (application) only, unless --force.
    Extend {
        /// The PCR.
        index: u8,
        /// The string whose SHA-256 is extended into the PCR.
        #[arg(long)]
        data: String,
        /// Allow PCRs other than 16 and 23 (this breaks secrets sealed to them until reboot).
        #[arg(long)]
        force: bool,
    },
    /// Print PCR values, e.g. `tpmkey pcr read sha256:7,16`.
    Read {
        /// The PCRs: BANK:LIST, banks joined with '+'.
        pcrs: String,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Add a token.
    Add {
        /// Its label.
        #[arg(long)]
        label: String,
        /// User PIN (prompted for when absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Security officer PIN, to reset the user PIN (prompted for when absent).
        #[arg(long)]
        sopin: Option<String>,
        /// No PIN: keys are used with no login at all.
        #[arg(long, conflicts_with_all = ["userpin", "sopin"])]
        no_pin: bool,
    },
    /// List tokens.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a token and its keys.
    Rm {
        /// Its label.
        #[arg(long)]
        label: String,
    },
}

#[derive(Subcommand)]
enum PinCmd {
    /// Change the user PIN (needs the old one).
    Change {
        /// The token.
        #[arg(long)]
        token: String,
        /// The current user PIN.
        #[arg(long)]
        userpin: Option<String>,
        /// The new user PIN.
        #[arg(long)]
        new_userpin: Option<String>,
    },
    /// Set a new user PIN with the SO PIN.
    Reset {
        /// The token.
        #[arg(long)]
        token: String,
        /// The SO PIN.
        #[arg(long)]
        sopin: Option<String>,
        /// The new user PIN.
        #[arg(long)]
        new_userpin: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Make a key inside the TPM.
    Add {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long)]
        label: String,
        /// ecc256, ecc384, rsa2048, rsa3072 or rsa4096.
        #[arg(long, default_value = "ecc256")]
        algorithm: String,
        /// The token's user PIN (prompted for when needed and absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Read the user PIN from the first line of this file.
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// Move an existing private key into the TPM (OpenSSH, PEM PKCS#8/SEC1/PKCS#1).
    Import {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long)]
        label: String,
        /// The private key file.
        file: PathBuf,
        /// The token's user PIN (prompted for when needed and absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Read the user PIN from the first line of this file.
        #[arg(long)]
        pin_file: Option<PathBuf>,
        /// Read the key file's passphrase from the first line of this file
        /// (else $TPMKEY_PASSPHRASE, else a prompt).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// List keys.
    List {
        /// Only this token.
        #[arg(long)]
        token: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a key.
    Rm {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long)]
        label: String,
    },
}

fn tcti(cli: &Cli) -> Result<Tcti, tpmkey::Error> {
    match &cli.tcti {
        Some(s) => s
            .parse()
            .map_err(|e: tpmkey::tcti::TctiError| tpmkey::Error::Usage(e.to_string())),
        None => Tcti::from_env().map_err(|e| tpmkey::Error::Usage(e.to_string())),
    }
}

/// The user PIN for using `token`'s keys: none for a no-PIN token, else from the
/// argument, the file, TPMKEY_PIN or a prompt.
pub(crate) fn user_pin_for(
    app: &App,
    token: &str,
    arg: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    let t = app.store.read_token(token).map_err(|x| x.to_string())?;
    if t.no_pin {
        return Ok(zeroize::Zeroizing::new(Vec::new()));
    }
    read_pin(&PinSource {
        arg,
        file,
        env: "TPMKEY_PIN",
        prompt: "User PIN: ",
    })
}

fn run(cli: &Cli) -> Result<(), String> {
    let e = |e: tpmkey::Error| e.to_string();
    let app = || -> Result<App, String> {
        App::open(cli.store.clone(), tcti(cli).map_err(e)?).map_err(e)
    };
    match &cli.command {
        Command::Info { json } => {
            let mut tpm = tpmkey::Tpm::open(&tcti(cli).map_err(e)?).map_err(e)?;
            cmd_info::run(&mut tpm, *json).map_err(e)
        }
        Command::Check => {
            if cmd_check::run(cli.tcti.as_deref(), cli.store.clone()) {
                Ok(())
            } else {
                Err("the TPM cannot be used; see the FAIL line above".into())
            }
        }
        Command::Random { n } => {
            let mut tpm = tpmkey::Tpm::open(&tcti(cli).map_err(e)?).map_err(e)?;
            let bytes = tpmkey::random::get_random(&mut tpm, *n).map_err(e)?;
            println!("{}", tpmkey::store::to_hex(&bytes));
            Ok(())
        }
        Command::Init { srk, no_persist } => {
            let kind = if srk == "rsa" {
                SrkKind::Rsa
            } else {
                SrkKind::Ecc
            };
            let r = app()?.init(kind, !*no_persist).map_err(e)?;
            let what = if r.persistent {
                "persistent SRK at 0x81000001"
            } else {
                "transient SRK derived from the standard template"
            };
            if r.already {
                println!("already initialized; {what}, Name {}", r.name);
            } else {
                println!("initialized; {what}, Name {} (pinned)", r.name);
            }
            Ok(())
        }
        Command::Token(TokenCmd::Add {
            label,
            userpin,
            sopin,
            no_pin,
        }) => {
            let app = app()?;
            if *no_pin {
                app.token_add(label, None).map_err(e)?;
            } else {
                let user = read_pin(&PinSource {
                    arg: userpin.as_deref(),
                    file: None,
                    env: "TPMKEY_PIN",
                    prompt: "New user PIN: ",
                })?;
                let so = read_pin(&PinSource {
                    arg: sopin.as_deref(),
                    file: None,
                    env: "TPMKEY_SOPIN",
                    prompt: "New SO PIN: ",
                })?;
                app.token_add(label, Some((&user, &so))).map_err(e)?;
            }
            println!("token {label} added");
            Ok(())
        }
        Command::Token(TokenCmd::List { json }) => {
            let app = app()?;
            let mut rows = Vec::new();
            for l in app.store.token_labels().map_err(|x| x.to_string())? {
                match app.store.read_token(&l) {
                    Ok(t) => {
                        let n = app.store.read_keys(&l).map(|(k, _)| k.len()).unwrap_or(0);
                        rows.push((t.label, t.no_pin, n));
                    }
                    Err(err) => eprintln!("tpmkey: {err}"),
                }
            }
            if *json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(l, np, n)| serde_json::json!({"label": l, "pin": !np, "keys": n}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for (l, np, n) in rows {
                    println!(
                        "{l}\t{}\t{n} key(s)",
                        if np { "no PIN" } else { "user PIN + SO PIN" }
                    );
                }
            }
            Ok(())
        }
        Command::Token(TokenCmd::Rm { label }) => {
            app()?.token_rm(label).map_err(e)?;
            println!("token {label} removed");
            Ok(())
        }
        Command::Key(KeyCmd::Add {
            token,
            label,
            algorithm,
            userpin,
            pin_file,
        }) => {
            let app = app()?;
            let alg = parse_algorithm(algorithm).map_err(e)?;
            let pin = user_pin_for(&app, token, userpin.as_deref(), pin_file.as_deref())?;
            let k = app.key_add(token, label, alg, &pin).map_err(e)?;
            println!(
                "key {label} ({}) added to token {token}, id {}",
                k.algorithm, k.id
            );
            Ok(())
        }
        Command::Key(KeyCmd::Import {
            token,
            label,
            file,
            userpin,
            pin_file,
            passphrase_file,
        }) => {
            let app = app()?;
            let text = zeroize::Zeroizing::new(
                std::fs::read(file).map_err(|x| format!("{}: {x}", file.display()))?,
            );
            let key = tpmkey::keys::keyfile::parse_private_key(&text, || {
                read_pin(&PinSource {
                    arg: None,
                    file: passphrase_file.as_deref(),
                    env: "TPMKEY_PASSPHRASE",
                    prompt: "Passphrase of the key file: ",
                })
                .map_err(tpmkey::Error::Usage)
            })
            .map_err(|x| format!("{}: {x}", file.display()))?;
            let pin = user_pin_for(&app, token, userpin.as_deref(), pin_file.as_deref())?;
            let k = app.key_import(token, label, &key, &pin).map_err(e)?;
            println!(
                "key {label} ({}) imported into token {token}, id {}",
                k.algorithm, k.id
            );
            Ok(())
        }
        Command::Key(KeyCmd::List { token, json }) => {
            let (keys, bad) = app()?.key_list(token.as_deref()).map_err(e)?;
            for b in bad {
                eprintln!("tpmkey: {b}");
            }
            if *json {
                let v: Vec<_> = keys.iter().map(|(t, k)| serde_json::json!({"token": t, "label": k.label, "id": k.shown_id(), "algorithm": k.algorithm, "imported": k.imported, "created": k.created})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for (t, k) in keys {
                    println!("{t}\t{}\t{}\tid {}", k.label, k.algorithm, k.shown_id());
                }
            }
            Ok(())
        }
        Command::Key(KeyCmd::Rm { token, label }) => {
            let app = app()?;
            let _lock = app.store.lock().map_err(|x| x.to_string())?;
            let (keys, _) = app.store.read_keys(token).map_err(|x| x.to_string())?;
            let k = keys
                .iter()
                .find(|k| &k.label == label)
                .ok_or_else(|| format!("token {token:?} has no key labelled {label:?}"))?;
            app.store
                .remove_key(token, &k.id)
                .map_err(|x| x.to_string())?;
            println!("key {label} removed from token {token}");
            Ok(())
        }
        Command::Pin(PinCmd::Change {
            token,
            userpin,
            new_userpin,
        }) => {
            let app = app()?;
            let old = read_pin(&PinSource {
                arg: userpin.as_deref(),
                file: None,
                env: "TPMKEY_PIN",
                prompt: "Current user PIN: ",
            })?;
            let new = read_pin(&PinSource {
                arg: new_userpin.as_deref(),
                file: None,
                env: "TPMKEY_NEW_PIN",
                prompt: "New user PIN: ",
            })?;
            app.pin_change(token, &old, &new).map_err(e)?;
            println!("user PIN of token {token} changed");
            Ok(())
        }
        Command::Pin(PinCmd::Reset {
            token,
            sopin,
            new_userpin,
        }) => {
            let app = app()?;
            let so = read_pin(&PinSource {
                arg: sopin.as_deref(),
                file: None,
                env: "TPMKEY_SOPIN",
                prompt: "SO PIN: ",
            })?;
            let new = read_pin(&PinSource {
                arg: new_userpin.as_deref(),
                file: None,
                env: "TPMKEY_NEW_PIN",
                prompt: "New user PIN: ",
            })?;
            app.pin_reset(token, &so, &new).map_err(e)?;
            println!("user PIN of token {token} reset");
            Ok(())
        }
        Command::Seal {
            pcrs,
            with_pin,
            pin_file,
            input,
            out,
        } => cmd_seal::seal(
            &app()?,
            pcrs,
            *with_pin,
            pin_file.as_deref(),
            input.as_deref(),
            out,
        ),
        Command::Unseal {
            file,
            out,
            pin_file,
        } => cmd_seal::unseal(
            &tcti(cli).map_err(e)?,
            file,
            out.as_deref(),
            pin_file.as_deref(),
        ),
        Command::Sign {
            token,
            label,
            userpin,
            pin_file,
            hash,
            input,
        } => {
            let app = app()?;
            let pin = user_pin_for(&app, token, userpin.as_deref(), pin_file.as_deref())?;
            cmd_seal::sign(&app, token, label, &pin, hash, input.as_deref())
        }
        Command::Cert(cmd) => cmd_cert::run(&app()?, cmd),
        Command::Pcr(PcrCmd::Extend { index, data, force }) => {
            cmd_seal::pcr_extend(&tcti(cli).map_err(e)?, *index, data, *force)
        }
        Command::Pcr(PcrCmd::Read { pcrs }) => cmd_seal::pcr_read(&tcti(cli).map_err(e)?, pcrs),
        Command::SshPubkey { token, label } => {
            let lines = app()?
                .ssh_pubkeys(token.as_deref(), label.as_deref())
                .map_err(e)?;
            if lines.is_empty() {
                return Err("no keys match; add one with `tpmkey key add`".into());
            }
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("tpmkey: {msg}");
            ExitCode::FAILURE
        }
    }
}
