//! `tpmkey seal`, `unseal`, `sign`, `pcr extend`, `pcr read`: thin wrappers over
//! [`tpmkey::sealed::SealedSecret`], [`tpmkey::app::App::sign_data`] and
//! [`tpmkey::pcr`].

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tpmkey::crypto::hash::HashAlg;
use tpmkey::pcr::{self, PcrSelection};
use tpmkey::sealed::{SealedSecret, MAX_SECRET};
use tpmkey::store::to_hex;
use zeroize::Zeroizing;

use crate::pin::{read_pin, PinSource};

fn e(x: tpmkey::Error) -> String {
    x.to_string()
}

/// A PIN from `--pin-file`, `TPMKEY_PIN` or a prompt, with a message that names
/// only those when none is available (no terminal, e.g. in an initramfs script).
fn pin_from(file: Option<&Path>, prompt: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let src = PinSource {
        what: "PIN",
        arg: None,
        arg_flag: None,
        file,
        file_flag: Some("--pin-file"),
        env: "TPMKEY_PIN",
        prompt,
    };
    read_pin(&src).map_err(|m| {
        if file.is_none() && std::env::var_os("TPMKEY_PIN").is_none() {
            "no PIN given and no terminal to ask on: use --pin-file FILE or TPMKEY_PIN".into()
        } else {
            m
        }
    })
}

/// Reads at most `max` bytes (+1, to tell that there was more) from `path` (a
/// regular file) or stdin, into a buffer that is never reallocated (no stray
/// copies of a secret).
fn read_limited(path: Option<&Path>, max: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut buf = Zeroizing::new(Vec::with_capacity(max + 1));
    let limit = (max + 1) as u64;
    match path {
        Some(p) => tpmkey::files::open_regular(p, tpmkey::files::Links::Follow)
            .map_err(|x| x.to_string())?
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|x| format!("{}: {x}", p.display()))?,
        None => std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|x| format!("reading stdin: {x}"))?,
    };
    Ok(buf)
}

/// Writes `bytes` to `path` as a 0600 file: a temporary file in the same
/// directory, fsync, rename (never a half-written or world-readable file).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let err = |x: std::io::Error| format!("{}: {x}", path.display());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(err)
}

fn parse_hash(s: &str) -> Result<HashAlg, String> {
    match s {
        "sha1" => Ok(HashAlg::Sha1),
        "sha256" => Ok(HashAlg::Sha256),
        "sha384" => Ok(HashAlg::Sha384),
        "sha512" => Ok(HashAlg::Sha512),
        _ => Err(format!(
            "unknown hash {s:?}: use sha256, sha384, sha512 or sha1"
        )),
    }
}

/// `tpmkey seal`.
pub fn seal(
    app: &tpmkey::app::App,
    pcrs: &str,
    with_pin: bool,
    pin_file: Option<&Path>,
    input: Option<&Path>,
    out: &Path,
) -> Result<(), String> {
    let pcrs = PcrSelection::parse(pcrs).map_err(e)?;
    if pcrs.is_empty() && !with_pin {
        return Err("seal: no PCRs and no --with-pin: nothing would protect the secret; give --pcrs (e.g. sha256:7) or --with-pin".into());
    }
    let secret = read_limited(input, MAX_SECRET)?;
    if secret.len() > MAX_SECRET {
        return Err(format!(
            "seal: the secret is larger than {MAX_SECRET} bytes, the most a TPM sealed object holds (MAX_SYM_DATA); seal a random key of at most {MAX_SECRET} bytes and encrypt the data with it"
        ));
    }
    if secret.is_empty() {
        return Err("seal: the secret is empty (give it on stdin or with --in FILE)".into());
    }
    let pin = if with_pin {
        let pin = pin_from(pin_file, "PIN for the sealed secret: ")?;
        if pin_file.is_none() && std::env::var_os("TPMKEY_PIN").is_none() {
            let again = pin_from(None, "The same PIN again: ")?;
            if again != pin {
                return Err("seal: the two PINs differ; nothing was sealed".into());
            }
        }
        Some(pin)
    } else {
        None
    };
    let (mut tpm, srk) = app.connect_srk().map_err(|x| format!("seal: {x}"))?;
    let sealed = SealedSecret::seal(&mut tpm, &srk, &pcrs, pin.as_ref().map(|p| &p[..]), &secret)
        .map_err(|x| format!("seal: {x}"))?;
    write_private(out, sealed.to_json().map_err(e)?.as_bytes())?;
    let what = match (pcrs.is_empty(), with_pin) {
        (false, true) => format!("PCRs {pcrs} and a PIN"),
        (false, false) => format!("PCRs {pcrs}"),
        _ => "a PIN".into(),
    };
    let n = secret.len();
    let unit = if n == 1 { "byte" } else { "bytes" };
    eprintln!("sealed {n} {unit} under {what} to {}", out.display());
    Ok(())
}

/// `tpmkey unseal`: needs no key store; the SRK Name comes from the file.
pub fn unseal(
    tcti: &tpmkey::Tcti,
    file: &Path,
    out: Option<&Path>,
    pin_file: Option<&Path>,
) -> Result<(), String> {
    let bytes = tpmkey::files::read_file(file, tpmkey::files::Links::Follow)
        .map_err(|x| format!("unseal: {x}"))?;
    let sealed =
        SealedSecret::from_json(&bytes).map_err(|x| format!("unseal: {}: {x}", file.display()))?;
    let pin = if sealed.needs_pin() {
        Some(
            pin_from(pin_file, "PIN: ")
                .map_err(|m| format!("unseal: this secret needs its PIN; {m}"))?,
        )
    } else {
        None
    };
    let mut tpm = tpmkey::Tpm::open(tcti).map_err(|x| format!("unseal: {x}"))?;
    let srk = sealed
        .load_srk(&mut tpm)
        .map_err(|x| format!("unseal: {x}"))?;
    let secret = sealed
        .unseal(&mut tpm, &srk, pin.as_ref().map(|p| &p[..]))
        .map_err(|x| format!("unseal: {x}"))?;
    match out {
        Some(p) => write_private(p, &secret),
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(&secret)
                .and_then(|()| o.flush())
                .map_err(|x| format!("unseal: writing stdout: {x}"))
        }
    }
}

/// `tpmkey sign`.
pub fn sign(
    app: &tpmkey::app::App,
    token: &str,
    label: &str,
    pin: &[u8],
    hash: &str,
    input: Option<&Path>,
) -> Result<(), String> {
    let hash = parse_hash(hash)?;
    // Hashed as it is read: data of any size, in constant memory.
    let digest = match input {
        Some(p) => {
            let f = tpmkey::files::open_regular(p, tpmkey::files::Links::Follow)
                .map_err(|x| x.to_string())?;
            hash.hash_reader(f)
                .map_err(|x| format!("{}: {x}", p.display()))?
        }
        None => hash
            .hash_reader(std::io::stdin().lock())
            .map_err(|x| format!("reading stdin: {x}"))?,
    };
    let sig = app
        .sign_digest(token, label, pin, hash, &digest)
        .map_err(|x| format!("sign: {x}"))?;
    println!("{}", to_hex(&sig));
    Ok(())
}

/// `tpmkey pcr extend`.
pub fn pcr_extend(tcti: &tpmkey::Tcti, index: u8, data: &str, force: bool) -> Result<(), String> {
    if !pcr::extend_is_harmless(index) && !force {
        return Err(format!(
            "pcr extend: PCR {index} is not 16 (debug) or 23 (application): extending a boot-chain PCR breaks every secret sealed to it until the next reboot; pass --force if that is what you want"
        ));
    }
    let mut tpm = tpmkey::Tpm::open(tcti).map_err(e)?;
    let digest = HashAlg::Sha256.hash(&[data.as_bytes()]);
    let v = pcr::extend_sha256(&mut tpm, index, &digest).map_err(|x| format!("pcr extend: {x}"))?;
    println!("sha256:{index} {}", to_hex(&v));
    Ok(())
}

/// `tpmkey pcr read`.
pub fn pcr_read(tcti: &tpmkey::Tcti, pcrs: &str) -> Result<(), String> {
    let sel = PcrSelection::parse(pcrs).map_err(e)?;
    let mut tpm = tpmkey::Tpm::open(tcti).map_err(e)?;
    for v in pcr::read(&mut tpm, &sel).map_err(|x| format!("pcr read: {x}"))? {
        println!("{} {}", v.label(), to_hex(&v.value));
    }
    Ok(())
}
