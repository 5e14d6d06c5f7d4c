//! PIN and passphrase input: `--userpin`/`--sopin` (as tpm2_ptool), `--pin-file`,
//! `TPMKEY_PIN` / `TPMKEY_SOPIN`, else a prompt on the terminal with echo off. A
//! file must be a regular file (no FIFO, no device), read with a size limit.

use std::io::{BufRead, Write};

use zeroize::Zeroizing;

/// Where a PIN (or a passphrase) may come from.
pub struct PinSource<'a> {
    /// What is asked for, for messages: "user PIN", "passphrase", …
    pub what: &'a str,
    /// From the command line.
    pub arg: Option<&'a str>,
    /// The option that gives it on the command line, if any ("--userpin").
    pub arg_flag: Option<&'a str>,
    /// A file whose first line is the PIN.
    pub file: Option<&'a std::path::Path>,
    /// The option that names such a file, if any ("--pin-file").
    pub file_flag: Option<&'a str>,
    /// The environment variable to look at.
    pub env: &'a str,
    /// The prompt.
    pub prompt: &'a str,
}

/// Reads a PIN.
pub fn read_pin(src: &PinSource<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Some(p) = src.arg {
        return Ok(Zeroizing::new(p.as_bytes().to_vec()));
    }
    if let Some(f) = src.file {
        let text =
            tpmkey::files::read_file(f, tpmkey::files::Links::Follow).map_err(|e| e.to_string())?;
        let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
        return Ok(Zeroizing::new(
            line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
        ));
    }
    if let Some(v) = std::env::var_os(src.env) {
        return Ok(Zeroizing::new(v.into_encoded_bytes()));
    }
    prompt(src.prompt).map_err(|e| {
        let ways: Vec<&str> = [src.arg_flag, src.file_flag, Some(src.env)]
            .into_iter()
            .flatten()
            .collect();
        let ways = match ways.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        format!(
            "no {} given and none could be asked for ({e}); use {ways}",
            src.what
        )
    })
}

fn prompt(text: &str) -> std::io::Result<Zeroizing<Vec<u8>>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let old = tcgetattr(&tty).map_err(std::io::Error::from)?;
    let mut quiet = old.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    (&tty).write_all(text.as_bytes())?;
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let mut line = Zeroizing::new(String::new());
    let r = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &old);
    r?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\n', '\r']).as_bytes().to_vec(),
    ))
}
