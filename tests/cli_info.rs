//! `tpmkey info` and `tpmkey random` end to end against swtpm.

mod common;

use common::{run_tpmkey, Swtpm};

fn check_info(tcti: &str) {
    let (ok, out, err) = run_tpmkey(tcti, &["info"]);
    assert!(ok, "tpmkey info failed: {err}");
    for needle in [
        "Manufacturer:      IBM",
        "Vendor:            SWTPM",
        "Firmware:",
        "Spec:              TPM 2.0",
        "revision 1.",
        "SHA256",
        "ECC curves:        ",
        "NIST_P256",
        "PCR banks:         ",
        "Dictionary attack: 0 of 3 failed tries",
        "SRK 0x81000001:    none",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
}

#[test]
fn info_over_tcp() {
    let tpm = Swtpm::start();
    check_info(&tpm.tcti());
}

#[test]
fn info_over_unix_socket() {
    let tpm = Swtpm::start_unix();
    check_info(&tpm.tcti());
}

#[test]
fn info_json_is_json() {
    let tpm = Swtpm::start();
    let (ok, out, err) = run_tpmkey(&tpm.tcti(), &["info", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("valid JSON");
    assert_eq!(v["manufacturer"], "IBM");
    assert_eq!(v["family"], "2.0");
    assert!(v["algorithms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "TPM_ALG_SHA256"));
    assert!(v["ecc_curves"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "TPM_ECC_NIST_P256"));
    assert_eq!(v["dictionary_attack"]["max_tries"], 3);
    assert!(v["srk"].is_null());
}

#[test]
fn no_tpm_is_one_line_with_a_hint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ok, out, err) = run_tpmkey(&format!("swtpm:host=127.0.0.1,port={port}"), &["info"]);
    assert!(!ok);
    assert!(out.is_empty());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("is swtpm running"), "{err}");

    let (ok, _, err) = run_tpmkey("device:/dev/tpm-not-here", &["info"]);
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("no such device"), "{err}");

    let (ok, _, err) = run_tpmkey("tabrmd:bus_type=session", &["info"]);
    assert!(!ok);
    assert!(err.contains("bad TCTI string"), "{err}");
}

#[test]
fn random_prints_hex() {
    let tpm = Swtpm::start();
    let (ok, out, err) = run_tpmkey(&tpm.tcti(), &["random", "100"]);
    assert!(ok, "{err}");
    let hex = out.trim();
    assert_eq!(hex.len(), 200);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let (_, out2, _) = run_tpmkey(&tpm.tcti(), &["random", "100"]);
    assert_ne!(hex, out2.trim(), "two reads gave the same bytes");
}

#[test]
fn check_walks_through_the_setup() {
    let tpm = Swtpm::start();
    let dir = common::TempDir::new("check");
    let out = std::process::Command::new(common::tpmkey_bin())
        .args(["check", "--store"])
        .arg(dir.path().join("store"))
        .env("TPMKEY_TCTI", tpm.tcti())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok   TPM 2.0 answers: IBM SWTPM"), "{text}");
    assert!(
        text.contains("not initialized: run `tpmkey init` first"),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");

    let (ok, out, _) = run_tpmkey("device:/dev/tpm-not-here", &["check"]);
    assert!(!ok);
    assert!(out.contains("FAIL /dev/tpm-not-here"), "{out}");
}

/// A reader that left before tpmkey wrote (`tpmkey info | head -3` when head is
/// done): tpmkey ends by SIGPIPE, as Unix filters do, with nothing on stderr (no
/// panic from `println!`).
#[test]
fn a_reader_that_left_ends_tpmkey_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let tpm = Swtpm::start();
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let out = std::process::Command::new(common::tpmkey_bin())
        .arg("info")
        .env("TPMKEY_TCTI", tpm.tcti())
        .env_remove("TPM2TOOLS_TCTI")
        .stdout(std::process::Stdio::from(write_end))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(nix::libc::SIGPIPE),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
