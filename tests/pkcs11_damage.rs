//! The PKCS#11 module and a damaged store, through `ssh-keygen -D libtpmkey.so`
//! (the module's listing path): one unreadable key or token file hides only that
//! key or token, and the module says so on stderr; a store.json it cannot read
//! (corrupt, or a FIFO) is said on stderr at once instead of silently showing no
//! slots; `TPMKEY_PKCS11_QUIET=1` silences all of it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ssh::module_path;
use common::{Swtpm, TempDir};

/// `ssh-keygen -D module` on `store`: (public key lines, stderr). Fails the test if
/// it runs past 10 s.
fn list_keys(store: &Path, quiet: bool) -> (Vec<String>, String) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-D")
        .arg(module_path())
        .env("TPMKEY_STORE", store)
        // Listing never reaches the TPM; an unreachable one proves it.
        .env("TPMKEY_TCTI", "swtpm:host=127.0.0.1,port=1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if quiet {
        cmd.env("TPMKEY_PKCS11_QUIET", "1");
    } else {
        cmd.env_remove("TPMKEY_PKCS11_QUIET");
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("ssh-keygen (openssh-client)");
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ssh-keygen -D hung on a damaged store");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ecdsa-"))
        .map(String::from)
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn key_file(store: &Path, token: &str, label: &str) -> std::path::PathBuf {
    std::fs::read_dir(store.join("tokens").join(token).join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains(&format!("\"label\": \"{label}\""))
        })
        .unwrap()
}

#[test]
fn damage_hides_only_itself_and_the_module_says_so() {
    let sim = Swtpm::start();
    let dir = TempDir::new("p11damage");
    let store = dir.path().join("store");
    for args in [
        &["init"][..],
        &["token", "add", "--label", "a", "--no-pin"],
        &["key", "add", "--token", "a", "--label", "a1"],
        &["key", "add", "--token", "a", "--label", "a2"],
        &["token", "add", "--label", "b", "--no-pin"],
        &["key", "add", "--token", "b", "--label", "b1"],
    ] {
        let (ok, _, err) = common::run_tpmkey_in(&sim.tcti(), &store, args);
        assert!(ok, "tpmkey {args:?}: {err}");
    }
    drop(sim);
    let (lines, err) = list_keys(&store, false);
    assert_eq!(lines.len(), 3, "{lines:?} {err}");
    assert!(!err.contains("libtpmkey"), "{err}");

    // A truncated key file: that key only.
    let a1 = key_file(&store, "a", "a1");
    let good = std::fs::read(&a1).unwrap();
    std::fs::write(&a1, &good[..good.len() / 2]).unwrap();
    let (lines, err) = list_keys(&store, false);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| !l.ends_with(" a1")), "{lines:?}");
    assert!(
        err.contains("libtpmkey: a key is not shown") && err.contains(&a1.display().to_string()),
        "{err}"
    );
    let (lines, err) = list_keys(&store, true);
    assert_eq!(lines.len(), 2);
    assert!(!err.contains("libtpmkey"), "quiet: {err}");
    std::fs::write(&a1, good).unwrap();

    // A token record that is a FIFO: that token only, at once.
    let b = store.join("tokens/b/token.json");
    std::fs::rename(&b, dir.path().join("b.json")).unwrap();
    nix::unistd::mkfifo(&b, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (lines, err) = list_keys(&store, false);
    assert_eq!(lines.len(), 2, "{lines:?} {err}");
    assert!(
        err.contains("token \"b\" is not shown") && err.contains("a FIFO"),
        "{err}"
    );
    std::fs::remove_file(&b).unwrap();
    std::fs::rename(dir.path().join("b.json"), &b).unwrap();

    // store.json unreadable: said, not shown as an empty store.
    let record = store.join("store.json");
    let saved = std::fs::read(&record).unwrap();
    std::fs::write(&record, b"{\"version\": 1, \"srk\"").unwrap();
    let (lines, err) = list_keys(&store, false);
    assert!(lines.is_empty());
    assert!(
        err.contains("libtpmkey: cannot read the key store")
            && err.contains("store.json")
            && err.contains("corrupt"),
        "{err}"
    );
    std::fs::remove_file(&record).unwrap();
    nix::unistd::mkfifo(&record, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (lines, err) = list_keys(&store, false);
    assert!(lines.is_empty());
    assert!(
        err.contains("cannot read the key store") && err.contains("a FIFO"),
        "{err}"
    );
    let (_, err) = list_keys(&store, true);
    assert!(!err.contains("libtpmkey"), "quiet: {err}");
    std::fs::remove_file(&record).unwrap();
    std::fs::write(&record, saved).unwrap();
    assert_eq!(list_keys(&store, false).0.len(), 3);
}
