//! `tpmkey cert request|selfsign|import|list|export|rm`: thin wrappers over
//! [`tpmkey::cert`].

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tpmkey::app::App;

use crate::cli::CertCmd;
use crate::user_pin_for;

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
