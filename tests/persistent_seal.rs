//! A PIN token's user seal is also kept persistent (0x810001xx), so that a login
//! unseals it without TPM2_Load and TPM2_FlushContext. Checked against swtpm: where
//! it goes, that PIN change and SO reset move the new seal there (the old PIN stops
//! working), that a login still works when someone evicted it or put another object
//! at its handle, that `token rm` removes it, and that a store with a transient SRK
//! keeps none. (swtpm locks out after 3 wrong PINs: each test stays under that.)

mod common;

use std::path::Path;

use common::{Swtpm, TempDir};
use tpm_commands::constants::TpmHandle;
use tpmkey::keys::persist::{evict_control, TOKEN_SEALS};
use tpmkey::tpm::Tpm;

fn tk(tcti: &str, store: &Path, args: &[&str]) -> (bool, String) {
    let (good, out, err) = common::run_tpmkey_in(tcti, store, args);
    (good, out + &err)
}

fn ok(tcti: &str, store: &Path, args: &[&str]) -> String {
    let (good, out) = tk(tcti, store, args);
    assert!(good, "tpmkey {args:?} failed: {out}");
    out
}

/// Persistent handles in the token-seal range.
fn seal_handles(tcti: &str) -> Vec<u32> {
    common::tpm_handles(tcti, *TOKEN_SEALS.start())
        .into_iter()
        .filter(|h| TOKEN_SEALS.contains(h))
        .collect()
}

/// Removes the persistent object at 0x81000100 behind tpmkey's back.
fn evict_first_seal(tcti: &str) {
    let mut tpm = Tpm::open(&tcti.parse().unwrap()).unwrap();
    let h = TpmHandle(0x8100_0100);
    let name = tpm
        .run(&tpm_commands::commands::ReadPublic { object_handle: h })
        .unwrap()
        .name;
    assert!(evict_control(&mut tpm, h, name.as_bytes(), h).unwrap());
}

fn key_add(tcti: &str, store: &Path, label: &str, pin: &str) -> (bool, String) {
    tk(
        tcti,
        store,
        &[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            label,
            "--userpin",
            pin,
        ],
    )
}

#[test]
fn user_seal_lives_at_a_persistent_handle_and_follows_pin_changes() {
    let sim = Swtpm::start();
    let t = sim.tcti();
    let dir = TempDir::new("pseal");
    let store = dir.path().join("store");
    ok(&t, &store, &["init"]);
    ok(
        &t,
        &store,
        &[
            "token",
            "add",
            "--label",
            "ssh",
            "--userpin",
            "1111",
            "--sopin",
            "so-1",
        ],
    );
    assert_eq!(seal_handles(&t), vec![0x8100_0100]);
    let rec = std::fs::read_to_string(store.join("tokens/ssh/token.json")).unwrap();
    assert!(rec.contains("\"user_seal_handle\""), "{rec}");
    assert!(key_add(&t, &store, "k1", "1111").0);

    // PIN change: the persistent seal is the new one.
    ok(
        &t,
        &store,
        &[
            "pin",
            "change",
            "--token",
            "ssh",
            "--userpin",
            "1111",
            "--new-userpin",
            "2222",
        ],
    );
    assert_eq!(seal_handles(&t), vec![0x8100_0100]);
    let (good, out) = key_add(&t, &store, "k2", "1111");
    assert!(!good && out.contains("TPM_RC_AUTH_FAIL"), "old PIN: {out}");
    assert!(key_add(&t, &store, "k2", "2222").0);

    // SO reset: likewise.
    ok(
        &t,
        &store,
        &[
            "pin",
            "reset",
            "--token",
            "ssh",
            "--sopin",
            "so-1",
            "--new-userpin",
            "3333",
        ],
    );
    assert_eq!(seal_handles(&t), vec![0x8100_0100]);
    assert!(!key_add(&t, &store, "k3", "2222").0);
    assert!(key_add(&t, &store, "k3", "3333").0);

    // Someone evicts it: logins go on from the blob on disk.
    evict_first_seal(&t);
    assert!(seal_handles(&t).is_empty());
    assert!(key_add(&t, &store, "k4", "3333").0);

    // Another token takes the free handle; ours is not mistaken for it.
    ok(
        &t,
        &store,
        &[
            "token",
            "add",
            "--label",
            "other",
            "--userpin",
            "9999",
            "--sopin",
            "so-9",
        ],
    );
    assert_eq!(seal_handles(&t), vec![0x8100_0100]);
    let (good, out) = key_add(&t, &store, "k6", "3333");
    assert!(good, "ssh still logs in: {out}");

    // token rm removes the persistent seal of that token only.
    ok(&t, &store, &["token", "rm", "--label", "other"]);
    assert!(seal_handles(&t).is_empty());
    ok(&t, &store, &["token", "rm", "--label", "ssh"]);
}

#[test]
fn a_handle_taken_by_another_object_falls_back_to_the_blob() {
    let sim = Swtpm::start();
    let t = sim.tcti();
    let dir = TempDir::new("pseal2");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    // Store a's seal goes to 0x81000100; then it is evicted behind a's back and store
    // b's seal takes the handle.
    ok(&t, &a, &["init"]);
    ok(
        &t,
        &a,
        &[
            "token",
            "add",
            "--label",
            "ssh",
            "--userpin",
            "1111",
            "--sopin",
            "so-1",
        ],
    );
    evict_first_seal(&t);
    ok(&t, &b, &["init"]);
    ok(
        &t,
        &b,
        &[
            "token",
            "add",
            "--label",
            "ssh",
            "--userpin",
            "2222",
            "--sopin",
            "so-2",
        ],
    );
    assert_eq!(seal_handles(&t), vec![0x8100_0100]);
    // a's record still names 0x81000100, which now holds b's seal.
    assert!(key_add(&t, &a, "ka", "1111").0, "a logs in from its blob");
    // ... and forgets the handle, so that b's seal is not hit again.
    let rec = std::fs::read_to_string(a.join("tokens/ssh/token.json")).unwrap();
    assert!(!rec.contains("user_seal_handle"), "{rec}");
    assert!(key_add(&t, &a, "ka2", "1111").0);
    assert!(key_add(&t, &b, "kb", "2222").0);
    // a's token rm leaves b's seal alone.
    ok(&t, &a, &["token", "rm", "--label", "ssh"]);
    assert_eq!(seal_handles(&t), vec![0x8100_0100]);
}

#[test]
fn a_transient_srk_keeps_no_persistent_seal() {
    let sim = Swtpm::start();
    let t = sim.tcti();
    let dir = TempDir::new("pseal3");
    let store = dir.path().join("store");
    ok(&t, &store, &["init", "--no-persist"]);
    ok(
        &t,
        &store,
        &[
            "token",
            "add",
            "--label",
            "ssh",
            "--userpin",
            "1111",
            "--sopin",
            "so-1",
        ],
    );
    assert!(seal_handles(&t).is_empty());
    assert!(key_add(&t, &store, "k", "1111").0);
}
