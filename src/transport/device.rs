//! Linux TPM character devices: `/dev/tpmrm0` (kernel resource manager) and
//! `/dev/tpm0` (raw, exclusive). One `write()` carries the whole command; the
//! response is then read, possibly in pieces (drivers/char/tpm/tpm-dev-common.c).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;

use super::{read_response, Transport, TransportError};

/// A TPM character device (or anything with the same write-then-read semantics,
/// such as one end of a socketpair to `swtpm chardev`).
#[derive(Debug)]
pub struct DeviceTransport {
    file: File,
    path: String,
}

impl DeviceTransport {
    /// Opens `path` read-write with O_CLOEXEC.
    ///
    /// # Errors
    /// No such device, permission denied (the `tss` group), busy (/dev/tpm0 held by
    /// another process), other I/O errors.
    pub fn open(path: &str) -> Result<Self, TransportError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => TransportError::NoDevice {
                    path: path.to_string(),
                },
                io::ErrorKind::PermissionDenied => TransportError::PermissionDenied {
                    path: path.to_string(),
                },
                _ if e.raw_os_error() == Some(nix::libc::EBUSY) => TransportError::Busy {
                    path: path.to_string(),
                },
                _ => TransportError::io(path, e),
            })?;
        Ok(DeviceTransport {
            file,
            path: path.to_string(),
        })
    }

    /// Uses an already open descriptor.
    pub fn from_fd(fd: OwnedFd, label: &str) -> Self {
        DeviceTransport {
            file: File::from(fd),
            path: label.to_string(),
        }
    }
}

impl Transport for DeviceTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        // The driver needs the whole command in one write().
        let n = self
            .file
            .write(command)
            .map_err(|e| TransportError::io(&self.path, e))?;
        if n != command.len() {
            return Err(TransportError::io(
                &self.path,
                io::Error::new(io::ErrorKind::WriteZero, "short write of a TPM command"),
            ));
        }
        read_response(&mut self.file, &self.path)
    }
}
