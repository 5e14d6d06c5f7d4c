//! Moving command and response frames to and from a TPM. Transports know nothing of
//! response codes; retries and sessions live in [`crate::tpm::Tpm`].
//!
//! - **Every wait is bounded** ([`Limits`]): a TPM that does not answer a command
//!   within `TPMKEY_TIMEOUT` seconds (default 120: RSA key generation on slow
//!   hardware), or a raw device another process holds for longer than
//!   `TPMKEY_BUSY_TIMEOUT` seconds (default 5), is an error that names the TPM and
//!   the command; a connection closed in the middle of a frame says so.
//! - **A TPM without a resource manager serves one client at a time** (swtpm and the
//!   Microsoft simulator take one connection at a time, `/dev/tpm0` one open file).
//!   Their transports can be let go between operations ([`Transport::release`]) and
//!   come back at the next command; the TPM keeps what was loaded. What another
//!   process may have flushed meanwhile is the business of [`FlushEpoch`] and
//!   [`crate::tpm::Tpm`].

mod device;
mod epoch;
mod socket;
mod wait;

pub(crate) use device::is_resource_manager;
pub use device::DeviceTransport;
pub use epoch::FlushEpoch;
pub use socket::{Framing, SocketAddr, SocketTransport};

use std::io;
use std::time::Duration;

use tpm_commands::constants::TpmCc;

/// The largest response accepted (the Linux driver's TPM_BUFSIZE is 4096; swtpm's
/// default buffer is 4096 too).
pub const MAX_RESPONSE: usize = 4096;

/// How long a command may take by default: RSA key generation on a slow TPM takes
/// tens of seconds.
pub use crate::settings::DEFAULT_ANSWER_TIMEOUT;

/// How long to wait by default for a raw TPM that another process holds.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The bounds on every wait for a TPM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From sending a command to the last byte of its response
    /// (`TPMKEY_TIMEOUT`).
    pub answer: Duration,
    /// For a raw TPM device that another process has open (`TPMKEY_BUSY_TIMEOUT`).
    pub busy: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            answer: DEFAULT_ANSWER_TIMEOUT,
            busy: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

impl Limits {
    /// The defaults, changed by `TPMKEY_TIMEOUT` and `TPMKEY_BUSY_TIMEOUT` (seconds,
    /// decimals allowed: `0.5`).
    ///
    /// # Errors
    /// [`TransportError::BadSetting`] for a value that is not a positive number of
    /// seconds up to a day.
    pub fn from_env() -> Result<Limits, TransportError> {
        Ok(Limits {
            answer: crate::settings::answer_timeout()?,
            busy: crate::settings::seconds_from_env("TPMKEY_BUSY_TIMEOUT")?
                .unwrap_or(DEFAULT_BUSY_TIMEOUT),
        })
    }
}

/// Moves one command frame to the TPM and its response back.
pub trait Transport: Send {
    /// Sends `command` and returns the whole response frame, reconnecting first when
    /// the transport was released.
    ///
    /// # Errors
    /// The TPM cannot be reached or is busy past the bound, it does not answer in
    /// time, it closes the connection, a response over [`MAX_RESPONSE`] or with a
    /// size field under 10, other I/O failures.
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;

    /// Lets other processes at a TPM that serves one client at a time: closes the
    /// connection (swtpm, the simulator) or the raw device, until the next command.
    /// The TPM keeps its loaded objects and sessions. Returns true when something was
    /// closed; a kernel resource manager's connection, or a descriptor this
    /// transport could not open again, is kept (false).
    fn release(&mut self) -> bool {
        false
    }

    /// Opens the connection again after [`Transport::release`] (waiting, within the
    /// busy bound, for another process to let go of a raw device); nothing when it
    /// is open.
    ///
    /// # Errors
    /// As for the first connection.
    fn acquire(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// Which part of an exchange a closed connection cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Sending the command.
    Command,
    /// Waiting for the first byte of the response.
    Answer,
    /// Receiving the response.
    Response,
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
    /// A raw TPM device stayed open in another process for longer than the bound.
    #[error("{path}: the TPM is busy: {holder} has the raw TPM open, and it was not free within {waited_ms} ms (TPMKEY_BUSY_TIMEOUT=seconds waits longer); try again, or use /dev/tpmrm0, the kernel resource manager, which lets processes share the TPM")]
    Busy {
        /// The device.
        path: String,
        /// Who holds it: "process 1234 (ssh-agent)", or why that is unknown.
        holder: String,
        /// How long we waited, in milliseconds.
        waited_ms: u128,
    },
    /// Nothing listens at the address.
    #[error("{addr}: connection refused; is swtpm running? e.g. swtpm socket --tpm2 --server type=tcp,port=2321 --ctrl type=tcp,port=2322 --tpmstate dir=/tmp/tpm --flags not-need-init,startup-clear")]
    Refused {
        /// The address tried.
        addr: String,
    },
    /// The TPM did not answer a command within the bound.
    #[error("the TPM at {tpm} did not answer {command} within {}{}; {hint} (TPMKEY_TIMEOUT=seconds sets the bound)", secs(*bound_ms), progress(*received))]
    Timeout {
        /// The TPM (device path or socket address).
        tpm: String,
        /// The command, e.g. TPM2_Sign.
        command: String,
        /// The bound that ran out, in milliseconds.
        bound_ms: u128,
        /// Bytes of the response received and announced, when it started.
        received: Option<(usize, usize)>,
        /// What may be wrong.
        hint: String,
    },
    /// The TPM closed the connection in the middle of an exchange.
    #[error("the TPM at {tpm} closed the connection {}; is swtpm still running?", phase_text(*phase, command, *received))]
    Closed {
        /// The TPM.
        tpm: String,
        /// The command.
        command: String,
        /// Where in the exchange.
        phase: Phase,
        /// Bytes of the response received and announced, when it started.
        received: Option<(usize, usize)>,
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
    /// An environment variable with a value that cannot be used.
    #[error(transparent)]
    BadSetting(#[from] crate::settings::BadSetting),
    /// Any other I/O failure.
    #[error("{what}: {source}")]
    Io {
        /// Where, and during which command.
        what: String,
        /// The error.
        source: io::Error,
    },
}

fn secs(ms: u128) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn progress(received: Option<(usize, usize)>) -> String {
    match received {
        Some((got, of)) => format!(" ({got} of the {of} bytes it announced arrived)"),
        None => String::new(),
    }
}

fn phase_text(phase: Phase, command: &str, received: Option<(usize, usize)>) -> String {
    match phase {
        Phase::Command => format!("while {command} was being sent"),
        Phase::Answer => format!("before answering {command}"),
        Phase::Response => format!("during the response to {command}{}", progress(received)),
    }
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

/// The name of the command in a command frame ("TPM2_Sign"), for messages.
pub(crate) fn command_name(command: &[u8]) -> String {
    match command.get(6..10).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
        Some(cc) => TpmCc(u32::from_be_bytes(cc)).to_string(),
        None => "a command".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_tpm_and_the_command() {
        let e = TransportError::Timeout {
            tpm: "127.0.0.1:2321".into(),
            command: "TPM2_Sign".into(),
            bound_ms: 60_000,
            received: None,
            hint: "is it stuck?".into(),
        };
        assert!(
            e.to_string()
                .starts_with("the TPM at 127.0.0.1:2321 did not answer TPM2_Sign within 60 s;"),
            "{e}"
        );
        let e = TransportError::Closed {
            tpm: "127.0.0.1:2321".into(),
            command: "TPM2_Sign".into(),
            phase: Phase::Response,
            received: Some((12, 100)),
        };
        assert_eq!(
            e.to_string(),
            "the TPM at 127.0.0.1:2321 closed the connection during the response to TPM2_Sign (12 of the 100 bytes it announced arrived); is swtpm still running?"
        );
        assert_eq!(
            command_name(&[0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x5d]),
            "TPM2_Sign"
        );
        assert_eq!(command_name(&[0x80]), "a command");
    }
}
