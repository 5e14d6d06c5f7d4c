//! `tpmkey cert request|selfsign|import|list|export|rm`: thin wrappers over
//! [`tpmkey::cert`].

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use tpmkey::app::App;

use crate::user_pin_for;

/// What `request` and `selfsign` share: the key, the subject, the PIN.
#[derive(Args)]
pub struct Signed {
    /// The token.
    #[arg(long)]
    token: String,
    /// The key's label.
    #[arg(long)]
    key: String,
    /// The subject, RFC 4514: 'CN=alice,O=Example'.
    #[arg(long)]
    subject: String,
    /// Subject alternative names: DNS:host,email:a@b,URI:https://…,IP:1.2.3.4.
    #[arg(long, default_value = "")]
    san: String,
    /// Write it to this file (default: stdout).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The token's user PIN (prompted for when needed and absent).
    #[arg(long)]
    userpin: Option<String>,
    /// Read the user PIN from the first line of this file.
    #[arg(long)]
    pin_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum CertCmd {
    /// Make a PKCS#10 certification request (PEM) for a key, signed by the TPM;
    /// give it to a CA, then `tpmkey cert import` what it returns.
    Request(Signed),
    /// Make an X.509 v3 certificate for a key signed by the key itself (a private
    /// CA, or testing): basicConstraints CA, keyUsage digitalSignature,
    /// keyCertSign and cRLSign, subject key identifier. It is stored on the token with
    /// the key and printed (PEM).
    Selfsign {
        #[command(flatten)]
        signed: Signed,
        /// Days of validity from now.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Put certificates (PEM or DER; one or a chain) on a token: a key's certificate
    /// is attached to the key (its CKA_ID and label), a CA certificate is stored on
    /// its own. Needs no PIN and no TPM.
    Import {
        /// The token.
        #[arg(long)]
        token: String,
        /// The certificate file.
        file: PathBuf,
        /// The label on the token (one certificate only; default: the key's label,
        /// or a CA's common name).
        #[arg(long)]
        label: Option<String>,
        /// Also store a certificate that matches no key and is not a CA's.
        #[arg(long)]
        standalone: bool,
    },
    /// List certificates (the store only, no TPM).
    List {
        /// Only this token.
        #[arg(long)]
        token: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a certificate (PEM, or DER with --der).
    Export {
        /// The token.
        #[arg(long)]
        token: String,
        /// The certificate's label.
        #[arg(long)]
        label: String,
        /// DER instead of PEM.
        #[arg(long)]
        der: bool,
        /// Write it here (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Remove a certificate from a token (its key stays).
    Rm {
        /// The token.
        #[arg(long)]
        token: String,
        /// The certificate's label.
        #[arg(long)]
        label: String,
    },
}

fn e(x: tpmkey::Error) -> String {
    x.to_string()
}

/// Writes `bytes` to `out` (0644: certificates and requests are public) or stdout.
fn write_out(out: Option<&Path>, bytes: &[u8]) -> Result<(), String> {
    match out {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o644)
            .open(p)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|x| format!("{}: {x}", p.display())),
        None => std::io::stdout()
            .write_all(bytes)
            .map_err(|x| format!("stdout: {x}")),
    }
}

fn when(unix: u64) -> String {
    tpmkey::x509::time_text(unix)
}

pub fn run(app: &App, cmd: &CertCmd) -> Result<(), String> {
    match cmd {
        CertCmd::Request(r) => {
            let pin = user_pin_for(app, &r.token, r.userpin.as_deref(), r.pin_file.as_deref())?;
            let pem = app
                .cert_request(&r.token, &r.key, &pin, &r.subject, &r.san)
                .map_err(e)?;
            write_out(r.out.as_deref(), pem.as_bytes())?;
            if let Some(p) = &r.out {
                eprintln!(
                    "certification request for key {} written to {}",
                    r.key,
                    p.display()
                );
            }
            Ok(())
        }
        CertCmd::Selfsign { signed: r, days } => {
            let pin = user_pin_for(app, &r.token, r.userpin.as_deref(), r.pin_file.as_deref())?;
            let pem = app
                .cert_selfsign(&r.token, &r.key, &pin, &r.subject, &r.san, *days)
                .map_err(e)?;
            write_out(r.out.as_deref(), pem.as_bytes())?;
            eprintln!(
                "self-signed certificate stored on token {} with key {}",
                r.token, r.key
            );
            Ok(())
        }
        CertCmd::Import {
            token,
            file,
            label,
            standalone,
        } => {
            let bytes = std::fs::read(file).map_err(|x| format!("{}: {x}", file.display()))?;
            let done = app
                .cert_import(token, &bytes, label.as_deref(), *standalone)
                .map_err(|x| format!("{}: {x}", file.display()))?;
            for i in done {
                let what = match (&i.key, i.already) {
                    (_, true) => "already on the token".to_string(),
                    (Some(k), _) => format!("attached to key {k}"),
                    (None, _) => "stored on its own".to_string(),
                };
                println!("certificate {} ({}): {what}", i.label, i.subject);
                for r in i.replaced {
                    println!("  (replaces the key's earlier certificate {r})");
                }
            }
            Ok(())
        }
        CertCmd::List { token, json } => {
            let list = app.cert_list(token.as_deref()).map_err(e)?;
            if *json {
                let v: Vec<_> = list
                    .iter()
                    .map(|c| {
                        let i = c.info.as_ref();
                        serde_json::json!({
                            "token": c.token,
                            "label": c.record.label,
                            "id": c.record.id,
                            "key": c.key,
                            "private": c.record.encrypted.is_some(),
                            "subject": i.map(|i| i.subject_text.clone()),
                            "issuer": i.map(|i| i.issuer_text.clone()),
                            "serial": i.map(|i| i.serial_hex.clone()),
                            "not_before": i.map(|i| when(i.validity.0)),
                            "not_after": i.map(|i| when(i.validity.1)),
                            "ca": i.map(|i| i.is_ca),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for c in list {
                    let key = c
                        .key
                        .as_ref()
                        .map_or_else(|| "no key".to_string(), |k| format!("key {k}"));
                    match c.info {
                        Some(i) => println!(
                            "{}\t{}\t{key}\t{}\tissuer {}\tuntil {}",
                            c.token,
                            c.record.label,
                            i.subject_text,
                            i.issuer_text,
                            when(i.validity.1)
                        ),
                        None => println!("{}\t{}\t{key}\t(private)", c.token, c.record.label),
                    }
                }
            }
            Ok(())
        }
        CertCmd::Export {
            token,
            label,
            der,
            out,
        } => {
            let bytes = app.cert_export(token, label).map_err(e)?;
            let bytes = if *der {
                bytes
            } else {
                tpmkey::x509::der_to_pem(&bytes).map_err(e)?.into_bytes()
            };
            write_out(out.as_deref(), &bytes)
        }
        CertCmd::Rm { token, label } => {
            app.cert_rm(token, label).map_err(e)?;
            println!("certificate {label} removed from token {token}");
            Ok(())
        }
    }
}
