//! The flush epoch of a TPM without a resource manager: a counter in a small file
//! that the processes sharing one raw TPM (`/dev/tpm0`, a swtpm socket) keep
//! together, so that a process that left keys and a session loaded while it was
//! idle knows, without asking the TPM, whether they may be gone.
//!
//! - A process bumps it **before** it flushes transient objects or sessions it did
//!   not load itself (tpmkey does that only when the TPM is full:
//!   [`crate::tpm::Tpm`]'s stale-handle recovery).
//! - A process reads it whenever it comes back to the TPM after letting go of it. If
//!   it changed, every handle it left loaded may have been flushed and its number
//!   given to another process's object or session: the process forgets them (it does
//!   not flush them: they may be someone else's now) and loads again what it needs.
//!   Using such a handle would be refused by the TPM for authorized handles (the
//!   Name is in cpHash), but a refused HMAC on a dictionary-attack protected object
//!   counts as a failed authorization; the epoch avoids that.
//!
//! The file is `/run/lock/tpmkey-<tpm>.epoch` (`/tmp` when there is no
//! `/run/lock`), world-writable like the directory, since every user of the TPM
//! shares it. It holds a decimal number and nothing secret; it is opened without
//! following symlinks and without blocking, and must be a small regular file. A
//! process that cannot write it still works: it only loses the warning.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directories tried, in order; the first that exists is used by everyone.
const DIRS: [&str; 2] = ["/run/lock", "/tmp"];

/// The flush epoch file of one TPM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushEpoch {
    path: PathBuf,
}

/// `key` with everything but letters, digits, `.`, `_` and `-` turned into `-`.
fn file_key(key: &str) -> String {
    let mut s: String = key
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.len() > 120 {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_bytes());
        s.truncate(80);
        s.push('-');
        for b in digest.iter().take(8) {
            s.push_str(&format!("{b:02x}"));
        }
    }
    s
}

impl FlushEpoch {
    /// The epoch file of the TPM named by `key` (its device path or socket
    /// address), in the first of `/run/lock` and `/tmp` that exists.
    pub fn for_tpm(key: &str) -> Option<FlushEpoch> {
        let dir = DIRS.iter().map(Path::new).find(|d| d.is_dir())?;
        Some(FlushEpoch {
            path: dir.join(format!("tpmkey-{}.epoch", file_key(key))),
        })
    }

    /// An epoch kept in `path`.
    pub fn at(path: PathBuf) -> FlushEpoch {
        FlushEpoch { path }
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self, create: bool) -> Option<File> {
        let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
        let mut o = OpenOptions::new();
        o.read(true).write(true).custom_flags(flags);
        let f = match o.open(&self.path) {
            Ok(f) => f,
            Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                // O_EXCL: a file someone else made in between is opened as theirs.
                match o.clone().create_new(true).mode(0o666).open(&self.path) {
                    Ok(f) => {
                        // Not narrowed by the umask: every user of the TPM shares it.
                        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o666));
                        f
                    }
                    Err(_) => o.open(&self.path).ok()?,
                }
            }
            Err(_) => {
                // Read-only for whoever may not write it.
                let mut ro = OpenOptions::new();
                ro.read(true).custom_flags(flags);
                ro.open(&self.path).ok()?
            }
        };
        let m = f.metadata().ok()?;
        (m.is_file() && m.len() <= 64).then_some(f)
    }

    fn value(f: &mut File) -> u64 {
        let mut s = String::new();
        let _ = f.seek(SeekFrom::Start(0));
        let _ = f.take(64).read_to_string(&mut s);
        s.trim().parse().unwrap_or(0)
    }

    /// The current value (0 when there is no file yet).
    pub fn read(&self) -> u64 {
        self.open(false).map_or(0, |mut f| Self::value(&mut f))
    }

    /// Adds one, under a lock shared with other bumpers (given up after a second:
    /// a bump may then be lost to a concurrent one, never the warning itself, since
    /// the value still changes). Returns the new value, None when the file cannot
    /// be written.
    pub fn bump(&self) -> Option<u64> {
        let mut f = self.open(true)?;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut f = loop {
            match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(locked) => break Ok(locked),
                Err((back, _)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                    f = back;
                }
                Err((back, _)) => break Err(back),
            }
        };
        let file: &mut File = match &mut f {
            Ok(locked) => locked,
            Err(unlocked) => unlocked,
        };
        let next = Self::value(file).wrapping_add(1);
        file.seek(SeekFrom::Start(0)).ok()?;
        file.set_len(0).ok()?;
        file.write_all(format!("{next}\n").as_bytes()).ok()?;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_file_names() {
        assert_eq!(file_key("/dev/tpm0"), "dev-tpm0");
        assert_eq!(file_key("127.0.0.1:2321"), "127.0.0.1-2321");
        assert_eq!(file_key("/run/swtpm sock"), "run-swtpm-sock");
        let long = "x".repeat(300);
        assert!(file_key(&long).len() <= 120);
    }

    #[test]
    fn bump_and_read() {
        let dir = std::env::temp_dir().join(format!("tpmkey-epoch-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let e = FlushEpoch::at(dir.join("e.epoch"));
        let _ = std::fs::remove_file(e.path());
        assert_eq!(e.read(), 0);
        assert_eq!(e.bump(), Some(1));
        assert_eq!(e.bump(), Some(2));
        assert_eq!(e.read(), 2);
        // A FIFO in its place is neither read (no hang) nor used.
        let fifo = FlushEpoch::at(dir.join("fifo.epoch"));
        let _ = std::fs::remove_file(fifo.path());
        nix::unistd::mkfifo(fifo.path(), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(fifo.read(), 0);
        assert_eq!(fifo.bump(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
