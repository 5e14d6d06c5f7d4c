//! Reading a response with a deadline: poll(2) before every read, so that a TPM
//! that stops answering — or announces more bytes than it sends — is an error when
//! the bound runs out, never a hang; and what went wrong is said in words (the TPM,
//! the command, how much of the response came), never as a raw I/O text.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{response_size, Phase, TransportError};

/// One exchange with a TPM: who, which command, until when.
pub(crate) struct Exchange {
    /// The TPM, for messages ("127.0.0.1:2321", "/dev/tpm0").
    pub tpm: String,
    /// The command, for messages ("TPM2_Sign").
    pub command: String,
    /// When it must be over.
    pub deadline: Instant,
    /// The bound, for messages.
    pub limit: Duration,
    /// What may be wrong when the TPM does not answer.
    pub hint: &'static str,
}

impl Exchange {
    /// An exchange of `command` with `tpm`, bounded by `limit` from now.
    pub fn new(tpm: String, command: String, limit: Duration, hint: &'static str) -> Exchange {
        let started = Instant::now();
        Exchange {
            tpm,
            command,
            deadline: started + limit,
            limit,
            hint,
        }
    }

    /// Time left, None when the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// The TPM did not answer in time; `received` = (bytes, announced).
    pub fn timeout(&self, received: Option<(usize, usize)>) -> TransportError {
        TransportError::Timeout {
            tpm: self.tpm.clone(),
            command: self.command.clone(),
            bound_ms: self.limit.as_millis(),
            received,
            hint: self.hint.into(),
        }
    }

    /// The TPM closed the connection at `phase`.
    pub fn closed(&self, phase: Phase, received: Option<(usize, usize)>) -> TransportError {
        TransportError::Closed {
            tpm: self.tpm.clone(),
            command: self.command.clone(),
            phase,
            received,
        }
    }

    /// Another I/O error, with the TPM and the command named.
    pub fn io(&self, e: io::Error) -> TransportError {
        TransportError::io(format!("the TPM at {} ({})", self.tpm, self.command), e)
    }
}

/// Why a bounded read stopped.
enum Stop {
    Deadline,
    Closed,
    Failed(io::Error),
}

/// Waits until `fd` is readable (or closed) or the deadline passes.
fn wait_readable(fd: &impl AsFd, ex: &Exchange) -> Result<bool, io::Error> {
    loop {
        let Some(left) = ex.remaining() else {
            return Ok(false);
        };
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

/// Fills `buf` before the deadline; returns how far it got when it could not.
fn fill(r: &mut (impl Read + AsFd), buf: &mut [u8], ex: &Exchange) -> Result<(), (Stop, usize)> {
    let mut got = 0;
    while got < buf.len() {
        match wait_readable(r, ex) {
            Ok(true) => {}
            Ok(false) => return Err((Stop::Deadline, got)),
            Err(e) => return Err((Stop::Failed(e), got)),
        }
        let Some(rest) = buf.get_mut(got..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) => return Err((Stop::Closed, got)),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Err((Stop::Closed, got))
            }
            Err(e) => return Err((Stop::Failed(e), got)),
        }
    }
    Ok(())
}

/// Reads `buf.len()` bytes that come before the TPM frame (the simulator's size
/// prefix, its trailing acknowledgement).
pub(crate) fn read_framing(
    r: &mut (impl Read + AsFd),
    buf: &mut [u8],
    ex: &Exchange,
    phase: Phase,
) -> Result<(), TransportError> {
    fill(r, buf, ex).map_err(|(stop, _)| match stop {
        Stop::Deadline => ex.timeout(None),
        Stop::Closed => ex.closed(phase, None),
        Stop::Failed(e) => ex.io(e),
    })
}

/// Reads one response frame (header first, then the size it announces) before the
/// deadline.
///
/// # Errors
/// [`TransportError::Timeout`], [`TransportError::Closed`] (before any byte: the
/// TPM never answered; after: the response was cut), a bad header (TPM 1.2, size
/// out of bounds), other I/O errors.
pub(crate) fn read_response(
    r: &mut (impl Read + AsFd),
    ex: &Exchange,
) -> Result<Vec<u8>, TransportError> {
    let mut header = [0u8; 10];
    fill(r, &mut header, ex).map_err(|(stop, got)| match stop {
        Stop::Deadline => ex.timeout(None),
        Stop::Closed if got == 0 => ex.closed(Phase::Answer, None),
        Stop::Closed => ex.closed(Phase::Response, None),
        Stop::Failed(e) => ex.io(e),
    })?;
    let size = response_size(&header, &ex.tpm)?;
    let mut frame = Vec::with_capacity(size);
    frame.extend_from_slice(&header);
    frame.resize(size, 0);
    if let Some(rest) = frame.get_mut(10..) {
        fill(r, rest, ex).map_err(|(stop, got)| match stop {
            Stop::Deadline => ex.timeout(Some((10 + got, size))),
            Stop::Closed => ex.closed(Phase::Response, Some((10 + got, size))),
            Stop::Failed(e) => ex.io(e),
        })?;
    }
    Ok(frame)
}
