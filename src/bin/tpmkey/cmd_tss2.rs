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
        what: "password of the key file",
        arg: None,
        arg_flag: None,
        file,
        file_flag: Some("--passphrase-file"),
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

/// Exports `label` of `token` as a TSS2 PRIVATE KEY file to `out` (created 0600
/// before anything is asked, never overwritten, removed again on failure) or stdout.
pub fn export(
    app: &App,
    token: &str,
    label: &str,
    out: Option<&Path>,
    no_password: bool,
    passphrase_file: Option<&Path>,
    user_pin: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, String>,
) -> Result<(), String> {
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
    let r = export_to(
        app,
        token,
        label,
        file.as_mut(),
        no_password,
        passphrase_file,
        user_pin,
    );
    if let (Err(_), Some(p), Some(f)) = (&r, out, file.take()) {
        drop(f);
        let _ = std::fs::remove_file(p);
    }
    let exported_to = r?;
    if let Some(p) = out {
        eprintln!(
            "key {label} of token {token} exported to {} (TSS2 PRIVATE KEY, {}); the key in the store keeps its PIN",
            p.display(),
            if no_password { "no password" } else { "with its own password" }
        );
    }
    if no_password {
        eprintln!("note: the exported key has no password: whoever can read the file and use this TPM can sign with it");
    } else if exported_to.no_da {
        eprintln!("note: this key is marked noDA (its token has no PIN), so the TPM does not lock out password guesses on the exported copy: choose a long password");
    }
    Ok(())
}

/// The part of [`export`] that can fail after `file` is made: the new password,
/// the PIN, the copy in the TPM, the file written (or stdout).
fn export_to(
    app: &App,
    token: &str,
    label: &str,
    file: Option<&mut std::fs::File>,
    no_password: bool,
    passphrase_file: Option<&Path>,
    user_pin: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, String>,
) -> Result<tpmkey::app::Tss2Export, String> {
    let password = if no_password {
        Zeroizing::new(Vec::new())
    } else {
        new_password(passphrase_file)?
    };
    let pin = user_pin()?;
    let exported = app
        .key_export_tss2(token, label, &pin, &password)
        .map_err(|e| e.to_string())?;
    match file {
        Some(f) => f
            .write_all(exported.pem.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("writing the key file: {e}"))?,
        None => print!("{}", exported.pem),
    }
    Ok(exported)
}
