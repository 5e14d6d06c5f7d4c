//! `tpmkey`: keep SSH and signing keys inside the TPM.

use std::process::ExitCode;

use clap::Parser;
use tpmkey::app::{parse_algorithm, App};
use tpmkey::keys::templates::SrkKind;
use tpmkey::tcti::Tcti;

mod cli;
mod cmd_cert;
mod cmd_check;
mod cmd_info;
mod cmd_seal;
mod cmd_tss2;
mod pin;
mod progress;

use cli::{Cli, Command, KeyCmd, PcrCmd, PinCmd, TokenCmd};
use pin::{read_pin, PinSource};

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
        what: "user PIN",
        arg,
        arg_flag: Some("--userpin"),
        file,
        file_flag: Some("--pin-file"),
        env: "TPMKEY_PIN",
        prompt: "User PIN: ",
    })
}

/// `--usage`: sign, decrypt or sign,decrypt.
fn parse_usage(s: &str) -> Result<tpmkey::keys::templates::KeyUsage, String> {
    tpmkey::keys::templates::KeyUsage::parse(s)
        .ok_or_else(|| format!("unknown usage {s:?}: use sign, decrypt or sign,decrypt"))
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
                    what: "user PIN",
                    arg: userpin.as_deref(),
                    arg_flag: Some("--userpin"),
                    file: None,
                    file_flag: None,
                    env: "TPMKEY_PIN",
                    prompt: "New user PIN: ",
                })?;
                let so = read_pin(&PinSource {
                    what: "SO PIN",
                    arg: sopin.as_deref(),
                    arg_flag: Some("--sopin"),
                    file: None,
                    file_flag: None,
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
        Command::Token(TokenCmd::Rm { label, force }) => {
            let left = app()?.token_rm(label, *force).map_err(e)?;
            println!("token {label} removed");
            if let Some(left) = left {
                eprintln!("tpmkey: note: {left}");
            }
            Ok(())
        }
        Command::Key(KeyCmd::Add {
            token,
            label,
            algorithm,
            usage,
            userpin,
            pin_file,
        }) => {
            let app = app()?;
            let alg = parse_algorithm(algorithm).map_err(e)?;
            let usage = parse_usage(usage)?;
            let pin = user_pin_for(&app, token, userpin.as_deref(), pin_file.as_deref())?;
            let k = app.key_add_for(token, label, alg, usage, &pin).map_err(e)?;
            println!(
                "key {label} ({}, {}) added to token {token}, id {}",
                k.algorithm,
                usage.name(),
                k.id
            );
            Ok(())
        }
        Command::Key(KeyCmd::Import {
            token,
            label,
            file,
            usage,
            userpin,
            pin_file,
            passphrase_file,
        }) => {
            let app = app()?;
            let text = tpmkey::files::read_file(file, tpmkey::files::Links::Follow)
                .map_err(|x| x.to_string())?;
            if tpmkey::keys::tss2::is_tss2_pem(&text) {
                if usage.is_some() {
                    return Err(format!(
                        "{}: a TPM key file keeps the usage it was made with; leave out --usage",
                        file.display()
                    ));
                }
                return cmd_tss2::import(
                    &app,
                    token,
                    label,
                    file,
                    &text,
                    passphrase_file.as_deref(),
                    || user_pin_for(&app, token, userpin.as_deref(), pin_file.as_deref()),
                );
            }
            let usage = parse_usage(usage.as_deref().unwrap_or("sign"))?;
            let key = tpmkey::keys::keyfile::parse_private_key(&text, || {
                read_pin(&PinSource {
                    what: "passphrase for the key file",
                    arg: None,
                    arg_flag: None,
                    file: passphrase_file.as_deref(),
                    file_flag: Some("--passphrase-file"),
                    env: "TPMKEY_PASSPHRASE",
                    prompt: "Passphrase of the key file: ",
                })
                .map_err(tpmkey::Error::Usage)
            })
            .map_err(|x| format!("{}: {x}", file.display()))?;
            let pin = user_pin_for(&app, token, userpin.as_deref(), pin_file.as_deref())?;
            let k = app
                .key_import_for(token, label, &key, usage, &pin)
                .map_err(e)?;
            println!(
                "key {label} ({}, {}) imported into token {token}, id {}",
                k.algorithm,
                usage.name(),
                k.id
            );
            Ok(())
        }
        Command::Key(KeyCmd::Export {
            token,
            label,
            tss2: _,
            out,
            no_password,
            passphrase_file,
            userpin,
            pin_file,
        }) => {
            let app = app()?;
            cmd_tss2::export(
                &app,
                token,
                label,
                out.as_deref(),
                *no_password,
                passphrase_file.as_deref(),
                || user_pin_for(&app, token, userpin.as_deref(), pin_file.as_deref()),
            )
        }
        Command::Key(KeyCmd::List { token, json }) => {
            let (keys, bad) = app()?.key_list(token.as_deref()).map_err(e)?;
            for b in bad {
                eprintln!("tpmkey: skipped: {b}");
            }
            if *json {
                let v: Vec<_> = keys.iter().map(|(t, k)| serde_json::json!({"token": t, "label": k.label, "id": k.shown_id(), "algorithm": k.algorithm, "usage": App::key_usage(k).map(|u| u.name()), "imported": k.imported, "created": k.created})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for (t, k) in keys {
                    let usage = App::key_usage(&k).map_or("?", |u| u.name());
                    println!(
                        "{t}\t{}\t{}\tid {}\t{usage}",
                        k.label,
                        k.algorithm,
                        k.shown_id()
                    );
                }
            }
            Ok(())
        }
        Command::Key(KeyCmd::Rm { token, label, id }) => {
            let app = app()?;
            let k = app
                .key_rm(token, label.as_deref(), id.as_deref())
                .map_err(e)?;
            println!("key {} (id {}) removed from token {token}", k.label, k.id);
            // A certificate is an object of its own (as in PKCS#11): it stays, and
            // the user is told how to remove it too.
            for c in app.cert_list(Some(token)).unwrap_or_default() {
                if !c.record.id.is_empty() && c.record.id == k.shown_id() {
                    eprintln!(
                        "tpmkey: the certificate {:?} of that key stays on the token; remove it with `tpmkey cert rm --token {token} --label {}`",
                        c.record.label,
                        shell_word(&c.record.label)
                    );
                }
            }
            Ok(())
        }
        Command::Pin(PinCmd::Change {
            token,
            userpin,
            new_userpin,
        }) => {
            let app = app()?;
            let old = read_pin(&PinSource {
                what: "user PIN",
                arg: userpin.as_deref(),
                arg_flag: Some("--userpin"),
                file: None,
                file_flag: None,
                env: "TPMKEY_PIN",
                prompt: "Current user PIN: ",
            })?;
            let new = read_pin(&PinSource {
                what: "new user PIN",
                arg: new_userpin.as_deref(),
                arg_flag: Some("--new-userpin"),
                file: None,
                file_flag: None,
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
                what: "SO PIN",
                arg: sopin.as_deref(),
                arg_flag: Some("--sopin"),
                file: None,
                file_flag: None,
                env: "TPMKEY_SOPIN",
                prompt: "SO PIN: ",
            })?;
            let new = read_pin(&PinSource {
                what: "new user PIN",
                arg: new_userpin.as_deref(),
                arg_flag: Some("--new-userpin"),
                file: None,
                file_flag: None,
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
            let (lines, bad) = app()?
                .ssh_pubkeys(token.as_deref(), label.as_deref())
                .map_err(e)?;
            for b in &bad {
                eprintln!("tpmkey: skipped: {b}");
            }
            if lines.is_empty() {
                return Err(if bad.is_empty() {
                    "no keys match; add one with `tpmkey key add`".into()
                } else {
                    "no readable key matches (see above)".into()
                });
            }
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    end_quietly_when_the_reader_leaves();
    let cli = Cli::parse();
    progress::show_on_terminal();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("tpmkey: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `word` as one POSIX shell word, for commands tpmkey suggests: bare when it
/// is plain, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@=+,".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A reader that stops early (`tpmkey info | head -3`) ends tpmkey as it ends any
/// Unix filter: by SIGPIPE, silently, instead of a panic in `println!` (Rust
/// ignores SIGPIPE by default). TPM sockets are unaffected: commands go out with
/// MSG_NOSIGNAL, and a TPM that went away is an error that says so.
fn end_quietly_when_the_reader_leaves() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_DFL installs no handler code; this runs first in main, before
    // any thread exists.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
