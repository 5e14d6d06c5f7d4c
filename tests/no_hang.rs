//! No wait on a TPM is unbounded, and what went wrong is said in words. A proxy in
//! front of a real swtpm passes every command through but misbehaves on one:
//! never answers it, announces more bytes than it sends, or closes the connection
//! in the middle of the response. `tpmkey sign` (with `TPMKEY_TIMEOUT=2`) must fail
//! within the bound with a message naming the TPM and TPM2_Sign. A unix socket that
//! accepts and never answers, and one that is gone, give the same kind of error.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Swtpm, TempDir};

/// What the proxy does to the response to the command it targets.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Reads the command, never answers (the connection stays open).
    Silent,
    /// Sends the first `n` bytes of the real response, then nothing more.
    Short(usize),
    /// Sends the first `n` bytes of the real response, then closes.
    Cut(usize),
    /// Closes the connection without answering.
    Hangup,
}

fn read_frame(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut header = [0u8; 10];
    s.read_exact(&mut header).ok()?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if !(10..=65536).contains(&size) {
        return None;
    }
    let mut frame = header.to_vec();
    frame.resize(size, 0);
    s.read_exact(&mut frame[10..]).ok()?;
    Some(frame)
}

/// Serves one client connection: relays frames to swtpm, faulting on `cc`.
fn relay(mut client: TcpStream, target: u16, cc: u32, fault: Fault) {
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    while let Some(command) = read_frame(&mut client) {
        let hit = command[6..10] == cc.to_be_bytes();
        if hit && matches!(fault, Fault::Silent) {
            // Hold the connection until the client gives up.
            let _ = client.read(&mut [0u8; 1]);
            break;
        }
        if hit && matches!(fault, Fault::Hangup) {
            break;
        }
        if up.write_all(&command).is_err() {
            break;
        }
        let Some(response) = read_frame(&mut up) else {
            break;
        };
        match fault {
            Fault::Short(n) if hit => {
                let _ = client.write_all(&response[..n]);
                let _ = client.read(&mut [0u8; 1]);
                break;
            }
            Fault::Cut(n) if hit => {
                let _ = client.write_all(&response[..n]);
                break;
            }
            _ => {
                if client.write_all(&response).is_err() {
                    break;
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
}

/// A proxy on a free port in front of swtpm's data port; one thread per client.
fn faulty_proxy(target: u16, cc: u32, fault: Fault) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || relay(c, target, cc, fault));
        }
    });
    port
}

/// A store with a PIN token and a P-256 key, made straight on `sim`.
fn store_with_key(sim: &Swtpm, dir: &TempDir) -> std::path::PathBuf {
    let store = dir.path().join("store");
    for args in [
        &["init"][..],
        &[
            "token",
            "add",
            "--label",
            "t",
            "--userpin",
            "1234",
            "--sopin",
            "5678",
        ],
        &[
            "key",
            "add",
            "--token",
            "t",
            "--label",
            "k",
            "--algorithm",
            "ecc256",
            "--userpin",
            "1234",
        ],
    ] {
        let (ok, _, err) = common::run_tpmkey_in(&sim.tcti(), &store, args);
        assert!(ok, "tpmkey {args:?}: {err}");
    }
    store
}

/// `tpmkey args…` on `store` through `tcti` with `TPMKEY_TIMEOUT=timeout`:
/// (succeeded, stderr, time).
fn tpmkey_within(
    tcti: &str,
    store: &std::path::Path,
    timeout: &str,
    args: &[&str],
) -> (bool, String, Duration) {
    let t = Instant::now();
    let out = Command::new(common::tpmkey_bin())
        .args(args)
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_STORE", store)
        .env("TPMKEY_TIMEOUT", timeout)
        .env_remove("TPM2TOOLS_TCTI")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

/// `tpmkey sign` through `tcti` with TPMKEY_TIMEOUT=2: (succeeded, stderr, time).
fn sign_via(tcti: &str, store: &std::path::Path, dir: &TempDir) -> (bool, String, Duration) {
    let msg = dir.path().join("msg");
    std::fs::write(&msg, b"hello").unwrap();
    let msg = msg.to_str().unwrap();
    let args = [
        "sign",
        "--token",
        "t",
        "--label",
        "k",
        "--userpin",
        "1234",
        "--in",
        msg,
    ];
    tpmkey_within(tcti, store, "2", &args)
}

const SIGN: u32 = 0x15d;
/// Generous: the bound is 2 s; this only has to tell an error from a hang.
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_tpm_that_never_answers_is_named_with_the_command() {
    let sim = Swtpm::start();
    let dir = TempDir::new("nohang");
    let store = store_with_key(&sim, &dir);
    let port = faulty_proxy(sim.data_port(), SIGN, Fault::Silent);
    let (ok, err, took) = sign_via(&format!("swtpm:host=127.0.0.1,port={port}"), &store, &dir);
    println!("silent TPM: {took:?}: {err}");
    assert!(!ok, "signed through a TPM that never answers");
    assert!(
        err.contains(&format!(
            "the TPM at 127.0.0.1:{port} did not answer TPM2_Sign within 2 s"
        )),
        "{err}"
    );
    assert!(took >= Duration::from_secs(2) && took < LIMIT, "{took:?}");
}

#[test]
fn a_response_shorter_than_announced_times_out_saying_how_much_came() {
    let sim = Swtpm::start();
    let dir = TempDir::new("nohang");
    let store = store_with_key(&sim, &dir);
    let port = faulty_proxy(sim.data_port(), SIGN, Fault::Short(20));
    let (ok, err, took) = sign_via(&format!("swtpm:host=127.0.0.1,port={port}"), &store, &dir);
    println!("short response: {took:?}: {err}");
    assert!(!ok);
    assert!(
        err.contains("did not answer TPM2_Sign within 2 s (20 of the ")
            && err.contains("bytes it announced arrived)"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(2) && took < LIMIT, "{took:?}");
}

#[test]
fn a_connection_closed_mid_response_says_so() {
    let sim = Swtpm::start();
    let dir = TempDir::new("nohang");
    let store = store_with_key(&sim, &dir);
    let port = faulty_proxy(sim.data_port(), SIGN, Fault::Cut(20));
    let (ok, err, took) = sign_via(&format!("swtpm:host=127.0.0.1,port={port}"), &store, &dir);
    println!("cut response: {took:?}: {err}");
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "the TPM at 127.0.0.1:{port} closed the connection during the response to TPM2_Sign (20 of the "
        )) && err.contains("is swtpm still running?"),
        "{err}"
    );
    assert!(
        !err.contains("failed to fill whole buffer") && !err.contains("temporarily unavailable"),
        "{err}"
    );
    // No wait at all: the close is seen at once.
    assert!(took < LIMIT, "{took:?}");
    let port = faulty_proxy(sim.data_port(), SIGN, Fault::Hangup);
    let (ok, err, _) = sign_via(&format!("swtpm:host=127.0.0.1,port={port}"), &store, &dir);
    assert!(!ok);
    assert!(
        err.contains("closed the connection before answering TPM2_Sign; is swtpm still running?"),
        "{err}"
    );
}

#[test]
fn a_silent_unix_socket_times_out_and_a_missing_one_is_refused() {
    let dir = TempDir::new("nohang-unix");
    let path = dir.path().join("tpm.sock");
    let l = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        // Accept, read, never answer; keep the connections open.
        let mut held = Vec::new();
        for mut c in l.incoming().flatten() {
            let _ = c.read(&mut [0u8; 64]);
            held.push(c);
        }
    });
    let tcti = format!("swtpm:path={}", path.display());
    let t = Instant::now();
    let out = Command::new(common::tpmkey_bin())
        .args(["random", "8"])
        .env("TPMKEY_TCTI", &tcti)
        .env("TPMKEY_TIMEOUT", "1.5")
        .output()
        .unwrap();
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("silent unix socket: {took:?}: {err}");
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "the TPM at {} did not answer TPM2_GetRandom within 1.5 s",
            path.display()
        )),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(1500) && took < LIMIT,
        "{took:?}"
    );

    let gone = dir.path().join("gone.sock");
    let out = Command::new(common::tpmkey_bin())
        .args(["random", "8"])
        .env("TPMKEY_TCTI", format!("swtpm:path={}", gone.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("connection refused; is swtpm running?"),
        "{err}"
    );
}

#[test]
fn a_bad_bound_is_refused_by_name() {
    let out = Command::new(common::tpmkey_bin())
        .args(["random", "8"])
        .env("TPMKEY_TCTI", "swtpm:host=127.0.0.1,port=1")
        .env("TPMKEY_TIMEOUT", "soon")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("TPMKEY_TIMEOUT=\"soon\": a number of seconds"),
        "{err}"
    );
}

/// `tpmkey key add` of a second key with `TPMKEY_TIMEOUT=timeout`: (succeeded,
/// stderr, time).
fn add_key_within(
    sim: &Swtpm,
    store: &std::path::Path,
    label: &str,
    timeout: &str,
) -> (bool, String, Duration) {
    let args = [
        "key",
        "add",
        "--token",
        "t",
        "--label",
        label,
        "--algorithm",
        "ecc256",
        "--userpin",
        "1234",
    ];
    tpmkey_within(&sim.tcti(), store, timeout, &args)
}

/// Another process holding the store's lock (`flock -F`: the lock's holder is the
/// `sleep` itself, killed by PID) until it shows in /proc/locks.
struct StoreHolder(std::process::Child);

impl StoreHolder {
    fn start(store: &std::path::Path, seconds: &str) -> StoreHolder {
        let child = Command::new("flock")
            .arg("-F")
            .arg(store.join("lock"))
            .args(["sleep", seconds])
            .spawn()
            .expect("flock (util-linux) must be installed");
        let pid = child.id().to_string();
        let holder = StoreHolder(child);
        let t = Instant::now();
        while !std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|l| {
                l.contains("FLOCK")
                    && !l.contains("->")
                    && l.split_whitespace().nth(4) == Some(&pid)
            })
        {
            assert!(t.elapsed() < LIMIT, "flock never took the store's lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        holder
    }
}

impl Drop for StoreHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_store_locked_by_another_process_is_waited_for_with_a_bound_and_the_holder_named() {
    let sim = Swtpm::start();
    let dir = TempDir::new("nohang-lock");
    let store = store_with_key(&sim, &dir);

    // Held past the bound: an error naming the holder, at the bound.
    let holder = StoreHolder::start(&store, "60");
    let (ok, err, took) = add_key_within(&sim, &store, "k2", "1");
    assert!(
        !ok,
        "a change went through while another process held the store"
    );
    let pid = holder.0.id();
    assert!(
        err.contains(&format!(
            "the key store is being changed by process {pid} (sleep)"
        )) && err.contains("TPMKEY_TIMEOUT=seconds waits longer"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(1) && took < LIMIT, "{took:?}");
    let (_, keys, _) = common::run_tpmkey_in(&sim.tcti(), &store, &["key", "list"]);
    assert!(
        !keys.contains("k2"),
        "nothing is written after the wait ran out: {keys}"
    );

    // Let go within the bound: the change waits for it and goes through.
    drop(holder);
    let _brief = StoreHolder::start(&store, "1");
    let (ok, err, took) = add_key_within(&sim, &store, "k2", "20");
    assert!(ok, "{err}");
    assert!(
        took >= Duration::from_millis(300) && took < LIMIT,
        "waited {took:?}"
    );
    let (_, keys, _) = common::run_tpmkey_in(&sim.tcti(), &store, &["key", "list"]);
    assert!(keys.contains("k2"), "{keys}");
}

#[test]
fn a_swtpm_another_client_holds_names_that_client() {
    let sim = Swtpm::start();
    let dir = TempDir::new("nohang-held");
    let store = store_with_key(&sim, &dir);
    // This test process holds swtpm's one connection, idle, as tpm2-abrmd does.
    let held = TcpStream::connect(("127.0.0.1", sim.data_port())).unwrap();
    let (ok, err, took) = sign_via(&sim.tcti(), &store, &dir);
    assert!(!ok, "signed while swtpm served another client");
    assert!(
        err.contains("did not answer")
            && err.contains(&format!("process {} (", std::process::id()))
            && err.contains("has a connection to it open, and swtpm serves one client at a time"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(2) && took < LIMIT, "{took:?}");
    // Let go: the same command goes through.
    drop(held);
    let (ok, err, _) = sign_via(&sim.tcti(), &store, &dir);
    assert!(ok, "{err}");
}
