//! TLS client authentication with keys in the TPM, the browser-certificate guide
//! done with tpmkey: a swtpm, tokens made with the CLI (a PIN token "pki" and a
//! no-PIN token "auto"), in each an ECDSA P-256, an ECDSA P-384 and an RSA-2048
//! key, a CSR from `tpmkey cert request`, signed by a throwaway openssl CA, put
//! back with `tpmkey cert import`. Servers are `openssl s_server -Verify 1
//! -verify_return_error -CAfile ca.pem -www` on 127.0.0.1, one TLS 1.3-only and
//! one TLS 1.2-only (PKCS#1 v1.5 and ECDSA client signatures only, so RSA signs
//! with CKM_RSA_PKCS there and with RSA-PSS in TLS 1.3); each handshake must show
//! the key's certificate subject in the server's log and in the page it serves.
//!
//! Clients: NSS's `tstclnt -n TOKEN:LABEL`, `curl` with the OpenSSL pkcs11 engine
//! (libp11; the module named in a per-test OPENSSL_CONF), `gnutls-cli` with
//! pkcs11: URIs (the module loaded by p11-kit through `--provider`), and
//! Chromium: headless for the no-PIN token, headful on a private Xvfb display for
//! the PIN token (the PIN typed into NSS's "Unlock Security Device" dialog with
//! xdotool), the certificate chosen by the managed policy
//! AutoSelectCertificateForUrls, the page read over the DevTools pipe; and
//! Firefox ESR in the same two ways (the PIN typed into its "Password Required"
//! dialog), a fresh profile with the module added by `modutil`, the certificate
//! chosen by `security.default_personal_cert` = "Select Automatically", the page
//! read over Marionette. A PIN token takes its PIN from the client's PIN option
//! (or the dialog); a no-PIN token is never asked for one.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::pki::{nss_db, Ca};
use common::ssh::module_path;
use common::{Swtpm, TempDir};

const PIN: &str = "1234";
const KEYS: [&str; 3] = ["ecc256", "ecc384", "rsa2048"];

/// The two servers' protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tls {
    V12,
    V13,
}

const VERSIONS: [Tls; 2] = [Tls::V13, Tls::V12];

/// Kills a process group made for a child (the child leads it).
fn kill_group(child: &mut Child) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// Runs `cmd` with `input` on stdin, killed after `secs` seconds. It runs in a
/// session of its own with no terminal: a client that wanted to prompt for a
/// PIN cannot, and fails instead of waiting.
fn run_for(cmd: &mut Command, input: &[u8], secs: u64) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            timed_out = true;
            kill_group(&mut child);
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    };
    assert!(
        !timed_out,
        "{cmd:?} did not finish in {secs} s:\n{}",
        text(&out)
    );
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `openssl s_server` requiring a client certificate from the test CA.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, ca: &Ca, tls: Tls) -> Server {
        let (cert, key) = ca.server();
        for attempt in 0..5 {
            let port = common::free_port_pub();
            let log = dir.join(format!("s_server-{tls:?}-{port}.log"));
            let f = std::fs::File::create(&log).expect("server log");
            let mut c = Command::new("openssl");
            c.arg("s_server")
                .arg("-accept")
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(&cert)
                .arg("-key")
                .arg(&key)
                .arg("-CAfile")
                .arg(ca.cert())
                .args(["-Verify", "1", "-verify_return_error", "-www"]);
            match tls {
                Tls::V13 => c.arg("-tls1_3"),
                // TLS 1.2 with PKCS#1 v1.5 RSA signatures (and ECDSA), so that
                // CKM_RSA_PKCS is what an RSA key signs with here.
                Tls::V12 => c.args([
                    "-tls1_2",
                    "-client_sigalgs",
                    "RSA+SHA256:ECDSA+SHA256:ECDSA+SHA384",
                ]),
            };
            let mut child = c
                .stdin(Stdio::null())
                .stdout(f.try_clone().expect("log"))
                .stderr(f)
                .process_group(0)
                .spawn()
                .expect("openssl s_server (apt-get install openssl)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let l = std::fs::read_to_string(&log).unwrap_or_default();
                if l.contains("ACCEPT") {
                    return Server { child, port, log };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            kill_group(&mut child);
            eprintln!(
                "s_server did not come up (attempt {attempt}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("openssl s_server did not start");
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many handshakes presented a certificate with this CN (the verify
    /// callback prints `depth=0 CN = …`).
    fn saw(&self, cn: &str) -> usize {
        self.log().matches(&format!("depth=0 CN = {cn}\n")).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// What a token holds.
#[derive(Clone, Copy)]
struct TokenSpec {
    label: &'static str,
    pin: bool,
}

const PIN_TOKEN: TokenSpec = TokenSpec {
    label: "pki",
    pin: true,
};
const NO_PIN_TOKEN: TokenSpec = TokenSpec {
    label: "auto",
    pin: false,
};

/// A swtpm, a store with the tokens, keys and certificates, the CA, and (for the
/// command-line clients) a TLS 1.3 and a TLS 1.2 server.
struct Fixture {
    sim: Swtpm,
    dir: TempDir,
    ca: Ca,
    servers: Vec<(Tls, Server)>,
}

impl Fixture {
    fn new(tokens: &[TokenSpec]) -> Fixture {
        let sim = Swtpm::start();
        let dir = TempDir::new("tls");
        let ca = Ca::new(dir.path());
        let f = Fixture {
            sim,
            ca,
            servers: Vec::new(),
            dir,
        };
        f.tk(&["init"]);
        for t in tokens {
            if t.pin {
                f.tk(&[
                    "token",
                    "add",
                    "--label",
                    t.label,
                    "--userpin",
                    PIN,
                    "--sopin",
                    "5678",
                ]);
            } else {
                f.tk(&["token", "add", "--label", t.label, "--no-pin"]);
            }
            for alg in KEYS {
                let mut args = vec![
                    "key",
                    "add",
                    "--token",
                    t.label,
                    "--label",
                    alg,
                    "--algorithm",
                    alg,
                ];
                if t.pin {
                    args.extend(["--userpin", PIN]);
                }
                f.tk(&args);
                let csr = f.dir.path().join(format!("{}-{alg}.csr", t.label));
                let cn = format!("CN={}", cn(t, alg));
                let mut args = vec![
                    "cert",
                    "request",
                    "--token",
                    t.label,
                    "--key",
                    alg,
                    "--subject",
                    &cn,
                ];
                let csr_s = csr.to_string_lossy().into_owned();
                args.extend(["--out", &csr_s]);
                if t.pin {
                    args.extend(["--userpin", PIN]);
                }
                f.tk(&args);
                common::pki::run(
                    "openssl",
                    &["req", "-verify", "-noout", "-in", &csr_s],
                    "openssl",
                );
                let pem = f.dir.path().join(format!("{}-{alg}.pem", t.label));
                f.ca.issue(&csr, &pem);
                let out = f.tk(&["cert", "import", "--token", t.label, &pem.to_string_lossy()]);
                assert!(out.contains(&format!("attached to key {alg}")), "{out}");
            }
        }
        f
    }

    /// A TLS 1.3 and a TLS 1.2 server for the command-line clients.
    fn with_servers(mut self) -> Fixture {
        self.servers = VERSIONS
            .iter()
            .map(|v| (*v, Server::start(self.dir.path(), &self.ca, *v)))
            .collect();
        self
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn tk(&self, args: &[&str]) -> String {
        let (ok, out, err) = common::run_tpmkey_in(&self.sim.tcti(), &self.store(), args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    }

    /// Points a client at the TPM and the store (the module reads both from the
    /// environment).
    fn env(&self, c: &mut Command) {
        c.env("TPMKEY_TCTI", self.sim.tcti())
            .env("TPMKEY_STORE", self.store())
            .env_remove("TPM2TOOLS_TCTI")
            .env_remove("TPMKEY_PIN")
            .env_remove("TPMKEY_PKCS11_QUIET");
    }

    /// Runs one client against every key of `token` and both servers; each run
    /// must complete the handshake with that key's certificate, seen by the
    /// server and in its page, and a no-PIN token must never be asked for a PIN.
    /// Prints one line per run.
    fn each(&self, client: &str, token: TokenSpec, run: impl Fn(&str, &Server, bool) -> Output) {
        for alg in KEYS {
            for (tls, server) in &self.servers {
                let cn = cn(&token, alg);
                let before = server.saw(&cn);
                let started = Instant::now();
                let out = run(alg, server, true);
                let all = text(&out);
                let ok = out.status.success()
                    && server.saw(&cn) == before + 1
                    && all.contains(&format!("Subject: CN={cn}"));
                println!(
                    "{client:<10} {:<5} {alg:<8} {tls:?}: {} ({} ms)",
                    token.label,
                    if ok { "ok" } else { "FAILED" },
                    started.elapsed().as_millis()
                );
                assert!(
                    ok,
                    "{client} with {}/{alg} over {tls:?} failed ({}):\n{all}\nserver log:\n{}",
                    token.label,
                    out.status,
                    server.log()
                );
                if !token.pin {
                    let prompts = [
                        "Enter PIN",
                        "PIN for",
                        "requires user PIN",
                        "Password or Pin",
                    ];
                    assert!(
                        !prompts.iter().any(|p| all.contains(p)),
                        "{client} asked for a PIN of a no-PIN token:\n{all}"
                    );
                }
            }
        }
        if token.pin {
            // Without the PIN option the key cannot sign: no handshake with it
            // (the client cannot prompt: it has no terminal).
            let (_, server) = &self.servers[0];
            let cn = cn(&token, "ecc256");
            let before = server.saw(&cn);
            let out = run("ecc256", server, false);
            assert!(
                server.saw(&cn) == before && !text(&out).contains(&format!("Subject: CN={cn}")),
                "{client} used the PIN token's key with no PIN:\n{}",
                text(&out)
            );
            println!(
                "{client:<10} {:<5} ecc256   without its PIN: refused",
                token.label
            );
        }
    }
}

fn cn(t: &TokenSpec, alg: &str) -> String {
    format!("{}-{alg}", t.label)
}

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

#[test]
fn nss_tstclnt_with_token_nicknames() {
    let f = Fixture::new(&[PIN_TOKEN, NO_PIN_TOKEN]).with_servers();
    let db = nss_db(&f.dir.path().join("nssdb"), &module_path(), &f.ca);
    // The request from a file: with stdin, tstclnt spins on its end after the
    // server closes.
    let request = f.dir.path().join("request");
    std::fs::write(&request, REQUEST).unwrap();
    for token in [PIN_TOKEN, NO_PIN_TOKEN] {
        f.each("tstclnt", token, |alg, server, with_pin| {
            let mut c = Command::new("tstclnt");
            let v = match server_version(&f, server) {
                Tls::V12 => "tls1.2:tls1.2",
                Tls::V13 => "tls1.3:tls1.3",
            };
            c.args(["-h", "127.0.0.1", "-p", &server.port.to_string(), "-d", &db])
                .args(["-V", v, "-n", &format!("{}:{alg}", token.label)])
                .arg("-A")
                .arg(&request);
            if token.pin && with_pin {
                c.args(["-w", PIN]);
            }
            f.env(&mut c);
            run_for(&mut c, b"", 60)
        });
    }
}

fn server_version(f: &Fixture, s: &Server) -> Tls {
    f.servers
        .iter()
        .find(|(_, x)| x.port == s.port)
        .map(|(v, _)| *v)
        .expect("a fixture server")
}

#[test]
fn curl_with_the_openssl_pkcs11_engine() {
    let f = Fixture::new(&[PIN_TOKEN, NO_PIN_TOKEN]).with_servers();
    // The engine finds the module through this OPENSSL_CONF (nothing system-wide).
    let dir = common::pki::run("openssl", &["version", "-e"], "openssl");
    let dir = dir
        .split('"')
        .nth(1)
        .unwrap_or("/usr/lib/x86_64-linux-gnu/engines-3")
        .to_string();
    let engine = Path::new(&dir).join("pkcs11.so");
    assert!(
        engine.exists(),
        "{} missing: apt-get install libengine-pkcs11-openssl",
        engine.display()
    );
    let conf = f.dir.path().join("openssl.cnf");
    std::fs::write(
        &conf,
        format!(
            "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\ndynamic_path = {}\nMODULE_PATH = {}\ninit = 0\n",
            engine.display(),
            module_path().display()
        ),
    )
    .unwrap();
    for token in [PIN_TOKEN, NO_PIN_TOKEN] {
        f.each("curl", token, |alg, server, with_pin| {
            let pin = if token.pin && with_pin {
                format!(";pin-value={PIN}")
            } else {
                String::new()
            };
            let mut c = Command::new("curl");
            c.args(["-sS", "--cacert", &f.ca.cert().to_string_lossy()])
                .args([
                    "--engine",
                    "pkcs11",
                    "--key-type",
                    "ENG",
                    "--cert-type",
                    "ENG",
                ])
                .arg("--key")
                .arg(format!(
                    "pkcs11:token={};object={alg};type=private{pin}",
                    token.label
                ))
                .arg("--cert")
                .arg(format!(
                    "pkcs11:token={};object={alg};type=cert",
                    token.label
                ))
                .arg(server.url())
                .env("OPENSSL_CONF", &conf);
            f.env(&mut c);
            run_for(&mut c, b"", 60)
        });
    }
}

#[test]
fn gnutls_cli_with_pkcs11_uris() {
    let f = Fixture::new(&[PIN_TOKEN, NO_PIN_TOKEN]).with_servers();
    for token in [PIN_TOKEN, NO_PIN_TOKEN] {
        f.each("gnutls-cli", token, |alg, server, with_pin| {
            let pin = if token.pin && with_pin {
                format!("?pin-value={PIN}")
            } else {
                String::new()
            };
            let mut c = Command::new("gnutls-cli");
            c.arg("--provider")
                .arg(module_path())
                .arg("--x509cafile")
                .arg(f.ca.cert())
                .arg("--x509certfile")
                .arg(format!(
                    "pkcs11:token={};object={alg};type=cert",
                    token.label
                ))
                .arg("--x509keyfile")
                .arg(format!(
                    "pkcs11:token={};object={alg};type=private{pin}",
                    token.label
                ))
                .args(["-p", &server.port.to_string(), "127.0.0.1"]);
            f.env(&mut c);
            run_for(&mut c, REQUEST, 60)
        });
    }
}

// ---- Chromium ----

/// The managed policy file Chromium reads (/etc/chromium/policies/managed), held
/// under a lock for as long as one browser of this or another test run uses it,
/// and removed afterwards (also when the test fails).
struct PolicyGuard {
    file: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

const POLICY_DIR: &str = "/etc/chromium/policies/managed";

impl PolicyGuard {
    /// Selects, for each URL, the client certificate whose subject CN is given,
    /// with no dialog (AutoSelectCertificateForUrls).
    fn auto_select(urls: &[(String, String)]) -> PolicyGuard {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/tpmkey-chromium-policy.lock")
            .expect("policy lock file");
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock the Chromium policy");
        std::fs::create_dir_all(POLICY_DIR).unwrap_or_else(|e| {
            panic!("{POLICY_DIR}: {e} (the Chromium tests set a managed policy: run as root)")
        });
        let file = Path::new(POLICY_DIR).join("tpmkey-tls-test.json");
        let rules: Vec<String> = urls
            .iter()
            .map(|(url, cn)| {
                serde_json::json!({"pattern": url.trim_end_matches('/'), "filter": {"SUBJECT": {"CN": cn}}})
                    .to_string()
            })
            .collect();
        std::fs::write(
            &file,
            serde_json::json!({ "AutoSelectCertificateForUrls": rules }).to_string(),
        )
        .expect("write the policy");
        PolicyGuard { file, _lock: lock }
    }
}

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// A pipe whose ends do not leak into children.
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

/// Makes `fds[i]` the child's descriptor `3 + i` (for `--remote-debugging-pipe`
/// and Xvfb's `-displayfd`).
fn pass_fds(c: &mut Command, fds: Vec<i32>) {
    // SAFETY: only async-signal-safe fcntl/dup2 between fork and exec.
    #[allow(unsafe_code)]
    unsafe {
        c.pre_exec(move || {
            let mut high = Vec::new();
            for fd in &fds {
                let h = nix::libc::fcntl(*fd, nix::libc::F_DUPFD_CLOEXEC, 20);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(h);
            }
            for (i, h) in high.iter().enumerate() {
                if nix::libc::dup2(*h, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A private X display.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start(dir: &Path) -> Xvfb {
        let (r, w) = pipe();
        let mut c = Command::new("Xvfb");
        c.args([
            "-displayfd",
            "3",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("xvfb.log")).expect("xvfb log"))
        .process_group(0);
        pass_fds(&mut c, vec![w.as_raw_fd()]);
        let child = c.spawn().expect("Xvfb (apt-get install xvfb)");
        drop(w);
        let mut line = String::new();
        BufReader::new(std::fs::File::from(r))
            .read_line(&mut line)
            .expect("Xvfb display number");
        let n = line.trim();
        assert!(!n.is_empty(), "Xvfb gave no display");
        Xvfb {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Chromium driven over the DevTools protocol on a pipe.
struct Chromium {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<serde_json::Value>,
    next: u64,
}

impl Chromium {
    /// Starts Chromium (headless unless `display`) with a fresh profile, HOME
    /// `home` (whose NSS db at .pki/nssdb has the module), pointed at `f`'s TPM
    /// and store.
    fn start(f: &Fixture, home: &Path, display: Option<&str>) -> Chromium {
        let (cmd_r, cmd_w) = pipe();
        let (out_r, out_w) = pipe();
        let mut c = Command::new("chromium");
        c.args([
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-pipe",
        ])
        .arg(format!(
            "--user-data-dir={}",
            home.join("chromium-profile").display()
        ))
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.join("chromium.log")).expect("chromium log"))
        .process_group(0);
        match display {
            Some(d) => c.env("DISPLAY", d),
            None => c.arg("--headless").env_remove("DISPLAY"),
        };
        f.env(&mut c);
        c.arg("about:blank");
        pass_fds(&mut c, vec![cmd_r.as_raw_fd(), out_w.as_raw_fd()]);
        let child = c.spawn().expect("chromium (apt-get install chromium)");
        drop((cmd_r, out_w));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(std::fs::File::from(out_r));
            loop {
                let mut msg = Vec::new();
                match r.read_until(0, &mut msg) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        msg.pop();
                        if let Ok(v) = serde_json::from_slice(&msg) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Chromium {
            child,
            to: std::fs::File::from(cmd_w),
            from: rx,
            next: 1,
        }
    }

    /// One DevTools command (on a page's session when given); its result.
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let id = self.next;
        self.next += 1;
        let mut msg = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .map_err(|e| format!("DevTools pipe: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .map_err(|_| format!("no answer to {method}"))?;
            if v["id"] == id {
                return match v.get("error") {
                    Some(e) => Err(e.to_string()),
                    None => Ok(v["result"].clone()),
                };
            }
        }
    }

    /// Opens `url` in a new tab and waits for the server's page (or an error page);
    /// its text.
    fn load(&mut self, url: &str, secs: u64) -> String {
        let target = self
            .call(None, "Target.createTarget", serde_json::json!({"url": url}))
            .expect("Target.createTarget");
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                serde_json::json!({"targetId": target_id, "flatten": true}),
            )
            .expect("Target.attachToTarget");
        let session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        while Instant::now() < deadline {
            let r = self.call(
                Some(&session),
                "Runtime.evaluate",
                serde_json::json!({
                    "expression": "location.href + '\\n' + (document.body ? document.body.innerText : '')",
                    "returnByValue": true
                }),
            );
            if let Ok(v) = r {
                last = v["result"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let page = last.starts_with(url);
                if (page && last.contains("Subject:"))
                    || last.contains("ERR_")
                    || last.contains("chrome-error:")
                {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.call(
            None,
            "Target.closeTarget",
            serde_json::json!({"targetId": target_id}),
        );
        last
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.call(None, "Browser.close", serde_json::json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_group(&mut self.child);
    }
}

/// Types the PIN into every window titled `title` (an xdotool name regex: NSS's
/// PIN dialog, Chromium's "Unlock Security Device" or Firefox's) that shows on
/// `display` until stopped; counts them.
struct PinTyper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl PinTyper {
    fn start(display: &str, title: &str, pin: &str) -> PinTyper {
        let stop = Arc::new(AtomicBool::new(false));
        let (d, t, p, s) = (
            display.to_string(),
            title.to_string(),
            pin.to_string(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            // Window id -> (first seen, last typed into, tries).
            let mut seen: Vec<(String, Instant, Option<Instant>, u32)> = Vec::new();
            let xdotool = |args: &[&str]| {
                Command::new("xdotool")
                    .args(args)
                    .env("DISPLAY", &d)
                    .output()
                    .expect("xdotool (apt-get install xdotool)")
            };
            while !s.load(Ordering::SeqCst) {
                let found = xdotool(&["search", "--onlyvisible", "--name", &t]);
                for w in String::from_utf8_lossy(&found.stdout).split_whitespace() {
                    if !seen.iter().any(|x| x.0 == w) {
                        seen.push((w.to_string(), Instant::now(), None, 0));
                    }
                    let Some(x) = seen.iter_mut().find(|x| x.0 == w) else {
                        continue;
                    };
                    // Type once the dialog has settled, and again (into a cleared
                    // field) if it is still there a while later.
                    let due = match x.2 {
                        None => x.1.elapsed() > Duration::from_millis(1500),
                        Some(t) => t.elapsed() > Duration::from_secs(5) && x.3 < 3,
                    };
                    if !due {
                        continue;
                    }
                    let typed = xdotool(&[
                        "windowfocus",
                        "--sync",
                        w,
                        "key",
                        "ctrl+a",
                        "BackSpace",
                        "type",
                        "--delay",
                        "40",
                        &p,
                    ]);
                    let entered = xdotool(&["key", "Return"]);
                    assert!(
                        typed.status.success() && entered.status.success(),
                        "xdotool could not type the PIN"
                    );
                    x.2 = Some(Instant::now());
                    x.3 += 1;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            seen.len()
        });
        PinTyper {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("PIN typer"))
            .unwrap_or(0)
    }
}

impl Drop for PinTyper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Loads each server's page in Chromium with each key of `token` (one server
/// URL per key and version, the certificate chosen by the policy); checks
/// what `Fixture::each` checks.
fn chromium_run(f: &Fixture, token: TokenSpec, display: Option<&str>) -> Option<usize> {
    let home = f.dir.path().join("home");
    nss_db(&home.join(".pki/nssdb"), &module_path(), &f.ca);
    // One server pair per key: the policy maps each URL to one certificate.
    let mut runs = Vec::new();
    for alg in KEYS {
        for tls in VERSIONS {
            runs.push((alg, tls, Server::start(f.dir.path(), &f.ca, tls)));
        }
    }
    let policy = PolicyGuard::auto_select(
        &runs
            .iter()
            .map(|(alg, _, s)| (s.url(), cn(&token, alg)))
            .collect::<Vec<_>>(),
    );
    let typer = display.map(|d| PinTyper::start(d, "^Unlock Security Device$", PIN));
    let mut browser = Chromium::start(f, &home, display);
    for (alg, tls, server) in &runs {
        let cn = cn(&token, alg);
        let started = Instant::now();
        let page = browser.load(&server.url(), 90);
        let ok = server.saw(&cn) >= 1 && page.contains(&format!("Subject: CN={cn}"));
        println!(
            "{:<10} {:<5} {alg:<8} {tls:?}: {} ({} ms)",
            if display.is_some() {
                "chromium"
            } else {
                "chromium-headless"
            },
            token.label,
            if ok { "ok" } else { "FAILED" },
            started.elapsed().as_millis()
        );
        assert!(
            ok,
            "Chromium with {}/{alg} over {tls:?}: page:\n{page}\nserver log:\n{}\nchromium log:\n{}",
            token.label,
            server.log(),
            std::fs::read_to_string(home.join("chromium.log")).unwrap_or_default()
        );
    }
    drop(browser);
    drop(policy);
    typer.map(PinTyper::finish)
}

#[test]
fn chromium_headless_with_a_no_pin_token() {
    let f = Fixture::new(&[NO_PIN_TOKEN]);
    assert_eq!(chromium_run(&f, NO_PIN_TOKEN, None), None);
}

#[test]
fn chromium_with_a_pin_typed_into_the_unlock_dialog() {
    let f = Fixture::new(&[PIN_TOKEN]);
    let x = Xvfb::start(f.dir.path());
    let prompts = chromium_run(&f, PIN_TOKEN, Some(&x.display));
    assert_eq!(
        prompts,
        Some(1),
        "the PIN is asked once, in NSS's Unlock Security Device dialog"
    );
}

// ---- Firefox ----

/// The profile preferences (user.js) a Firefox test starts with: the client
/// certificate chosen without a dialog ("Select Automatically": the first of
/// the user's certificates whose issuer the server asks for), no OS client
/// certificate module, and a first run that shows no first-run or welcome pages
/// and makes no connections of its own (telemetry, updates, remote settings,
/// safe browsing, captive-portal and connectivity checks, speculative
/// connections, DNS over HTTPS).
const FIREFOX_PREFS: &[(&str, &str)] = &[
    ("security.default_personal_cert", "\"Select Automatically\""),
    ("security.osclientcerts.autoload", "false"),
    ("security.remember_cert_checkbox_default_setting", "false"),
    ("browser.shell.checkDefaultBrowser", "false"),
    ("browser.startup.homepage_override.mstone", "\"ignore\""),
    ("browser.startup.page", "0"),
    ("browser.startup.homepage", "\"about:blank\""),
    ("startup.homepage_welcome_url", "\"about:blank\""),
    ("startup.homepage_welcome_url.additional", "\"\""),
    ("browser.aboutwelcome.enabled", "false"),
    ("browser.newtabpage.enabled", "false"),
    ("browser.newtab.preload", "false"),
    ("browser.sessionstore.resume_from_crash", "false"),
    ("toolkit.startup.max_resumed_crashes", "-1"),
    ("datareporting.policy.dataSubmissionEnabled", "false"),
    ("datareporting.healthreport.uploadEnabled", "false"),
    ("datareporting.usage.uploadEnabled", "false"),
    ("toolkit.telemetry.enabled", "false"),
    ("toolkit.telemetry.unified", "false"),
    ("toolkit.telemetry.archive.enabled", "false"),
    ("toolkit.telemetry.server", "\"\""),
    ("app.update.disabledForTesting", "true"),
    ("app.update.auto", "false"),
    ("app.normandy.enabled", "false"),
    ("app.shield.optoutstudies.enabled", "false"),
    ("nimbus.rollouts.enabled", "false"),
    ("messaging-system.rsexperimentloader.enabled", "false"),
    (
        "services.settings.server",
        "\"data:,#remote-settings-off/v1\"",
    ),
    ("security.remote_settings.crlite_filters.enabled", "false"),
    ("security.remote_settings.intermediates.enabled", "false"),
    ("security.certerrors.mitm.priming.enabled", "false"),
    ("extensions.update.enabled", "false"),
    ("extensions.getAddons.cache.enabled", "false"),
    ("extensions.systemAddon.update.enabled", "false"),
    ("extensions.blocklist.enabled", "false"),
    ("browser.safebrowsing.malware.enabled", "false"),
    ("browser.safebrowsing.phishing.enabled", "false"),
    ("browser.safebrowsing.blockedURIs.enabled", "false"),
    ("browser.safebrowsing.downloads.enabled", "false"),
    ("browser.safebrowsing.downloads.remote.enabled", "false"),
    ("browser.safebrowsing.provider.mozilla.updateURL", "\"\""),
    ("browser.safebrowsing.provider.google4.updateURL", "\"\""),
    ("network.captive-portal-service.enabled", "false"),
    ("network.connectivity-service.enabled", "false"),
    ("network.trr.mode", "5"),
    ("network.dns.disablePrefetch", "true"),
    ("network.prefetch-next", "false"),
    ("network.http.speculative-parallel-limit", "0"),
    ("browser.urlbar.speculativeConnect.enabled", "false"),
    ("browser.region.update.enabled", "false"),
    ("browser.region.network.url", "\"\""),
    ("browser.search.update", "false"),
    ("media.gmp-provider.enabled", "false"),
    ("media.gmp-manager.url", "\"\""),
    ("media.gmp-manager.chromium-update-url", "\"\""),
    ("media.gmp-gmpopenh264.enabled", "false"),
    ("media.gmp-widevinecdm.enabled", "false"),
    ("dom.push.connection.enabled", "false"),
    ("geo.provider.network.url", "\"\""),
    ("identity.fxaccounts.enabled", "false"),
    ("browser.discovery.enabled", "false"),
    ("marionette.port", "0"),
];

/// A fresh Firefox profile in `dir`: an NSS database with the test CA trusted
/// and the module added by `modutil -add` (as a user does, or Settings →
/// Privacy & Security → Security Devices → Load), and [`FIREFOX_PREFS`].
fn firefox_profile(dir: &Path, ca: &Ca) {
    nss_db(dir, &module_path(), ca);
    let prefs: String = FIREFOX_PREFS
        .iter()
        .map(|(name, value)| format!("user_pref(\"{name}\", {value});\n"))
        .collect();
    std::fs::write(dir.join("user.js"), prefs).expect("user.js");
}

/// Firefox (`firefox-esr`) driven over Marionette (its own protocol: `LEN:JSON`
/// packets on TCP, the port it picked written to the profile's
/// MarionetteActivePort).
struct Firefox {
    child: Child,
    conn: Option<std::net::TcpStream>,
    next: u64,
    log: PathBuf,
}

impl Firefox {
    /// Starts Firefox (headless unless `display`) on the profile `home/profile`
    /// with HOME and TMPDIR in `home`, pointed at `f`'s TPM and store, and opens
    /// a Marionette session.
    fn start(f: &Fixture, home: &Path, display: Option<&str>) -> Firefox {
        let profile = home.join("profile");
        let port_file = profile.join("MarionetteActivePort");
        let _ = std::fs::remove_file(&port_file);
        let tmp = home.join("tmp");
        std::fs::create_dir_all(&tmp).expect("firefox TMPDIR");
        let log = home.join("firefox.log");
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("firefox log");
        let mut c = Command::new("firefox-esr");
        c.args(["-no-remote", "-marionette", "-profile"])
            .arg(&profile)
            .env("HOME", home)
            .env("TMPDIR", &tmp)
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            // Firefox's own test switch: connections to anything but loopback
            // are refused (and the remote-settings server pref is honoured).
            .env("MOZ_DISABLE_NONLOCAL_CONNECTIONS", "1")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("firefox log"))
            .stderr(out)
            .process_group(0);
        match display {
            Some(d) => c.env("DISPLAY", d),
            None => c.arg("-headless").env_remove("DISPLAY"),
        };
        f.env(&mut c);
        c.arg("about:blank");
        let child = c
            .spawn()
            .expect("firefox-esr (apt-get install firefox-esr)");
        // From here on a panic kills it (Drop).
        let mut ff = Firefox {
            child,
            conn: None,
            next: 1,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            if let Ok(port) = text.trim().parse::<u16>() {
                break port;
            }
            if let Ok(Some(status)) = ff.child.try_wait() {
                panic!("firefox-esr exited ({status}):\n{}", ff.log());
            }
            assert!(
                Instant::now() < deadline,
                "Firefox opened no Marionette port in 60 s:\n{}",
                ff.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let conn = std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("Marionette port {port}: {e}\n{}", ff.log()));
        ff.conn = Some(conn);
        ff.wait_at_most(Duration::from_secs(60));
        let hello = ff.read().unwrap_or_else(|e| panic!("{e}\n{}", ff.log()));
        assert_eq!(hello["applicationType"], "gecko", "Marionette: {hello}");
        ff.call(
            "WebDriver:NewSession",
            serde_json::json!({
                "pageLoadStrategy": "normal",
                "timeouts": {"pageLoad": 90000},
                // Leave the PIN dialog to the PIN typer.
                "unhandledPromptBehavior": "ignore"
            }),
        )
        .unwrap_or_else(|e| panic!("WebDriver:NewSession: {e}\n{}", ff.log()));
        ff
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Bounds how long the next answers may take (a Firefox whose main thread
    /// waits in a dialog that cannot show answers nothing).
    fn wait_at_most(&mut self, limit: Duration) {
        if let Some(conn) = &self.conn {
            let _ = conn.set_read_timeout(Some(limit.max(Duration::from_millis(100))));
        }
    }

    /// One Marionette packet: its length in ASCII digits, ':', the JSON.
    fn read(&mut self) -> Result<serde_json::Value, String> {
        let conn = self.conn.as_mut().ok_or("no Marionette connection")?;
        let mut len = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            conn.read_exact(&mut byte).map_err(marionette_error)?;
            if byte[0] == b':' {
                break;
            }
            len.push(byte[0]);
            if len.len() > 10 {
                return Err("Marionette: no packet length".into());
            }
        }
        let len: usize = std::str::from_utf8(&len)
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or("Marionette: bad packet length")?;
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).map_err(marionette_error)?;
        serde_json::from_slice(&body).map_err(|e| format!("Marionette: {e}"))
    }

    /// One command (`[0, id, name, params]`); its result, or its error
    /// (`[1, id, error, result]`).
    fn call(&mut self, name: &str, params: serde_json::Value) -> Result<serde_json::Value, String> {
        let id = self.next;
        self.next += 1;
        let body = serde_json::json!([0, id, name, params]).to_string();
        let conn = self.conn.as_mut().ok_or("no Marionette connection")?;
        conn.write_all(format!("{}:{body}", body.len()).as_bytes())
            .map_err(|e| format!("Marionette: {e}"))?;
        loop {
            let v = self.read()?;
            if v[0] == 1 && v[1] == id {
                return match &v[2] {
                    serde_json::Value::Null => Ok(v[3].clone()),
                    e => Err(format!("{name}: {} {}", e["error"], e["message"])),
                };
            }
        }
    }

    /// Loads `url` and waits for the server's page (or an error page); the
    /// document's address and text, after the navigation's error if it had one.
    /// Marionette's navigation returns once the page loaded or a dialog opened
    /// (the PIN's), so the page is polled as in [`Chromium::load`].
    fn load(&mut self, url: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        self.wait_at_most(Duration::from_secs(secs));
        let navigated = self.call("WebDriver:Navigate", serde_json::json!({ "url": url }));
        let mut last = String::new();
        while Instant::now() < deadline {
            self.wait_at_most(deadline.saturating_duration_since(Instant::now()));
            last = match self.call(
                "WebDriver:ExecuteScript",
                serde_json::json!({
                    "script": "return document.documentURI + '\\n' + (document.body ? document.body.innerText : '');",
                    "args": []
                }),
            ) {
                Ok(v) => v["value"].as_str().unwrap_or_default().to_string(),
                Err(e) => e,
            };
            if (last.starts_with(url) && last.contains("Subject:"))
                || last.starts_with("about:neterror")
                || last.starts_with("about:certerror")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        match navigated {
            Ok(_) => last,
            Err(e) => format!("{e}\n{last}"),
        }
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        if self.conn.is_some() {
            self.wait_at_most(Duration::from_secs(5));
            let _ = self.call(
                "Marionette:Quit",
                serde_json::json!({"flags": ["eForceQuit"]}),
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Also its content processes, in its process group.
        kill_group(&mut self.child);
    }
}

fn marionette_error(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "Marionette: Firefox did not answer in time (is it waiting in a dialog?)".into()
        }
        _ => format!("Marionette: {e}"),
    }
}

/// Loads a TLS 1.3 and a TLS 1.2 server's page in Firefox with each key of
/// `token`, the certificate chosen by "Select Automatically". That takes the
/// first certificate the server's CA list matches, and all three come from
/// one CA: the token holds one certificate at a time (`tpmkey cert rm`, then
/// `tpmkey cert import` of the next), and each key gets a Firefox of its own.
/// With `display`, the PIN is typed into Firefox's password dialog, asked once
/// per browser: returns how often it showed.
fn firefox_run(f: &Fixture, token: TokenSpec, display: Option<&str>) -> Vec<usize> {
    let home = f.dir.path().join("firefox-home");
    firefox_profile(&home.join("profile"), &f.ca);
    let servers: Vec<(Tls, Server)> = VERSIONS
        .iter()
        .map(|v| (*v, Server::start(f.dir.path(), &f.ca, *v)))
        .collect();
    for alg in KEYS {
        f.tk(&["cert", "rm", "--token", token.label, "--label", alg]);
    }
    let mut prompts = Vec::new();
    for alg in KEYS {
        let pem = f.dir.path().join(format!("{}-{alg}.pem", token.label));
        f.tk(&[
            "cert",
            "import",
            "--token",
            token.label,
            &pem.to_string_lossy(),
        ]);
        let typer = display.map(|d| PinTyper::start(d, FIREFOX_PIN_DIALOG, PIN));
        let mut browser = Firefox::start(f, &home, display);
        for (tls, server) in &servers {
            let cn = cn(&token, alg);
            let before = server.saw(&cn);
            let started = Instant::now();
            let page = browser.load(&server.url(), 90);
            let ok = server.saw(&cn) > before && page.contains(&format!("Subject: CN={cn}"));
            println!(
                "{:<10} {:<5} {alg:<8} {tls:?}: {} ({} ms)",
                if display.is_some() {
                    "firefox"
                } else {
                    "firefox-headless"
                },
                token.label,
                if ok { "ok" } else { "FAILED" },
                started.elapsed().as_millis()
            );
            assert!(
                ok,
                "Firefox with {}/{alg} over {tls:?}: page:\n{page}\nserver log:\n{}\nfirefox log:\n{}",
                token.label,
                server.log(),
                browser.log()
            );
        }
        drop(browser);
        prompts.extend(typer.map(PinTyper::finish));
        f.tk(&["cert", "rm", "--token", token.label, "--label", alg]);
    }
    prompts
}

/// The title of Firefox's window asking for a token's password (NSS's PIN).
const FIREFOX_PIN_DIALOG: &str = "^Password Required - Mozilla Firefox$";

#[test]
fn firefox_headless_with_a_no_pin_token() {
    let f = Fixture::new(&[NO_PIN_TOKEN]);
    assert_eq!(firefox_run(&f, NO_PIN_TOKEN, None), Vec::<usize>::new());
}

#[test]
fn firefox_with_a_pin_typed_into_the_password_dialog() {
    let f = Fixture::new(&[PIN_TOKEN]);
    let x = Xvfb::start(f.dir.path());
    assert_eq!(
        firefox_run(&f, PIN_TOKEN, Some(&x.display)),
        vec![1; KEYS.len()],
        "each Firefox asks for the PIN once, in its Password Required dialog"
    );
}
