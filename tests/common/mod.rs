//! Test harness: a real swtpm per test, on a free TCP port or a unix socket, with a
//! temporary state directory, killed by PID when the handle drops (also when the
//! test panics). If swtpm is not installed the test fails; it never skips.

#![allow(dead_code)]

#[macro_use]
pub mod p11;
pub mod pki;
pub mod proxy;
pub mod ssh;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// TPM2_GetRandom(8), used to see that a TPM answers.
pub const GET_RANDOM_8: [u8; 12] = [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0x00, 0x08];

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "tpmkey-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn swtpm_binary() -> &'static str {
    if Command::new("swtpm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("swtpm not found: install it (apt-get install swtpm swtpm-tools); the integration tests need a real TPM simulator");
    }
    "swtpm"
}

/// A free loopback TCP port (for servers the tests start: sshd, proxies).
pub fn free_port_pub() -> u16 {
    free_port()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn two_free_ports() -> (u16, u16) {
    (free_port(), free_port())
}

/// A free port whose successor is free too (as far as a bind can tell; a port taken
/// in between makes swtpm fail to start, and the caller tries again).
fn adjacent_free_ports() -> (u16, u16) {
    for _ in 0..100 {
        let data = free_port();
        if data < u16::MAX && TcpListener::bind(("127.0.0.1", data + 1)).is_ok() {
            return (data, data + 1);
        }
    }
    panic!("no two adjacent free loopback ports");
}

/// How the running swtpm is reached.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// TCP data and control ports.
    Tcp {
        /// Data port.
        data: u16,
        /// Control port.
        ctrl: u16,
    },
    /// Unix data socket.
    Unix {
        /// Its path.
        path: PathBuf,
    },
}

/// A running swtpm.
pub struct Swtpm {
    child: Child,
    endpoint: Endpoint,
    dir: TempDir,
}

impl Swtpm {
    /// A swtpm on free loopback TCP ports (control on a separate free port).
    pub fn start() -> Swtpm {
        Self::start_with(false, two_free_ports)
    }

    /// A swtpm whose data channel is a unix socket.
    pub fn start_unix() -> Swtpm {
        Self::start_with(true, two_free_ports)
    }

    /// A swtpm on loopback TCP with the control port at data port + 1, where
    /// tpm2-tss's swtpm TCTI (tpm2-openssl, tpm2-tools) looks for it: its
    /// [`Swtpm::tcti`] string then serves both stacks.
    pub fn start_tss() -> Swtpm {
        Self::start_with(false, adjacent_free_ports)
    }

    fn start_with(unix: bool, ports: fn() -> (u16, u16)) -> Swtpm {
        let bin = swtpm_binary();
        for _attempt in 0..5 {
            let dir = TempDir::new("swtpm");
            let state = dir.path().join("state");
            std::fs::create_dir_all(&state).expect("state dir");
            let log = dir.path().join("swtpm.log");
            let (server, ctrl, endpoint) = if unix {
                let path = dir.path().join("tpm.sock");
                (
                    format!("type=unixio,path={}", path.display()),
                    format!(
                        "type=unixio,path={}",
                        dir.path().join("ctrl.sock").display()
                    ),
                    Endpoint::Unix { path },
                )
            } else {
                let (data, ctrl) = ports();
                (
                    format!("type=tcp,port={data},bindaddr=127.0.0.1"),
                    format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"),
                    Endpoint::Tcp { data, ctrl },
                )
            };
            let child = Command::new(bin)
                .args(["socket", "--tpm2", "--server", &server, "--ctrl", &ctrl])
                .arg("--tpmstate")
                .arg(format!("dir={}", state.display()))
                .args(["--flags", "not-need-init,startup-clear"])
                .arg("--log")
                .arg(format!("file={},level=1", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("stderr")).expect("stderr file"),
                ))
                .spawn()
                .expect("spawn swtpm");
            let mut s = Swtpm {
                child,
                endpoint,
                dir,
            };
            if s.wait_ready(Duration::from_secs(10)) {
                return s;
            }
            let err = std::fs::read_to_string(s.dir.path().join("stderr")).unwrap_or_default();
            eprintln!("swtpm did not come up (retrying): {err}");
        }
        panic!("swtpm did not start");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn ping(&self) -> bool {
        let mut rsp = [0u8; 10];
        match &self.endpoint {
            Endpoint::Tcp { data, .. } => TcpStream::connect(("127.0.0.1", *data))
                .and_then(|mut s| {
                    s.write_all(&GET_RANDOM_8)?;
                    s.read_exact(&mut rsp)
                })
                .is_ok(),
            Endpoint::Unix { path } => UnixStream::connect(path)
                .and_then(|mut s| {
                    s.write_all(&GET_RANDOM_8)?;
                    s.read_exact(&mut rsp)
                })
                .is_ok(),
        }
    }

    /// The TCTI string for TPMKEY_TCTI.
    pub fn tcti(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp { data, .. } => format!("swtpm:host=127.0.0.1,port={data}"),
            Endpoint::Unix { path } => format!("swtpm:path={}", path.display()),
        }
    }

    /// The data port (TCP swtpm only).
    pub fn data_port(&self) -> u16 {
        match &self.endpoint {
            Endpoint::Tcp { data, .. } => *data,
            Endpoint::Unix { .. } => panic!("unix swtpm has no data port"),
        }
    }

    /// A scratch directory that lives as long as this swtpm.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The swtpm's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn kill(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        kill(&mut self.child);
        remove_flush_epoch(&self.tcti());
    }
}

/// Removes the flush epoch file tpmkey keeps for the TPM at `tcti` (in /run/lock
/// or /tmp, made when a process flushed handles it did not load), so that test
/// runs leave nothing behind.
pub fn remove_flush_epoch(tcti: &str) {
    if let Some(e) = tcti
        .parse::<tpmkey::Tcti>()
        .ok()
        .and_then(|t| t.flush_epoch())
    {
        let _ = std::fs::remove_file(e.path());
    }
}

/// `swtpm chardev --tpm2 --fd N` on one end of a socketpair: the same
/// write-a-command, read-the-response semantics as /dev/tpmrm0, without a kernel.
pub struct SwtpmChardev {
    child: Child,
    _dir: TempDir,
    fd: Option<OwnedFd>,
}

impl SwtpmChardev {
    /// Starts it; [`SwtpmChardev::take_fd`] gives our end.
    pub fn start() -> SwtpmChardev {
        let bin = swtpm_binary();
        let dir = TempDir::new("chardev");
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let their_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(bin);
        cmd.args(["chardev", "--tpm2", "--fd", &their_fd.to_string()])
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.path().display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe fcntl between fork and exec, on an fd that
        // is open in the child; it clears FD_CLOEXEC so swtpm inherits its end.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                let flags = nix::libc::fcntl(their_fd, nix::libc::F_GETFD);
                if flags < 0
                    || nix::libc::fcntl(
                        their_fd,
                        nix::libc::F_SETFD,
                        flags & !nix::libc::FD_CLOEXEC,
                    ) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn swtpm chardev");
        drop(theirs);
        SwtpmChardev {
            child,
            _dir: dir,
            fd: Some(ours),
        }
    }

    /// Our end of the socketpair (once).
    pub fn take_fd(&mut self) -> OwnedFd {
        self.fd.take().expect("fd already taken")
    }
}

impl Drop for SwtpmChardev {
    fn drop(&mut self) {
        drop(self.fd.take());
        kill(&mut self.child);
    }
}

/// The built `tpmkey` binary.
pub fn tpmkey_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tpmkey"))
}

/// Runs `tpmkey args…` on a TPM and a store, with no PIN taken from the
/// environment; returns (status ok, stdout, stderr).
pub fn run_tpmkey_in(tcti: &str, store: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tpmkey_bin())
        .args(args)
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_STORE", store)
        .env_remove("TPM2TOOLS_TCTI")
        .env_remove("TPMKEY_PIN")
        .env_remove("TPMKEY_SOPIN")
        .output()
        .expect("run tpmkey");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The handles of the type of `first` (Part 2 §7.2: its top byte) from `first` on,
/// as the TPM lists them (TPM2_GetCapability, TPM_CAP_HANDLES), asked directly.
pub fn tpm_handles(tcti: &str, first: u32) -> Vec<u32> {
    use tpm_commands::commands::GetCapability;
    use tpm_commands::constants::TpmCap;
    use tpm_commands::structures::TpmsCapabilityData;
    let mut tpm = tpmkey::tpm::Tpm::open(&tcti.parse().expect("tcti")).expect("open TPM");
    let rsp = tpm
        .run(&GetCapability {
            capability: TpmCap::HANDLES,
            property: first,
            property_count: 256,
        })
        .expect("GetCapability");
    match rsp.capability_data {
        TpmsCapabilityData::Handles(list) => list
            .0
            .into_iter()
            .map(|h| h.0)
            .filter(|h| h >> 24 == first >> 24)
            .collect(),
        _ => panic!("GetCapability(TPM_CAP_HANDLES) answered with something else"),
    }
}

/// Transient objects, HMAC and policy sessions loaded in the TPM now.
pub fn loaded_handles(tcti: &str) -> Vec<u32> {
    [0x8000_0000, 0x0200_0000, 0x0300_0000]
        .into_iter()
        .flat_map(|first| tpm_handles(tcti, first))
        .collect()
}

/// Runs `tpmkey args…` with TPMKEY_TCTI set; returns (status ok, stdout, stderr).
pub fn run_tpmkey(tcti: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tpmkey_bin())
        .args(args)
        .env("TPMKEY_TCTI", tcti)
        .env_remove("TPM2TOOLS_TCTI")
        .output()
        .expect("run tpmkey");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
