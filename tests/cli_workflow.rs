//! The tpm2_ptool workflow with tpmkey against swtpm: init, token add with user
//! and SO PIN, key add ecc256 and rsa2048, key list, ssh-pubkey lines that
//! `ssh-keygen -l -f` accepts; a no-PIN token; a wrong PIN; a store from another TPM.

mod common;

use std::process::Command;

use common::{Swtpm, TempDir};

fn tk(tcti: &str, store: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::tpmkey_bin())
        .args(args)
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_STORE", store)
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

#[test]
fn seed_workflow_end_to_end() {
    let sim = Swtpm::start();
    let dir = TempDir::new("cli");
    let store = dir.path().join("store");
    let t = sim.tcti();
    let run = |args: &[&str]| {
        let (ok, out, err) = tk(&t, &store, args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    };
    assert!(run(&["init"]).contains("initialized; transient SRK"));
    assert!(run(&["init"]).contains("already initialized"));
    run(&[
        "token",
        "add",
        "--label",
        "ssh",
        "--userpin",
        "1234",
        "--sopin",
        "so-pin-5678",
    ]);
    run(&[
        "key",
        "add",
        "--token",
        "ssh",
        "--label",
        "laptop",
        "--algorithm",
        "ecc256",
        "--userpin",
        "1234",
    ]);
    run(&[
        "key",
        "add",
        "--token",
        "ssh",
        "--label",
        "legacy",
        "--algorithm",
        "rsa2048",
        "--userpin",
        "1234",
    ]);
    let list = run(&["key", "list"]);
    assert!(
        list.contains("ssh\tlaptop\tecc256") && list.contains("ssh\tlegacy\trsa2048"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(run(&["key", "list", "--json"]).trim()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let pubs = run(&["ssh-pubkey"]);
    let lines: Vec<&str> = pubs.lines().collect();
    assert_eq!(lines.len(), 2, "{pubs}");
    assert!(
        pubs.contains("ecdsa-sha2-nistp256 ") && pubs.contains(" laptop"),
        "{pubs}"
    );
    assert!(
        pubs.contains("ssh-rsa ") && pubs.contains(" legacy"),
        "{pubs}"
    );
    let file = dir.path().join("keys.pub");
    std::fs::write(&file, &pubs).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(&file)
        .output()
        .expect("ssh-keygen (openssh-client)");
    let fp = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh-keygen -l rejected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fp.contains("256 SHA256:")
            && fp.contains("(ECDSA)")
            && fp.contains("2048 SHA256:")
            && fp.contains("(RSA)"),
        "{fp}"
    );

    // A wrong PIN fails with the TPM's answer and adds no key.
    let (ok, _, err) = tk(
        &t,
        &store,
        &[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            "x",
            "--userpin",
            "0000",
        ],
    );
    assert!(!ok && err.contains("TPM_RC_AUTH_FAIL"), "{err}");
    assert_eq!(run(&["key", "list", "--token", "ssh"]).lines().count(), 2);

    // A no-PIN token needs no PIN at all.
    run(&["token", "add", "--label", "nopin", "--no-pin"]);
    run(&["key", "add", "--token", "nopin", "--label", "k"]);
    assert!(run(&["token", "list"]).contains("nopin\tno PIN\t1 key(s)"));

    // The same store against another TPM fails closed.
    let other = Swtpm::start();
    let (ok, _, err) = tk(
        &other.tcti(),
        &store,
        &["key", "add", "--token", "nopin", "--label", "k2"],
    );
    assert!(
        !ok && err.contains("not the one the keys belong to"),
        "{err}"
    );
}
