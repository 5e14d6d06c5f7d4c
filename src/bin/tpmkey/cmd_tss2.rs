//! `tpmkey key import` of a TSS2 PRIVATE KEY file and `tpmkey key export --tss2`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tpmkey::app::App;
use tpmkey::keys::tss2::Tss2Key;
use zeroize::Zeroizing;

use crate::pin::{read_pin, PinSource};

/// Where the key file's password comes from: `--passphrase-file`, else
/// TPMKEY_PASSPHRASE, else a prompt.
fn password_source<'a>(file: Option<&'a Path>, prompt: &'a str) -> PinSource<'a> {
    PinSource {
        arg: None,
        file,
        env: "TPMKEY_PASSPHRASE",
        prompt,
    }
}

/// Imports the TSS2 key file `text` (read from `path`) into `token` as `label`:
/// its password (none for an emptyAuth key) is asked first, then the user PIN.
pub fn import(
    app: &App,
    token: &str,
    label: &str,
    path: &Path,
    text: &[u8],
    passphrase_file: Option<&Path>,
    user_pin: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, String>,
) -> Result<(), String> {
    let key = Tss2Key::from_pem(text).map_err(|e| format!("{}: {e}", path.display()))?;
    key.usable_algorithm()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let old = if key.empty_auth {
        Zeroizing::new(Vec::new())
    } else {
        read_pin(&password_source(
            passphrase_file,
            "Password of the TPM key file: ",
        ))?
    };
    let pin = user_pin()?;
    let k = app
        .key_import_tss2(token, label, &key, &old, &pin)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "key {label} ({}) imported into token {token}, id {}: a copy under tpmkey's PIN made in the TPM (TPM2_ObjectChangeAuth); {} is unchanged and keeps its own password",
        k.algorithm,
        k.id,
        path.display()
    );
    Ok(())
}

/// The password for an exported key file: `--passphrase-file` or TPMKEY_PASSPHRASE,
/// else asked twice; never empty (`--no-password` is the way to have none).
fn new_password(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>, String> {
    let given = file.is_some() || std::env::var_os("TPMKEY_PASSPHRASE").is_some();
    let password = read_pin(&password_source(
        file,
        "Password for the exported key file: ",
    ))?;
    if !given {
        let again = read_pin(&password_source(None, "Same password again: "))?;
        if again != password {
            return Err("the two passwords differ; nothing was exported".into());
        }
    }
    if password.is_empty() {
        return Err("the password is empty: use --no-password for a key file without one".into());
    }
    Ok(password)
}

/// Exports `label` of `token` as a TSS2 PRIVATE KEY file to `out` (created 0600,
/// never overwritten) or stdout.
pub fn export(
    app: &App,
    token: &str,
    label: &str,
    out: Option<&Path>,
    no_password: bool,
    passphrase_file: Option<&Path>,
    user_pin: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, String>,
) -> Result<(), String> {
    let password = if no_password {
        Zeroizing::new(Vec::new())
    } else {
        new_password(passphrase_file)?
    };
    let pin = user_pin()?;
    // Refuse an existing --out before the TPM does any work.
    let mut file = match out {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .map_err(|e| format!("{}: {e} (the key file is never overwritten)", p.display()))?,
        ),
        None => None,
    };
    let exported = app.key_export_tss2(token, label, &pin, &password);
    let exported = match exported {
        Ok(x) => x,
        Err(e) => {
            if let (Some(p), Some(f)) = (out, file.take()) {
                drop(f);
                let _ = std::fs::remove_file(p);
            }
            return Err(e.to_string());
        }
    };
    match (out, file.as_mut()) {
        (Some(p), Some(f)) => {
            f.write_all(exported.pem.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("{}: {e}", p.display()))?;
            eprintln!(
                "key {label} of token {token} exported to {} (TSS2 PRIVATE KEY, {}); the key in the store keeps its PIN",
                p.display(),
                if no_password { "no password" } else { "with its own password" }
            );
        }
        _ => print!("{}", exported.pem),
    }
    if no_password {
        eprintln!("note: the exported key has no password: whoever can read the file and use this TPM can sign with it");
    } else if exported.no_da {
        eprintln!("note: this key is marked noDA (its token has no PIN), so the TPM does not lock out password guesses on the exported copy: choose a long password");
    }
    Ok(())
}
