//! swtpm and the Microsoft TPM simulator over TCP or a unix socket.
//!
//! - `swtpm:` framing: raw TPM frames on the data socket (what tpm2-tss's swtpm TCTI
//!   sends); swtpm's control channel is not needed when swtpm runs with
//!   `--flags not-need-init,startup-clear`.
//! - `mssim:` framing: `u32 TPM_SEND_COMMAND (8) || u8 locality || u32 size ||
//!   command`, answered by `u32 size || response || u32 0` (ms-tpm-20-ref
//!   TpmTcpProtocol.h). On connect, TPM_SIGNAL_POWER_ON and TPM_SIGNAL_NV_ON go to
//!   the platform port (port+1) when something listens there, as tpm2-tss does.
//!   swtpm's data port accepts this framing too.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::{read_response, Transport, TransportError, MAX_RESPONSE};

/// How long a socket read or write may block: RSA key generation on a simulator
/// can take seconds.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

const TPM_SEND_COMMAND: u32 = 8;
const TPM_SIGNAL_POWER_ON: u32 = 1;
const TPM_SIGNAL_NV_ON: u32 = 11;

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

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// A TPM simulator reached over a socket.
pub struct SocketTransport {
    addr: SocketAddr,
    framing: Framing,
    stream: Stream,
}

impl std::fmt::Debug for SocketTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketTransport")
            .field("addr", &self.addr)
            .field("framing", &self.framing)
            .finish()
    }
}

fn connect(addr: &SocketAddr) -> Result<Stream, TransportError> {
    let what = addr.to_string();
    let map = |e: io::Error| match e.kind() {
        io::ErrorKind::ConnectionRefused => TransportError::Refused { addr: what.clone() },
        io::ErrorKind::NotFound => TransportError::Refused { addr: what.clone() },
        io::ErrorKind::PermissionDenied => TransportError::PermissionDenied { path: what.clone() },
        _ => TransportError::io(what.clone(), e),
    };
    match addr {
        SocketAddr::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port)).map_err(map)?;
            s.set_nodelay(true).map_err(map)?;
            s.set_read_timeout(Some(IO_TIMEOUT)).map_err(map)?;
            s.set_write_timeout(Some(IO_TIMEOUT)).map_err(map)?;
            Ok(Stream::Tcp(s))
        }
        SocketAddr::Unix { path } => {
            let s = UnixStream::connect(path).map_err(map)?;
            s.set_read_timeout(Some(IO_TIMEOUT)).map_err(map)?;
            s.set_write_timeout(Some(IO_TIMEOUT)).map_err(map)?;
            Ok(Stream::Unix(s))
        }
    }
}

/// Powers on a Microsoft simulator through its platform port, if one listens.
fn platform_power_on(host: &str, port: u16) {
    let Some(platform) = port.checked_add(1) else {
        return;
    };
    let Ok(mut s) = TcpStream::connect((host, platform)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    for signal in [TPM_SIGNAL_POWER_ON, TPM_SIGNAL_NV_ON] {
        let mut ack = [0u8; 4];
        if s.write_all(&signal.to_be_bytes()).is_err() || s.read_exact(&mut ack).is_err() {
            return;
        }
    }
}

impl SocketTransport {
    /// Connects to `addr` with `framing`.
    ///
    /// # Errors
    /// Connection refused (is swtpm running?), other I/O errors.
    pub fn connect(addr: SocketAddr, framing: Framing) -> Result<Self, TransportError> {
        if let (Framing::Mssim, SocketAddr::Tcp { host, port }) = (framing, &addr) {
            platform_power_on(host, *port);
        }
        let stream = connect(&addr)?;
        Ok(SocketTransport {
            addr,
            framing,
            stream,
        })
    }

    fn send(&mut self, command: &[u8]) -> io::Result<()> {
        match self.framing {
            Framing::Raw => self.stream.write_all(command),
            Framing::Mssim => {
                let mut frame = Vec::with_capacity(command.len() + 9);
                frame.extend_from_slice(&TPM_SEND_COMMAND.to_be_bytes());
                frame.push(0); // locality 0
                frame.extend_from_slice(&(command.len() as u32).to_be_bytes());
                frame.extend_from_slice(command);
                self.stream.write_all(&frame)
            }
        }
    }

    fn receive(&mut self) -> Result<Vec<u8>, TransportError> {
        let what = self.addr.to_string();
        match self.framing {
            Framing::Raw => read_response(&mut self.stream, &what),
            Framing::Mssim => {
                let mut len = [0u8; 4];
                self.stream
                    .read_exact(&mut len)
                    .map_err(|e| TransportError::io(&what, e))?;
                let len = u32::from_be_bytes(len) as usize;
                if !(10..=MAX_RESPONSE).contains(&len) {
                    return Err(TransportError::Malformed {
                        what,
                        detail: format!("simulator frame size {len}"),
                    });
                }
                let frame = read_response(&mut self.stream, &what)?;
                if frame.len() != len {
                    return Err(TransportError::Malformed {
                        what,
                        detail: "simulator frame size disagrees with the TPM header".into(),
                    });
                }
                let mut ack = [0u8; 4];
                self.stream
                    .read_exact(&mut ack)
                    .map_err(|e| TransportError::io(&what, e))?;
                Ok(frame)
            }
        }
    }
}

impl Transport for SocketTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        // A simulator serves one connection at a time and may have dropped ours
        // between commands: reconnect once when the command could not be sent.
        if self.send(command).is_err() {
            self.stream = connect(&self.addr)?;
            self.send(command)
                .map_err(|e| TransportError::io(self.addr.to_string(), e))?;
        }
        self.receive()
    }
}
