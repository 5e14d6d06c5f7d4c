//! TCTI strings, as tpm2-tss and tpm2-tools users know them: `device:/dev/tpmrm0`,
//! `swtpm:host=127.0.0.1,port=2321`, `swtpm:path=/run/swtpm.sock`,
//! `mssim:host=…,port=…`. Looked up from `TPMKEY_TCTI`, then `TPM2TOOLS_TCTI`, then
//! the default `device:/dev/tpmrm0`.

use std::fmt;
use std::str::FromStr;

use crate::transport::{
    DeviceTransport, FlushEpoch, Framing, Limits, SocketAddr, SocketTransport, Transport,
    TransportError,
};

/// The default TPM.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// A parsed TCTI string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tcti {
    /// A character device.
    Device {
        /// Its path.
        path: String,
    },
    /// A simulator socket.
    Socket {
        /// Where.
        addr: SocketAddr,
        /// swtpm (raw) or mssim framing.
        framing: Framing,
    },
}

/// A TCTI string that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("bad TCTI string {input:?}: {reason}; use device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321, swtpm:path=/run/swtpm.sock or mssim:host=127.0.0.1,port=2321")]
pub struct TctiError {
    input: String,
    reason: String,
}

/// Where a TCTI string came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TctiSource {
    /// `TPMKEY_TCTI`.
    TpmkeyEnv,
    /// `TPM2TOOLS_TCTI`.
    Tpm2toolsEnv,
    /// The default.
    Default,
}

impl Tcti {
    /// The TCTI named by the environment, and where it came from.
    ///
    /// # Errors
    /// A variable that does not parse.
    pub fn from_env_with_source() -> Result<(Tcti, TctiSource), TctiError> {
        for (var, src) in [
            ("TPMKEY_TCTI", TctiSource::TpmkeyEnv),
            ("TPM2TOOLS_TCTI", TctiSource::Tpm2toolsEnv),
        ] {
            if let Ok(v) = std::env::var(var) {
                if !v.is_empty() {
                    return Ok((v.parse()?, src));
                }
            }
        }
        Ok((DEFAULT_TCTI.parse()?, TctiSource::Default))
    }

    /// The TCTI named by the environment.
    ///
    /// # Errors
    /// A variable that does not parse.
    pub fn from_env() -> Result<Tcti, TctiError> {
        Self::from_env_with_source().map(|(t, _)| t)
    }

    /// Opens the transport, with the bounds `TPMKEY_TIMEOUT` and
    /// `TPMKEY_BUSY_TIMEOUT` set (see [`Limits::from_env`]).
    ///
    /// # Errors
    /// The TPM cannot be reached; a bad bound in the environment.
    pub fn open(&self) -> Result<Box<dyn Transport>, TransportError> {
        self.open_with(Limits::from_env()?)
    }

    /// Opens the transport with the given bounds.
    ///
    /// # Errors
    /// The TPM cannot be reached (or stays busy past `limits.busy`).
    pub fn open_with(&self, limits: Limits) -> Result<Box<dyn Transport>, TransportError> {
        Ok(match self {
            Tcti::Device { path } => Box::new(DeviceTransport::open_with(path, limits)?),
            Tcti::Socket { addr, framing } => Box::new(SocketTransport::connect_with(
                addr.clone(),
                *framing,
                limits,
            )?),
        })
    }

    /// The flush epoch shared by the processes using this TPM, for a TPM without
    /// a resource manager (see [`FlushEpoch`]).
    pub fn flush_epoch(&self) -> Option<FlushEpoch> {
        if self.has_resource_manager() {
            return None;
        }
        FlushEpoch::for_tpm(&self.canonical_name())
    }

    /// One name per TPM, so that processes naming it differently share one flush
    /// epoch: a device or socket path with its links resolved; a TCP address
    /// resolved, any loopback address as 127.0.0.1 (`localhost`, `::1`).
    fn canonical_name(&self) -> String {
        let real_path = |p: &str| {
            std::fs::canonicalize(p).map_or_else(|_| p.to_string(), |c| c.display().to_string())
        };
        match self {
            Tcti::Device { path }
            | Tcti::Socket {
                addr: SocketAddr::Unix { path },
                ..
            } => real_path(path),
            Tcti::Socket {
                addr: SocketAddr::Tcp { host, port },
                ..
            } => {
                use std::net::ToSocketAddrs;
                match (host.as_str(), *port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                {
                    Some(a) if a.ip().is_loopback() => format!("127.0.0.1:{port}"),
                    Some(a) => a.to_string(),
                    None => format!("{host}:{port}"),
                }
            }
        }
    }

    /// True for the kernel resource manager (`/dev/tpmrm*`). Raw devices and
    /// simulator sockets have none: there, objects a dead process left loaded stay
    /// loaded until someone flushes them.
    pub fn has_resource_manager(&self) -> bool {
        matches!(self, Tcti::Device { path } if crate::transport::is_resource_manager(path))
    }
}

impl FromStr for Tcti {
    type Err = TctiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| TctiError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (kind, conf) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "device" => {
                let path = conf.strip_prefix("path=").unwrap_or(conf);
                Ok(Tcti::Device {
                    path: if path.is_empty() {
                        "/dev/tpmrm0".into()
                    } else {
                        path.into()
                    },
                })
            }
            "swtpm" | "mssim" => {
                let framing = if kind == "swtpm" {
                    Framing::Raw
                } else {
                    Framing::Mssim
                };
                let (mut host, mut port, mut path) = ("localhost".to_string(), 2321u16, None);
                for kv in conf.split(',').filter(|p| !p.is_empty()) {
                    match kv.split_once('=') {
                        Some(("host", v)) if !v.is_empty() => host = v.to_string(),
                        Some(("port", v)) => {
                            port = v
                                .parse()
                                .map_err(|_| err("port must be a number 1-65535"))?
                        }
                        Some(("path", v)) if !v.is_empty() => path = Some(v.to_string()),
                        _ => return Err(err(&format!("unknown option {kv:?}"))),
                    }
                }
                let addr = match path {
                    Some(path) if framing == Framing::Raw => SocketAddr::Unix { path },
                    Some(_) => return Err(err("mssim takes host and port, not path")),
                    None => SocketAddr::Tcp { host, port },
                };
                Ok(Tcti::Socket { addr, framing })
            }
            _ => Err(err("unknown TCTI")),
        }
    }
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tcti::Device { path } => write!(f, "device:{path}"),
            Tcti::Socket {
                addr: SocketAddr::Unix { path },
                ..
            } => write!(f, "swtpm:path={path}"),
            Tcti::Socket {
                addr: SocketAddr::Tcp { host, port },
                framing,
            } => {
                let kind = if *framing == Framing::Raw {
                    "swtpm"
                } else {
                    "mssim"
                };
                write!(f, "{kind}:host={host},port={port}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tpm_named_two_ways_has_one_flush_epoch() {
        let epoch = |t: &str| {
            t.parse::<Tcti>()
                .unwrap()
                .flush_epoch()
                .map(|e| e.path().to_path_buf())
        };
        assert!(epoch("swtpm:host=127.0.0.1,port=2321").is_some());
        assert_eq!(
            epoch("swtpm:host=localhost,port=2321"),
            epoch("swtpm:host=127.0.0.1,port=2321")
        );
        assert_ne!(
            epoch("swtpm:host=127.0.0.1,port=2322"),
            epoch("swtpm:host=127.0.0.1,port=2321")
        );
        // A link to a socket path names the same TPM.
        let dir = std::env::temp_dir().join(format!("tpmkey-epoch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (real, link) = (dir.join("swtpm.sock"), dir.join("link.sock"));
        std::fs::write(&real, b"").unwrap();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let named = |p: &std::path::Path| epoch(&format!("swtpm:path={}", p.display()));
        let (a, b) = (named(&real), named(&link));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(a, b);
        // A raw device, and nothing for the resource manager.
        assert!(epoch("device:/dev/tpm0").is_some());
        assert_eq!(epoch("device:/dev/tpmrm0"), None);
    }

    #[test]
    fn parses_and_round_trips() {
        for s in [
            "device:/dev/tpmrm0",
            "device:/dev/tpm0",
            "swtpm:host=127.0.0.1,port=2321",
            "swtpm:path=/run/swtpm.sock",
            "mssim:host=localhost,port=2321",
        ] {
            let t: Tcti = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            "device".parse::<Tcti>().unwrap(),
            Tcti::Device {
                path: "/dev/tpmrm0".into()
            }
        );
        assert_eq!(
            "swtpm".parse::<Tcti>().unwrap().to_string(),
            "swtpm:host=localhost,port=2321"
        );
        assert_eq!(
            "swtpm:port=5555".parse::<Tcti>().unwrap().to_string(),
            "swtpm:host=localhost,port=5555"
        );
        assert_eq!(
            "device:path=/dev/tpm0".parse::<Tcti>().unwrap().to_string(),
            "device:/dev/tpm0"
        );
    }

    #[test]
    fn rejects_bad_strings() {
        for s in [
            "tabrmd:bus_type=session",
            "swtpm:port=99999",
            "swtpm:colour=blue",
            "mssim:path=/x",
        ] {
            let e = s.parse::<Tcti>().unwrap_err().to_string();
            assert!(e.contains("device:/dev/tpmrm0"), "{e}");
        }
    }
}
