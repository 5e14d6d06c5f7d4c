//! Moving command and response frames to and from a TPM. Transports know nothing of
//! response codes; retries and sessions live in [`crate::tpm::Tpm`].

mod device;
mod socket;

pub use device::DeviceTransport;
pub use socket::{Framing, SocketAddr, SocketTransport};

use std::io;

/// The largest response accepted (the Linux driver's TPM_BUFSIZE is 4096; swtpm's
/// default buffer is 4096 too).
pub const MAX_RESPONSE: usize = 4096;

/// Moves one command frame to the TPM and its response back.
pub trait Transport: Send {
    /// Sends `command` and returns the whole response frame.
    ///
    /// # Errors
    /// I/O failures, a peer that closed the connection, a response over
    /// [`MAX_RESPONSE`] or with a size field under 10.
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
}

/// Why a TPM could not be reached, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The device node does not exist.
    #[error("{path}: no such device; is there a TPM 2.0 (ls /dev/tpm*; enable it in the firmware setup)? For a simulator set TPMKEY_TCTI=swtpm:host=127.0.0.1,port=2321")]
    NoDevice {
        /// The path tried.
        path: String,
    },
    /// Not allowed to open the device.
    #[error("{path}: permission denied; add yourself to the `tss` group (sudo usermod -aG tss $USER) and log in again")]
    PermissionDenied {
        /// The path tried.
        path: String,
    },
    /// /dev/tpm0 is exclusive.
    #[error("{path}: device busy; another process holds the raw TPM; use /dev/tpmrm0 (the kernel resource manager)")]
    Busy {
        /// The path tried.
        path: String,
    },
    /// Nothing listens at the address.
    #[error("{addr}: connection refused; is swtpm running? e.g. swtpm socket --tpm2 --server type=tcp,port=2321 --ctrl type=tcp,port=2322 --tpmstate dir=/tmp/tpm --flags not-need-init,startup-clear")]
    Refused {
        /// The address tried.
        addr: String,
    },
    /// A TPM 1.2 answered.
    #[error("{0}: this is a TPM 1.2; tpmkey needs a TPM 2.0 (check firmware settings: some machines can switch the TPM to 2.0 mode)")]
    Tpm12(String),
    /// The response was not a TPM 2.0 frame.
    #[error("{what}: malformed response from the TPM ({detail})")]
    Malformed {
        /// Where.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// Any other I/O failure.
    #[error("{what}: {source}")]
    Io {
        /// Where.
        what: String,
        /// The error.
        source: io::Error,
    },
}

impl TransportError {
    /// An I/O error at `what`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        TransportError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Checks a response header read from `what` and returns the whole frame size.
///
/// # Errors
/// A TPM 1.2 tag, or a size under 10 or over [`MAX_RESPONSE`].
pub(crate) fn response_size(header: &[u8; 10], what: &str) -> Result<usize, TransportError> {
    let tag = u16::from_be_bytes([header[0], header[1]]);
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if tag == 0x00C4 || tag == 0x00C5 || tag == 0x00C6 {
        return Err(TransportError::Tpm12(what.to_string()));
    }
    if tag != 0x8001 && tag != 0x8002 {
        return Err(TransportError::Malformed {
            what: what.to_string(),
            detail: format!("tag {tag:#06x}"),
        });
    }
    if !(10..=MAX_RESPONSE).contains(&size) {
        return Err(TransportError::Malformed {
            what: what.to_string(),
            detail: format!("size {size}"),
        });
    }
    Ok(size)
}

/// Reads one response frame (header first, then the rest) from `r`.
///
/// # Errors
/// As [`response_size`], and I/O errors.
pub(crate) fn read_response(r: &mut impl io::Read, what: &str) -> Result<Vec<u8>, TransportError> {
    let mut header = [0u8; 10];
    r.read_exact(&mut header)
        .map_err(|e| TransportError::io(what, e))?;
    let size = response_size(&header, what)?;
    let mut frame = Vec::with_capacity(size);
    frame.extend_from_slice(&header);
    frame.resize(size, 0);
    if let Some(rest) = frame.get_mut(10..) {
        r.read_exact(rest)
            .map_err(|e| TransportError::io(what, e))?;
    }
    Ok(frame)
}
