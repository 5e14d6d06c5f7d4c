//! swtpm and the Microsoft TPM simulator over TCP or a unix socket.
//!
//! - `swtpm:` framing: raw TPM frames on the data socket (what tpm2-tss's swtpm TCTI
//!   sends); swtpm's control channel is not needed when swtpm runs with
//!   `--flags not-need-init,startup-clear`.
//! - `mssim:` framing: `u32 TPM_SEND_COMMAND (8) || u8 locality || u32 size ||
//!   command`, answered by `u32 size || response || u32 0` (ms-tpm-20-ref
//!   TpmTcpProtocol.h). On the first connection, TPM_SIGNAL_POWER_ON and
//!   TPM_SIGNAL_NV_ON go to the platform port (port+1) when something listens
//!   there, as tpm2-tss does.
//!
//! Both serve one connection at a time: while one client is connected, the next
//! one's commands wait unanswered. [`Transport::release`] closes the connection
//! between operations (the simulator keeps what was loaded), the next command
//! connects again. Commands go out with `MSG_NOSIGNAL`: a TPM that went away is an
//! error, never a SIGPIPE in the host program that loaded the PKCS#11 module.

use std::io::{self, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self as sock, MsgFlags};

use super::wait::{read_framing, read_response, Exchange};
use super::{command_name, Limits, Phase, Transport, TransportError, MAX_RESPONSE};

const TPM_SEND_COMMAND: u32 = 8;
const TPM_SIGNAL_POWER_ON: u32 = 1;
const TPM_SIGNAL_NV_ON: u32 = 11;

/// What a socket TPM that does not answer may be doing.
const HINT: &str = "is the simulator stopped, or is another client holding its one connection?";

/// Where the simulator listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddr {
    /// TCP host and data port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Data port.
        port: u16,
    },
    /// A unix stream socket.
    Unix {
        /// Its path.
        path: String,
    },
}

impl std::fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            SocketAddr::Unix { path } => f.write_str(path),
        }
    }
}

/// The framing spoken on the data socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Raw TPM frames (swtpm).
    Raw,
    /// Microsoft simulator framing.
    Mssim,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl Stream {
    /// Sends all of `data` before the deadline, without SIGPIPE.
    fn send_all(&mut self, mut data: &[u8], ex: &Exchange) -> Result<(), TransportError> {
        while !data.is_empty() {
            let left = ex.remaining().ok_or_else(|| ex.timeout(None))?;
            let set = match self {
                Stream::Tcp(s) => s.set_write_timeout(Some(left)),
                Stream::Unix(s) => s.set_write_timeout(Some(left)),
            };
            set.map_err(|e| ex.io(e))?;
            match sock::send(self.as_fd().as_raw_fd(), data, MsgFlags::MSG_NOSIGNAL) {
                Ok(0) => return Err(ex.closed(Phase::Command, None)),
                Ok(n) => data = data.get(n..).unwrap_or_default(),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {}
                Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) => {
                    return Err(ex.closed(Phase::Command, None))
                }
                Err(e) => return Err(ex.io(io::Error::from(e))),
            }
        }
        Ok(())
    }
}

/// A TPM simulator reached over a socket.
pub struct SocketTransport {
    addr: SocketAddr,
    framing: Framing,
    limits: Limits,
    stream: Option<Stream>,
}

impl std::fmt::Debug for SocketTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketTransport")
            .field("addr", &self.addr)
            .field("framing", &self.framing)
            .field("connected", &self.stream.is_some())
            .finish()
    }
}

fn refused_or(addr: &SocketAddr, ex: &Exchange, e: io::Error) -> TransportError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => TransportError::Refused {
            addr: addr.to_string(),
        },
        io::ErrorKind::PermissionDenied => TransportError::PermissionDenied {
            path: addr.to_string(),
        },
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ex.timeout(None),
        _ => ex.io(e),
    }
}

/// Connects within the exchange's deadline. A unix socket whose listen queue is
/// full (swtpm keeps one) refuses a non-blocking connect with EAGAIN: tried again
/// until the deadline instead of blocking without bound.
fn connect(addr: &SocketAddr, ex: &Exchange) -> Result<Stream, TransportError> {
    match addr {
        SocketAddr::Tcp { host, port } => {
            let targets = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| refused_or(addr, ex, e))?;
            let mut last = None;
            for target in targets {
                let left = ex.remaining().ok_or_else(|| ex.timeout(None))?;
                match TcpStream::connect_timeout(&target, left) {
                    Ok(s) => {
                        s.set_nodelay(true).map_err(|e| ex.io(e))?;
                        return Ok(Stream::Tcp(s));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(match last {
                Some(e) => refused_or(addr, ex, e),
                None => TransportError::Refused {
                    addr: addr.to_string(),
                },
            })
        }
        SocketAddr::Unix { path } => {
            let ua = sock::UnixAddr::new(path.as_str())
                .map_err(|e| refused_or(addr, ex, io::Error::from(e)))?;
            let mut delay = Duration::from_millis(1);
            loop {
                let fd: OwnedFd = sock::socket(
                    sock::AddressFamily::Unix,
                    sock::SockType::Stream,
                    sock::SockFlag::SOCK_CLOEXEC | sock::SockFlag::SOCK_NONBLOCK,
                    None,
                )
                .map_err(|e| ex.io(io::Error::from(e)))?;
                match sock::connect(fd.as_raw_fd(), &ua) {
                    Ok(()) => {
                        let s = UnixStream::from(fd);
                        s.set_nonblocking(false).map_err(|e| ex.io(e))?;
                        return Ok(Stream::Unix(s));
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => {
                        let left = ex.remaining().ok_or_else(|| ex.timeout(None))?;
                        std::thread::sleep(delay.min(left));
                        delay = (delay * 2).min(Duration::from_millis(50));
                    }
                    Err(e) => return Err(refused_or(addr, ex, io::Error::from(e))),
                }
            }
        }
    }
}

/// Powers on a Microsoft simulator through its platform port, if one listens.
fn platform_power_on(host: &str, port: u16) {
    let Some(platform) = port.checked_add(1) else {
        return;
    };
    let Ok(addrs) = (host, platform).to_socket_addrs() else {
        return;
    };
    let Some(Ok(mut s)) = addrs
        .take(1)
        .map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)))
        .next()
    else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    for signal in [TPM_SIGNAL_POWER_ON, TPM_SIGNAL_NV_ON] {
        let mut ack = [0u8; 4];
        // MSG_NOSIGNAL: a simulator that closed this channel is no SIGPIPE (the
        // CLI leaves SIGPIPE at its default).
        let sent = sock::send(s.as_raw_fd(), &signal.to_be_bytes(), MsgFlags::MSG_NOSIGNAL);
        if sent != Ok(4) || s.read_exact(&mut ack).is_err() {
            return;
        }
    }
}

impl SocketTransport {
    /// Connects to `addr` with `framing` and the default bounds.
    ///
    /// # Errors
    /// Connection refused (is swtpm running?), no connection within the bound,
    /// other I/O errors.
    pub fn connect(addr: SocketAddr, framing: Framing) -> Result<Self, TransportError> {
        Self::connect_with(addr, framing, Limits::default())
    }

    /// Connects to `addr` with `framing`; every later wait is bounded by `limits`.
    ///
    /// # Errors
    /// As [`SocketTransport::connect`].
    pub fn connect_with(
        addr: SocketAddr,
        framing: Framing,
        limits: Limits,
    ) -> Result<Self, TransportError> {
        if let (Framing::Mssim, SocketAddr::Tcp { host, port }) = (framing, &addr) {
            platform_power_on(host, *port);
        }
        let mut t = SocketTransport {
            addr,
            framing,
            limits,
            stream: None,
        };
        t.acquire()?;
        Ok(t)
    }

    fn exchange_for(&self, command: &[u8]) -> Exchange {
        Exchange::new(
            self.addr.to_string(),
            command_name(command),
            self.limits.answer,
            HINT,
        )
    }

    fn exchange(&mut self, command: &[u8], ex: &Exchange) -> Result<Vec<u8>, TransportError> {
        if self.stream.is_none() {
            self.stream = Some(connect(&self.addr, ex)?);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(ex.closed(Phase::Command, None));
        };
        match self.framing {
            Framing::Raw => {
                stream.send_all(command, ex)?;
                read_response(stream, ex)
            }
            Framing::Mssim => {
                let mut frame = Vec::with_capacity(command.len() + 9);
                frame.extend_from_slice(&TPM_SEND_COMMAND.to_be_bytes());
                frame.push(0); // locality 0
                frame.extend_from_slice(&(command.len() as u32).to_be_bytes());
                frame.extend_from_slice(command);
                stream.send_all(&frame, ex)?;
                let mut len = [0u8; 4];
                read_framing(stream, &mut len, ex, Phase::Answer)?;
                let len = u32::from_be_bytes(len) as usize;
                if !(10..=MAX_RESPONSE).contains(&len) {
                    return Err(TransportError::Malformed {
                        what: ex.tpm.clone(),
                        detail: format!("simulator frame size {len}"),
                    });
                }
                let frame = read_response(stream, ex)?;
                if frame.len() != len {
                    return Err(TransportError::Malformed {
                        what: ex.tpm.clone(),
                        detail: "simulator frame size disagrees with the TPM header".into(),
                    });
                }
                let mut ack = [0u8; 4];
                read_framing(stream, &mut ack, ex, Phase::Response)?;
                Ok(frame)
            }
        }
    }
}

/// A swtpm that did not answer while other processes are connected to it: they
/// are named (swtpm serves one connection at a time, and says nothing of it).
fn name_other_clients(mut e: TransportError, peer: Option<std::net::SocketAddr>) -> TransportError {
    if let (
        TransportError::Timeout {
            received: None,
            hint,
            ..
        },
        Some(peer),
    ) = (&mut e, peer)
    {
        if let Some(who) = crate::holders::describe(&crate::holders::connected_to(peer)) {
            *hint = format!(
                "{who} has a connection to it open, and swtpm serves one client at a time: let it finish or end it (tpm2-abrmd keeps its connection for as long as it runs; tpmkey itself lets go after every operation)"
            );
        }
    }
    e
}

impl Transport for SocketTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let ex = self.exchange_for(command);
        self.exchange(command, &ex).map_err(|e| {
            let peer = match &self.stream {
                Some(Stream::Tcp(s)) => s.peer_addr().ok(),
                _ => None,
            };
            // Out of step (a late answer would be read as the next one's): never
            // used again.
            self.stream = None;
            name_other_clients(e, peer)
        })
    }

    fn release(&mut self) -> bool {
        self.stream = None;
        true
    }

    fn acquire(&mut self) -> Result<(), TransportError> {
        if self.stream.is_none() {
            let ex = Exchange::new(
                self.addr.to_string(),
                "a connection".into(),
                self.limits.answer,
                HINT,
            );
            self.stream = Some(connect(&self.addr, &ex)?);
        }
        Ok(())
    }
}
