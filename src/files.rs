//! Reading the files tpmkey is given or keeps (store files, key files to import,
//! sealed files, PIN and passphrase files) without ever blocking or running out of
//! memory: the path must name a regular file, checked before it is opened and again
//! on the open descriptor (`fstat`), which is opened with `O_NONBLOCK` (a FIFO
//! cannot hold the open) and, inside the store, `O_NOFOLLOW`; and at most a fixed
//! number of bytes is read. A FIFO, a device, a socket or a directory in a file's
//! place, or a symlink to `/dev/zero`, is an error naming the path, at once.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The most any file tpmkey reads may hold: 1 MiB. The largest legitimate ones (an
/// RSA-4096 OpenSSH key, a token or key record) are a few KiB.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O error (missing, no permission, …).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Something other than a regular file in the file's place.
    #[error("{path}: {kind}, not a regular file; tpmkey reads only regular files here")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// "a FIFO", "a character device", "a directory", …
        kind: &'static str,
    },
    /// More bytes than any file of this kind has.
    #[error("{path}: larger than {limit} bytes, more than any file tpmkey reads here holds; is it the right file?")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
}

/// Whether the last component of a path may be a symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Follow it (files a user names: `~/.ssh/id_ecdsa` may be a link), the target
    /// must be a regular file.
    Follow,
    /// Refuse it (`O_NOFOLLOW`): the store's own files, which tpmkey writes by
    /// rename and never as links.
    Refuse,
}

fn kind_of(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else {
        Some("not a file")
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `path` for reading if it is a regular file: looked at first (so a device
/// is never opened), then opened non-blocking and close-on-exec, and looked at
/// again on the descriptor (so nothing swapped in between gets through).
///
/// # Errors
/// [`FileError::NotRegular`] for anything but a regular file (with
/// [`Links::Refuse`], also for a symbolic link); I/O errors.
pub fn open_regular(path: &Path, links: Links) -> Result<File, FileError> {
    let before = match links {
        Links::Follow => std::fs::metadata(path),
        Links::Refuse => std::fs::symlink_metadata(path),
    }
    .map_err(io_error(path))?;
    if let Some(kind) = kind_of(before.file_type()) {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC | nix::libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(io_error(path))?;
    let after = file.metadata().map_err(io_error(path))?;
    if let Some(kind) = kind_of(after.file_type()) {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
        return Err(FileError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("the file was replaced while it was opened"),
        });
    }
    Ok(file)
}

/// Reads a whole regular file of at most `limit` bytes into a buffer that is never
/// reallocated (a key or a PIN leaves no stray copies) and is zeroized on drop.
///
/// # Errors
/// As [`open_regular`]; [`FileError::TooLarge`] past `limit`.
pub fn read_regular(
    path: &Path,
    links: Links,
    limit: u64,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let file = open_regular(path, links)?;
    read_bounded(file, path, limit)
}

/// [`read_regular`] with [`MAX_FILE_SIZE`].
///
/// # Errors
/// As [`read_regular`].
pub fn read_file(path: &Path, links: Links) -> Result<Zeroizing<Vec<u8>>, FileError> {
    read_regular(path, links, MAX_FILE_SIZE)
}

fn read_bounded(file: File, path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let too_large = || FileError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let size = file.metadata().map_err(io_error(path))?.len();
    if size > limit {
        return Err(too_large());
    }
    // One byte more than the file says it has, to see it grow (or a /proc file
    // that reports 0) without reading past the limit.
    let cap = usize::try_from(size.min(limit) + 1).map_err(|_| too_large())?;
    let mut buf = Zeroizing::new(vec![0u8; cap]);
    let mut len = 0;
    let mut reader = file.take(limit + 1);
    loop {
        if len == buf.len() {
            if len as u64 > limit {
                return Err(too_large());
            }
            // The file grew: move to a larger buffer, wiping the old one.
            let mut bigger = Zeroizing::new(vec![0u8; (len * 2).min(limit as usize + 1)]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path)(e)),
        }
    }
    if len as u64 > limit {
        return Err(too_large());
    }
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tpmkey-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn regular_files_read_whole_and_bounded() {
        let d = scratch("reg");
        let f = d.join("f");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(&read_file(&f, Links::Refuse).unwrap()[..], b"hello");
        std::fs::write(&f, vec![7u8; 100]).unwrap();
        assert!(matches!(
            read_regular(&f, Links::Follow, 99),
            Err(FileError::TooLarge { limit: 99, .. })
        ));
        assert_eq!(read_regular(&f, Links::Follow, 100).unwrap().len(), 100);
        std::fs::write(&f, b"").unwrap();
        assert!(read_file(&f, Links::Follow).unwrap().is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fifos_devices_directories_and_links_fail_at_once() {
        let d = scratch("odd");
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let zero = d.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let target = d.join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let start = Instant::now();
        for (p, links, kind) in [
            (&fifo, Links::Follow, "a FIFO"),
            (&zero, Links::Follow, "a character device"),
            (&zero, Links::Refuse, "a symbolic link"),
            (&d, Links::Follow, "a directory"),
            (&link, Links::Refuse, "a symbolic link"),
        ] {
            match read_file(p, links) {
                Err(FileError::NotRegular { path, kind: k }) => {
                    assert_eq!((&path, k), (p, kind));
                    let msg = FileError::NotRegular { path, kind: k }.to_string();
                    assert!(msg.contains(&p.display().to_string()), "{msg}");
                }
                other => panic!("{}: {other:?}", p.display()),
            }
        }
        assert_eq!(&read_file(&link, Links::Follow).unwrap()[..], b"x");
        assert!(start.elapsed() < Duration::from_secs(1));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
