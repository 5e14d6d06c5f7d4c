//! The tpm2_ptool workflow with tpmkey against swtpm: init, token add with user
//! and SO PIN, key add ecc256 and rsa2048, key list, ssh-pubkey lines that
//! `ssh-keygen -l -f` accepts; a no-PIN token; a wrong PIN; a store from another TPM.

mod common;

use std::process::Command;

use common::{Swtpm, TempDir};

fn tk(tcti: &str, store: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    common::run_tpmkey_in(tcti, store, args)
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
    assert!(run(&["init"]).contains("initialized; persistent SRK at 0x81000001"));
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

#[test]
fn imported_ssh_keys_keep_their_public_key() {
    let sim = Swtpm::start();
    let dir = TempDir::new("import");
    let store = dir.path().join("store");
    let t = sim.tcti();
    let run = |args: &[&str]| {
        let (ok, out, err) = tk(&t, &store, args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    };
    run(&["init"]);
    run(&[
        "token",
        "add",
        "--label",
        "ssh",
        "--userpin",
        "1234",
        "--sopin",
        "so",
    ]);
    let keygen = |name: &str, args: &[&str]| -> std::path::PathBuf {
        let path = dir.path().join(name);
        let st = Command::new("ssh-keygen")
            .args(args)
            .arg("-q")
            .arg("-C")
            .arg(name)
            .arg("-f")
            .arg(&path)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        path
    };
    let cases = [
        (
            "ecdsa256",
            keygen("ecdsa256", &["-t", "ecdsa", "-b", "256", "-N", ""]),
        ),
        (
            "ecdsa384",
            keygen("ecdsa384", &["-t", "ecdsa", "-b", "384", "-N", ""]),
        ),
        (
            "rsa2048",
            keygen("rsa2048", &["-t", "rsa", "-b", "2048", "-N", ""]),
        ),
        (
            "withpass",
            keygen(
                "withpass",
                &["-t", "ecdsa", "-b", "256", "-N", "open sesame"],
            ),
        ),
        (
            "sec1",
            keygen("sec1", &["-t", "ecdsa", "-b", "256", "-N", "", "-m", "PEM"]),
        ),
        (
            "pkcs1",
            keygen("pkcs1", &["-t", "rsa", "-b", "2048", "-N", "", "-m", "PEM"]),
        ),
        (
            "pkcs8",
            keygen(
                "pkcs8",
                &["-t", "ecdsa", "-b", "384", "-N", "", "-m", "PKCS8"],
            ),
        ),
    ];
    assert!(std::fs::read_to_string(&cases[4].1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    assert!(std::fs::read_to_string(&cases[5].1)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    assert!(std::fs::read_to_string(&cases[6].1)
        .unwrap()
        .contains("BEGIN PRIVATE KEY"));
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "open sesame\n").unwrap();
    for (label, path) in &cases {
        let p = path.to_str().unwrap();
        run(&[
            "key",
            "import",
            "--token",
            "ssh",
            "--label",
            label,
            p,
            "--userpin",
            "1234",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ]);
        let line = run(&["ssh-pubkey", "--token", "ssh", "--label", label]);
        let original = std::fs::read_to_string(format!("{p}.pub")).unwrap();
        let blob = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(
            blob(&line),
            blob(&original),
            "{label}: key blob differs from the original .pub"
        );
    }
    // Signatures made in the TPM verify against each original public key.
    {
        use sha2::{Digest, Sha256, Sha384};
        use ssh_key::public::{EcdsaPublicKey, KeyData};
        use tpm_commands::constants::TpmAlgId;
        use tpm_commands::structures::TpmtSignature;
        let app = tpmkey::app::App::open(Some(store.clone()), t.parse().unwrap()).unwrap();
        let mut c = app.connect().unwrap();
        let secret = app.token_secret(&mut c, "ssh", b"1234").unwrap();
        let (keys, _) = app.key_list(Some("ssh")).unwrap();
        for (label, path) in &cases {
            let k = &keys.iter().find(|(_, k)| &k.label == label).unwrap().1;
            let kp = store.join("tokens/ssh/keys").join(format!("{}.json", k.id));
            let loaded = tpmkey::keys::ops::load_key(
                &mut c.tpm,
                &c.srk,
                &mut c.session,
                &tpmkey::app::unwrap_record(&k.blob, &kp).unwrap(),
            )
            .unwrap();
            let auth =
                tpmkey::token::key_auth(&secret, &tpmkey::store::from_hex(&k.id, &kp).unwrap());
            let original = ssh_key::PublicKey::from_openssh(
                &std::fs::read_to_string(format!("{}.pub", path.display())).unwrap(),
            )
            .unwrap();
            match original.key_data() {
                KeyData::Ecdsa(EcdsaPublicKey::NistP256(p)) => {
                    use p256::ecdsa::signature::hazmat::PrehashVerifier;
                    let d = Sha256::digest(label.as_bytes());
                    let TpmtSignature::Ecc { r, s, .. } = tpmkey::keys::ops::sign(
                        &mut c.tpm,
                        &loaded,
                        &mut c.session,
                        &auth,
                        &d,
                        TpmAlgId::ECDSA,
                        TpmAlgId::SHA256,
                    )
                    .unwrap() else {
                        panic!()
                    };
                    let sig = p256::ecdsa::Signature::from_scalars(
                        *p256::FieldBytes::from_slice(r.as_bytes()),
                        *p256::FieldBytes::from_slice(s.as_bytes()),
                    )
                    .unwrap();
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(p.as_bytes())
                        .unwrap()
                        .verify_prehash(&d, &sig)
                        .expect(label);
                }
                KeyData::Ecdsa(EcdsaPublicKey::NistP384(p)) => {
                    use p384::ecdsa::signature::hazmat::PrehashVerifier;
                    let d = Sha384::digest(label.as_bytes());
                    let TpmtSignature::Ecc { r, s, .. } = tpmkey::keys::ops::sign(
                        &mut c.tpm,
                        &loaded,
                        &mut c.session,
                        &auth,
                        &d,
                        TpmAlgId::ECDSA,
                        TpmAlgId::SHA384,
                    )
                    .unwrap() else {
                        panic!()
                    };
                    let sig = p384::ecdsa::Signature::from_scalars(
                        *p384::FieldBytes::from_slice(r.as_bytes()),
                        *p384::FieldBytes::from_slice(s.as_bytes()),
                    )
                    .unwrap();
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(p.as_bytes())
                        .unwrap()
                        .verify_prehash(&d, &sig)
                        .expect(label);
                }
                KeyData::Rsa(rk) => {
                    use rsa::traits::SignatureScheme;
                    let key = rsa::RsaPublicKey::new(
                        rsa::BigUint::from_bytes_be(rk.n.as_positive_bytes().unwrap()),
                        rsa::BigUint::from_bytes_be(rk.e.as_positive_bytes().unwrap()),
                    )
                    .unwrap();
                    let d = Sha256::digest(label.as_bytes());
                    let TpmtSignature::Rsa { sig, .. } = tpmkey::keys::ops::sign(
                        &mut c.tpm,
                        &loaded,
                        &mut c.session,
                        &auth,
                        &d,
                        TpmAlgId::RSASSA,
                        TpmAlgId::SHA256,
                    )
                    .unwrap() else {
                        panic!()
                    };
                    rsa::Pkcs1v15Sign::new::<Sha256>()
                        .verify(&key, &d, sig.as_bytes())
                        .expect(label);
                }
                other => panic!("{other:?}"),
            }
            c.tpm.flush(loaded.handle).unwrap();
        }
    }
    // A wrong passphrase and an Ed25519 key are refused with reasons.
    std::fs::write(&pass, "wrong\n").unwrap();
    let (ok, _, err) = tk(
        &t,
        &store,
        &[
            "key",
            "import",
            "--token",
            "ssh",
            "--label",
            "x",
            cases[3].1.to_str().unwrap(),
            "--userpin",
            "1234",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("wrong passphrase"), "{err}");
    let ed = keygen("ed", &["-t", "ed25519", "-N", ""]);
    let (ok, _, err) = tk(
        &t,
        &store,
        &[
            "key",
            "import",
            "--token",
            "ssh",
            "--label",
            "ed",
            ed.to_str().unwrap(),
            "--userpin",
            "1234",
        ],
    );
    assert!(
        !ok && err.contains("Ed25519 keys cannot go into a TPM"),
        "{err}"
    );
}

#[test]
fn pin_change_and_reset_from_the_command_line() {
    let sim = Swtpm::start();
    let dir = TempDir::new("pins");
    let store = dir.path().join("store");
    let t = sim.tcti();
    let run = |args: &[&str]| {
        let (ok, out, err) = tk(&t, &store, args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    };
    run(&["init"]);
    run(&[
        "token",
        "add",
        "--label",
        "ssh",
        "--userpin",
        "1111",
        "--sopin",
        "so-99",
    ]);
    run(&[
        "key",
        "add",
        "--token",
        "ssh",
        "--label",
        "k1",
        "--userpin",
        "1111",
    ]);
    run(&[
        "pin",
        "change",
        "--token",
        "ssh",
        "--userpin",
        "1111",
        "--new-userpin",
        "2222",
    ]);
    // Keys made before the change still work with the new PIN (k2 proves the
    // secret unseals; k1's blob is untouched).
    let before = std::fs::read_dir(store.join("tokens/ssh/keys"))
        .unwrap()
        .count();
    run(&[
        "key",
        "add",
        "--token",
        "ssh",
        "--label",
        "k2",
        "--userpin",
        "2222",
    ]);
    assert_eq!(
        std::fs::read_dir(store.join("tokens/ssh/keys"))
            .unwrap()
            .count(),
        before + 1
    );
    let (ok, _, err) = tk(
        &t,
        &store,
        &[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            "k3",
            "--userpin",
            "1111",
        ],
    );
    assert!(
        !ok && err.contains("TPM_RC_AUTH_FAIL"),
        "old PIN must fail: {err}"
    );
    run(&[
        "pin",
        "reset",
        "--token",
        "ssh",
        "--sopin",
        "so-99",
        "--new-userpin",
        "3333",
    ]);
    run(&[
        "key",
        "add",
        "--token",
        "ssh",
        "--label",
        "k3",
        "--userpin",
        "3333",
    ]);
    assert_eq!(run(&["key", "list"]).lines().count(), 3);
}

#[test]
fn lockout_is_reported_with_its_recovery_time() {
    let sim = Swtpm::start();
    let dir = TempDir::new("lockout");
    let store = dir.path().join("store");
    let t = sim.tcti();
    assert!(tk(&t, &store, &["init"]).0);
    assert!(
        tk(
            &t,
            &store,
            &[
                "token",
                "add",
                "--label",
                "ssh",
                "--userpin",
                "1234",
                "--sopin",
                "so"
            ]
        )
        .0
    );
    let mut last = String::new();
    for _ in 0..4 {
        let (ok, _, err) = tk(
            &t,
            &store,
            &[
                "key",
                "add",
                "--token",
                "ssh",
                "--label",
                "k",
                "--userpin",
                "0000",
            ],
        );
        assert!(!ok);
        last = err;
    }
    assert!(
        last.contains("dictionary-attack lockout")
            && last.contains("3 of 3 failures")
            && last.contains("1000 s"),
        "{last}"
    );
    // The right PIN is refused too, and said to be a lockout, not a wrong PIN.
    let (ok, _, err) = tk(
        &t,
        &store,
        &[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            "k",
            "--userpin",
            "1234",
        ],
    );
    assert!(!ok && err.contains("not a wrong-PIN answer"), "{err}");
}

fn spawn_tk(tcti: &str, store: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(common::tpmkey_bin())
        .args(args)
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_STORE", store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tpmkey")
}

/// Loads every listed key of token `ssh` and signs with it.
fn every_key_signs(tcti: &str, store: &std::path::Path, pin: &[u8]) -> usize {
    use sha2::{Digest, Sha256};
    use tpm_commands::constants::TpmAlgId;
    let app = tpmkey::app::App::open(Some(store.to_path_buf()), tcti.parse().unwrap()).unwrap();
    let (keys, bad) = app.key_list(Some("ssh")).unwrap();
    assert!(bad.is_empty(), "unreadable key files: {bad:?}");
    let mut c = app.connect().unwrap();
    let secret = app.token_secret(&mut c, "ssh", pin).unwrap();
    for (_, k) in &keys {
        let path = store.join("tokens/ssh/keys").join(format!("{}.json", k.id));
        let w = tpmkey::app::unwrap_record(&k.blob, &path).unwrap();
        let loaded = tpmkey::keys::ops::load_key(&mut c.tpm, &c.srk, &mut c.session, &w).unwrap();
        let auth =
            tpmkey::token::key_auth(&secret, &tpmkey::store::from_hex(&k.id, &path).unwrap());
        let d = Sha256::digest(b"x");
        tpmkey::keys::ops::sign(
            &mut c.tpm,
            &loaded,
            &mut c.session,
            &auth,
            &d,
            TpmAlgId::ECDSA,
            TpmAlgId::SHA256,
        )
        .unwrap_or_else(|e| panic!("key {}: {e}", k.label));
        c.tpm.flush(loaded.handle).unwrap();
    }
    keys.len()
}

#[test]
fn concurrent_adds_and_kill_9_leave_a_working_store() {
    let sim = Swtpm::start();
    let dir = TempDir::new("kill");
    let store = dir.path().join("store");
    let t = sim.tcti();
    assert!(tk(&t, &store, &["init"]).0);
    assert!(
        tk(
            &t,
            &store,
            &[
                "token",
                "add",
                "--label",
                "ssh",
                "--userpin",
                "1234",
                "--sopin",
                "so"
            ]
        )
        .0
    );
    // Two processes adding keys at the same time: both keys are there.
    let a = spawn_tk(
        &t,
        &store,
        &[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            "a",
            "--userpin",
            "1234",
        ],
    );
    let b = spawn_tk(
        &t,
        &store,
        &[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            "b",
            "--userpin",
            "1234",
        ],
    );
    for mut c in [a, b] {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(every_key_signs(&t, &store, b"1234"), 2);
    // kill -9 in the middle of `key add`, many times, at varying points.
    for i in 0..12u64 {
        let mut c = spawn_tk(
            &t,
            &store,
            &[
                "key",
                "add",
                "--token",
                "ssh",
                "--label",
                &format!("k{i}"),
                "--userpin",
                "1234",
            ],
        );
        std::thread::sleep(std::time::Duration::from_millis(3 * i));
        let _ = c.kill();
        let _ = c.wait();
    }
    let n = every_key_signs(&t, &store, b"1234");
    assert!(n >= 2, "{n} keys");
    eprintln!("{n} keys listed and working after 12 kills");
}
