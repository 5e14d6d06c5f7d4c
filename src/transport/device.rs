//! Linux TPM character devices: `/dev/tpmrm0` (kernel resource manager) and
//! `/dev/tpm0` (raw, one open file at a time). One `write()` carries the whole
//! command; the response is then read, possibly in pieces
//! (drivers/char/tpm/tpm-dev-common.c).
//!
//! - The device is opened with `O_NONBLOCK`: the kernel then runs the command in
//!   its work queue and `poll()` says when the response is there, so the wait for
//!   it is bounded by [`Limits::answer`].
//! - `/dev/tpm0` answers a second `open()` with EBUSY: tried again for up to
//!   [`Limits::busy`], then an error that names the process holding it (from
//!   `/proc/*/fd`, where visible).
//! - `/dev/tpm0` is closed between operations ([`Transport::release`]), so other
//!   processes can use the TPM while this one is idle; `/dev/tpmrm0` stays open
//!   (closing it would make the kernel flush what this process loaded).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use super::wait::{read_response, Exchange};
use super::{command_name, Limits, Phase, Transport, TransportError};

/// What a device that does not answer may be doing.
const HINT: &str = "the TPM may be failing (see dmesg)";

/// True for a kernel resource manager device (`/dev/tpmrm0`), which isolates each
/// open file and flushes what it loaded when it closes.
pub(crate) fn is_resource_manager(path: &str) -> bool {
    path.contains("tpmrm")
}

/// A TPM character device (or anything with the same write-then-read semantics,
/// such as one end of a socketpair to `swtpm chardev`).
#[derive(Debug)]
pub struct DeviceTransport {
    file: Option<File>,
    path: String,
    limits: Limits,
    /// Opened by path (so it can be closed and opened again), and not a resource
    /// manager.
    releasable: bool,
}

impl DeviceTransport {
    /// Opens `path` read-write with the default bounds.
    ///
    /// # Errors
    /// No such device, permission denied (the `tss` group), busy (/dev/tpm0 held by
    /// another process past the bound), other I/O errors.
    pub fn open(path: &str) -> Result<Self, TransportError> {
        Self::open_with(path, Limits::default())
    }

    /// Opens `path` read-write; every later wait is bounded by `limits`.
    ///
    /// # Errors
    /// As [`DeviceTransport::open`].
    pub fn open_with(path: &str, limits: Limits) -> Result<Self, TransportError> {
        let file = open_device(path, limits.busy)?;
        Ok(DeviceTransport {
            file: Some(file),
            path: path.to_string(),
            limits,
            releasable: !is_resource_manager(path),
        })
    }

    /// Uses an already open descriptor (kept open for the transport's life).
    pub fn from_fd(fd: OwnedFd, label: &str) -> Self {
        DeviceTransport {
            file: Some(File::from(fd)),
            path: label.to_string(),
            limits: Limits::default(),
            releasable: false,
        }
    }
}

/// Opens the device, waiting up to `busy` while another process has it open.
fn open_device(path: &str, busy: Duration) -> Result<File, TransportError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        let r = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
            .open(path);
        let e = match r {
            Ok(f) => return Ok(f),
            Err(e) => e,
        };
        match e.kind() {
            io::ErrorKind::NotFound => {
                return Err(TransportError::NoDevice {
                    path: path.to_string(),
                })
            }
            io::ErrorKind::PermissionDenied => {
                return Err(TransportError::PermissionDenied {
                    path: path.to_string(),
                })
            }
            _ if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                let waited = start.elapsed();
                if waited >= busy {
                    return Err(TransportError::Busy {
                        path: path.to_string(),
                        holder: holder_of(path),
                        waited_ms: waited.as_millis(),
                    });
                }
                std::thread::sleep(delay.min(busy - waited));
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            _ if e.kind() == io::ErrorKind::Interrupted => {}
            _ => return Err(TransportError::io(path, e)),
        }
    }
}

/// Who has `path` open, from `/proc/*/fd` (other users' processes are visible to
/// root only): "process 1234 (ssh-agent)", or a sentence saying it is not known.
pub(crate) fn holder_of(path: &str) -> String {
    match crate::holders::processes_with(|target| target.as_os_str() == path) {
        None => "another process (/proc is not mounted, so which one is unknown)".into(),
        Some(found) => crate::holders::describe(&found)
            .unwrap_or_else(|| "another process (not visible in /proc to this user)".into()),
    }
}

impl DeviceTransport {
    fn exchange(&mut self, command: &[u8], ex: &Exchange) -> Result<Vec<u8>, TransportError> {
        if self.file.is_none() {
            self.file = Some(open_device(&self.path, self.limits.busy)?);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(ex.closed(Phase::Command, None));
        };
        // The driver needs the whole command in one write().
        let n = file.write(command).map_err(|e| ex.io(e))?;
        if n != command.len() {
            return Err(ex.io(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write of a TPM command",
            )));
        }
        read_response(file, ex)
    }
}

impl Transport for DeviceTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let ex = Exchange::new(
            self.path.clone(),
            command_name(command),
            self.limits.answer,
            HINT,
        );
        let r = self.exchange(command, &ex);
        if matches!(r, Err(TransportError::Timeout { .. })) && self.releasable {
            // The kernel still runs the command, and closing the file waits for it:
            // let a thread do that, and open the device again for the next command.
            if let Some(f) = self.file.take() {
                std::thread::spawn(move || drop(f));
            }
        }
        r
    }

    fn release(&mut self) -> bool {
        if !self.releasable {
            return false;
        }
        self.file = None;
        true
    }

    fn acquire(&mut self) -> Result<(), TransportError> {
        if self.file.is_none() {
            self.file = Some(open_device(&self.path, self.limits.busy)?);
        }
        Ok(())
    }
}
