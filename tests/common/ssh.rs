//! A throwaway OpenSSH server on 127.0.0.1 (own config, host key, authorized_keys
//! and pid file in a temp dir, killed on drop), and the client side: `ssh -I`
//! with the tpmkey module, PINs through SSH_ASKPASS, ssh-agent with `ssh-add -s`.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// The PKCS#11 module under test: `TPMKEY_TEST_MODULE` (test.sh points it at
/// target/release/libtpmkey.so), else the one cargo built for this test run
/// (`cargo test` builds the library's cdylib into target/<profile>/deps).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TPMKEY_TEST_MODULE").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "TPMKEY_TEST_MODULE={} does not exist",
            p.display()
        );
        return p;
    }
    let bin = super::tpmkey_bin();
    // deps/ first: that is the copy this `cargo test` built (the uplifted one in
    // target/<profile>/ is only refreshed by `cargo build`).
    let candidates = [
        bin.with_file_name("deps").join("libtpmkey.so"),
        bin.with_file_name("libtpmkey.so"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "libtpmkey.so not found beside {}: run `cargo build` or set TPMKEY_TEST_MODULE",
                bin.display()
            )
        })
}

fn need(tool: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} not found: install it (apt-get install {package}); the ssh tests need it");
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A running sshd.
pub struct Sshd {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Sshd {
    /// Starts sshd on a free loopback port that accepts exactly the keys in
    /// `authorized_keys`, public key authentication only.
    pub fn start(authorized_keys: &str) -> Sshd {
        let sshd = need("sshd", "openssh-server");
        let keygen = need("ssh-keygen", "openssh-client");
        let dir = TempDir::new("sshd");
        let hostkey = dir.path().join("hostkey");
        let st = Command::new(keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&hostkey)
            .status()
            .expect("ssh-keygen");
        assert!(st.success(), "host key generation failed");
        let ak = dir.path().join("authorized_keys");
        std::fs::write(&ak, authorized_keys).expect("write authorized_keys");
        // sshd run as root wants its privilege separation directory.
        if nix::unistd::geteuid().is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
            let _ = std::fs::set_permissions("/run/sshd", std::fs::Permissions::from_mode(0o755));
        }
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("current user name");
        let port = super::free_port_pub();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
                 AuthorizedKeysFile {ak}\nStrictModes no\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nAllowUsers {user}\nLogLevel VERBOSE\n",
                hk = hostkey.display(),
                pid = dir.path().join("sshd.pid").display(),
                ak = ak.display(),
            ),
        )
        .expect("write sshd_config");
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("log");
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let mut s = Sshd { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("sshd exited with {st}: {}", s.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// An `ssh` command to this server running `echo tpmkey-login-ok`, with no
    /// user config, no known-hosts file and no agent unless `agent` is given.
    pub fn ssh(&self, extra: &[&str], agent: Option<&Path>) -> Command {
        let mut c = Command::new(need("ssh", "openssh-client"));
        c.args(["-F", "/dev/null", "-p", &self.port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=publickey",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(extra)
            .args(["127.0.0.1", "echo", "tpmkey-login-ok"])
            .stdin(Stdio::null());
        match agent {
            Some(a) => c.env("SSH_AUTH_SOCK", a),
            None => c.env_remove("SSH_AUTH_SOCK"),
        };
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// True when the login ran the remote command.
pub fn logged_in(out: &Output) -> bool {
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("tpmkey-login-ok")
}

/// An SSH_ASKPASS program that prints `pin` and records each call in
/// `<dir>/askpass.calls`.
pub fn askpass(dir: &Path, pin: &str) -> PathBuf {
    let p = dir.join("askpass.sh");
    let calls = dir.join("askpass.calls");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nprintf '%s\\n' '{pin}'\n",
            calls.display()
        ),
    )
    .expect("write askpass");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    p
}

/// How many times the askpass program was asked, with its prompts.
pub fn askpass_calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("askpass.calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Points a command at a store and a TPM and makes it use `askpass` for PINs.
pub fn with_tpm(c: &mut Command, tcti: &str, store: &Path, askpass: &Path) {
    c.env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_STORE", store)
        .env("SSH_ASKPASS", askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env_remove("TPM2TOOLS_TCTI");
}

/// A running ssh-agent on its own socket, allowed to load `module`.
pub struct Agent {
    child: Child,
    sock: PathBuf,
    _dir: TempDir,
}

impl Agent {
    /// Starts `ssh-agent -D` with the environment `env` sets up (its PKCS#11
    /// helper inherits it).
    pub fn start(module: &Path, env: impl FnOnce(&mut Command)) -> Agent {
        let dir = TempDir::new("agent");
        let sock = dir.path().join("agent.sock");
        let mut c = Command::new(need("ssh-agent", "openssh-client"));
        c.arg("-D")
            .arg("-a")
            .arg(&sock)
            .arg("-P")
            .arg(module.to_string_lossy().as_ref())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        env(&mut c);
        let child = c.spawn().expect("start ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent {
            child,
            sock,
            _dir: dir,
        }
    }

    /// Its socket.
    pub fn sock(&self) -> &Path {
        &self.sock
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
