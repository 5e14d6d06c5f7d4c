//! `tpmkey seal` / `unseal` / `sign` / `pcr extend` against swtpm: a secret sealed
//! to sha256:7,16 unseals until PCR 16 is extended, then fails with exit status 1
//! and a message naming PCR 16; PINs right and wrong; a too-large secret and a
//! tampered file are refused cleanly; the secret never crosses the wire in clear;
//! `tpmkey sign` prints signatures that verify; examples/embed runs.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::proxy::TpmProxy;
use common::{Swtpm, TempDir};

/// Runs tpmkey with `stdin`, extra environment, the store and TCTI set.
fn tk(tcti: &str, store: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::tpmkey_bin());
    cmd.args(args)
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_STORE", store)
        .env_remove("TPM2TOOLS_TCTI")
        .env_remove("TPMKEY_PIN")
        .env_remove("TPMKEY_SOPIN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run tpmkey");
    let mut input = child.stdin.take().expect("stdin");
    // A refused seal may exit before reading everything.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("tpmkey output")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output, what: &str) -> Vec<u8> {
    assert!(o.status.success(), "{what} failed: {}", err(&o));
    o.stdout
}

/// Exit status 1, a message, and no panic.
fn fails(o: &Output, what: &str) -> String {
    let e = err(o);
    assert_eq!(o.status.code(), Some(1), "{what}: {e}");
    assert!(!e.contains("panicked"), "{what} panicked: {e}");
    e
}

#[test]
fn sealed_to_pcrs_unseals_until_pcr16_is_extended_and_never_crosses_in_clear() {
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let dir = TempDir::new("seal");
    let store = dir.path().join("store");
    let t = proxy.tcti();
    let file = dir.path().join("disk.sealed");
    let file_s = file.to_str().unwrap();
    // Binary, not UTF-8, 64 bytes.
    let secret: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();

    // Without `tpmkey init`, seal says what to do.
    let o = tk(
        &t,
        &store,
        &["seal", "--pcrs", "sha256:7,16", "--out", file_s],
        &secret,
        &[],
    );
    assert!(fails(&o, "seal before init").contains("tpmkey init"));

    ok(tk(&t, &store, &["init"], b"", &[]), "init");
    ok(
        tk(
            &t,
            &store,
            &["seal", "--pcrs", "sha256:7,16", "--out", file_s],
            &secret,
            &[],
        ),
        "seal",
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "sealed file mode {mode:o}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["format"], "tpmkey-sealed");
    assert_eq!(json["version"], 1);
    assert_eq!(json["pcrs"], "sha256:7,16");
    assert_eq!(json["pcr_values"].as_array().unwrap().len(), 2);

    // Unseal to stdout (raw bytes), and to a 0600 file.
    let out = ok(tk(&t, &store, &["unseal", file_s], b"", &[]), "unseal");
    assert_eq!(out, secret);
    let plain = dir.path().join("plain");
    ok(
        tk(
            &t,
            &store,
            &["unseal", file_s, "--out", plain.to_str().unwrap()],
            b"",
            &[],
        ),
        "unseal --out",
    );
    assert_eq!(std::fs::read(&plain).unwrap(), secret);
    assert_eq!(
        std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Unseal needs no key store: the sealed file names its SRK.
    let o = tk(
        &t,
        &dir.path().join("no-store"),
        &["unseal", file_s],
        b"",
        &[],
    );
    assert_eq!(ok(o, "unseal without a store"), secret);

    // Boot-chain PCRs are not extended by accident.
    let o = tk(&t, &store, &["pcr", "extend", "7", "--data", "x"], b"", &[]);
    assert!(fails(&o, "pcr extend 7").contains("--force"));

    // Extend PCR 16: the policy no longer holds, and the message says why.
    let o = ok(
        tk(
            &t,
            &store,
            &["pcr", "extend", "16", "--data", "next stage"],
            b"",
            &[],
        ),
        "pcr extend 16",
    );
    assert!(String::from_utf8_lossy(&o).starts_with("sha256:16 "));
    let o = tk(&t, &store, &["unseal", file_s], b"", &[]);
    let e = fails(&o, "unseal after extend");
    assert!(o.stdout.is_empty());
    assert!(
        e.contains("unseal: the PCR values differ from when the secret was sealed")
            && e.contains("PCR sha256:16 changed")
            && !e.contains("sha256:7 changed")
            && e.contains("the policy does not match"),
        "{e}"
    );

    drop(sim);
    assert!(
        proxy.command_count() > 10,
        "the proxy saw {} commands",
        proxy.command_count()
    );
    assert!(
        !proxy.saw_bytes(&secret),
        "the sealed secret crossed the wire in clear"
    );
    assert!(!proxy.saw_bytes(&secret[..16]));
}

#[test]
fn pin_protected_secrets_want_the_right_pin() {
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let dir = TempDir::new("seal-pin");
    let store = dir.path().join("store");
    let t = proxy.tcti();
    ok(tk(&t, &store, &["init"], b"", &[]), "init");
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "pin-4711\n").unwrap();
    let secret = b"luks passphrase 0123456789";

    // PCRs and a PIN (from --pin-file), unsealed with TPMKEY_PIN.
    let both = dir.path().join("both.sealed");
    ok(
        tk(
            &t,
            &store,
            &[
                "seal",
                "--pcrs",
                "sha256:7,16",
                "--with-pin",
                "--pin-file",
                pin_file.to_str().unwrap(),
                "--out",
                both.to_str().unwrap(),
            ],
            secret,
            &[],
        ),
        "seal --with-pin",
    );
    let both_s = both.to_str().unwrap();
    let out = ok(
        tk(
            &t,
            &store,
            &["unseal", both_s],
            b"",
            &[("TPMKEY_PIN", "pin-4711")],
        ),
        "unseal with the right PIN",
    );
    assert_eq!(out, secret);
    let o = tk(
        &t,
        &store,
        &["unseal", both_s],
        b"",
        &[("TPMKEY_PIN", "0000")],
    );
    let e = fails(&o, "unseal with a wrong PIN");
    assert!(
        e.contains("TPM_RC_AUTH_FAIL") && e.contains("wrong PIN"),
        "{e}"
    );
    assert!(o.stdout.is_empty());
    let o = tk(
        &t,
        &store,
        &["unseal", both_s, "--pin-file", pin_file.to_str().unwrap()],
        b"",
        &[],
    );
    assert_eq!(ok(o, "unseal --pin-file"), secret);

    // A PIN and no PCRs.
    let pin_only = dir.path().join("pin-only.sealed");
    ok(
        tk(
            &t,
            &store,
            &["seal", "--with-pin", "--out", pin_only.to_str().unwrap()],
            secret,
            &[("TPMKEY_PIN", "pin-only-1")],
        ),
        "seal with a PIN only",
    );
    let o = tk(
        &t,
        &store,
        &["unseal", pin_only.to_str().unwrap()],
        b"",
        &[("TPMKEY_PIN", "pin-only-1")],
    );
    assert_eq!(ok(o, "unseal PIN only"), secret);

    // No PCRs and no PIN: nothing would protect it.
    let none = dir.path().join("none.sealed");
    for pcrs in ["", "sha256:"] {
        let o = tk(
            &t,
            &store,
            &["seal", "--pcrs", pcrs, "--out", none.to_str().unwrap()],
            secret,
            &[],
        );
        assert!(fails(&o, "seal without protection").contains("nothing would protect"));
    }
    assert!(!none.exists());

    drop(sim);
    for (what, bytes) in [
        ("secret", &secret[..]),
        ("PIN", b"pin-4711"),
        ("PIN", b"pin-only-1"),
    ] {
        assert!(
            !proxy.saw_bytes(bytes),
            "the {what} crossed the wire in clear"
        );
    }
}

#[test]
fn oversized_secrets_and_tampered_files_are_refused_cleanly() {
    let sim = Swtpm::start();
    let dir = TempDir::new("seal-bad");
    let store = dir.path().join("store");
    let t = sim.tcti();
    ok(tk(&t, &store, &["init"], b"", &[]), "init");
    let file = dir.path().join("s.sealed");
    let file_s = file.to_str().unwrap();

    let o = tk(
        &t,
        &store,
        &["seal", "--pcrs", "sha256:16", "--out", file_s],
        &[7u8; 129],
        &[],
    );
    assert!(fails(&o, "129-byte secret").contains("at most 128 bytes"));
    let o = tk(
        &t,
        &store,
        &["seal", "--pcrs", "sha256:16", "--out", file_s],
        b"",
        &[],
    );
    assert!(fails(&o, "empty secret").contains("empty"));
    for bad in ["md5:1", "sha256:24", "sha256:7+sha256:8", "sha256"] {
        let o = tk(
            &t,
            &store,
            &["seal", "--pcrs", bad, "--out", file_s],
            b"x",
            &[],
        );
        fails(&o, bad);
    }
    assert!(!file.exists());

    // 128 bytes is fine, from --in.
    let input = dir.path().join("secret");
    std::fs::write(&input, [9u8; 128]).unwrap();
    ok(
        tk(
            &t,
            &store,
            &[
                "seal",
                "--pcrs",
                "sha256:16+sha1:16",
                "--in",
                input.to_str().unwrap(),
                "--out",
                file_s,
            ],
            b"",
            &[],
        ),
        "seal 128 bytes, two banks",
    );
    assert_eq!(
        ok(tk(&t, &store, &["unseal", file_s], b"", &[]), "unseal"),
        vec![9u8; 128]
    );

    let good = std::fs::read_to_string(&file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let flip = |s: &str| -> String {
        let mut b = s.as_bytes().to_vec();
        let i = b.len() / 2;
        b[i] = if b[i] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    let mut m = v.clone();
    m["object"]["private"] = flip(v["object"]["private"].as_str().unwrap()).into();
    cases.push(("private area", m.to_string(), "TPM2_Load failed"));
    let mut m = v.clone();
    m["object"]["public"] = flip(v["object"]["public"].as_str().unwrap()).into();
    cases.push(("public area", m.to_string(), "not a usable sealed file"));
    let mut m = v.clone();
    m["pcr_values"][0]["value"] = flip(v["pcr_values"][0]["value"].as_str().unwrap()).into();
    cases.push(("PCR value", m.to_string(), "the file was altered"));
    let mut m = v.clone();
    m["pcrs"] = "sha256:16".into();
    cases.push(("selection", m.to_string(), "not a usable sealed file"));
    let mut m = v.clone();
    m["version"] = 2.into();
    cases.push(("version", m.to_string(), "newer tpmkey"));
    let mut m = v.clone();
    m["srk"]["name"] = flip(v["srk"]["name"].as_str().unwrap()).into();
    cases.push(("SRK Name", m.to_string(), "sealed on another TPM"));
    cases.push(("truncated", good[..good.len() / 2].to_string(), "not JSON"));
    cases.push((
        "not hex",
        good.replace("\"private\": \"", "\"private\": \"zz"),
        "not hex",
    ));
    cases.push(("empty", String::new(), "not JSON"));
    for (what, text, expect) in cases {
        let bad = dir.path().join("bad.sealed");
        std::fs::write(&bad, text).unwrap();
        let o = tk(&t, &store, &["unseal", bad.to_str().unwrap()], b"", &[]);
        let e = fails(&o, what);
        assert!(e.contains(expect), "{what}: expected {expect:?} in {e}");
        assert!(o.stdout.is_empty(), "{what}");
    }
    let o = tk(
        &t,
        &store,
        &["unseal", dir.path().join("missing").to_str().unwrap()],
        b"",
        &[],
    );
    assert!(fails(&o, "missing file").contains("No such file"));
}

fn ssh_key_of(t: &str, store: &Path, label: &str) -> ssh_key::PublicKey {
    let out = ok(
        tk(
            t,
            store,
            &["ssh-pubkey", "--token", "ci", "--label", label],
            b"",
            &[],
        ),
        "ssh-pubkey",
    );
    ssh_key::PublicKey::from_openssh(String::from_utf8(out).unwrap().trim()).unwrap()
}

#[test]
fn sign_prints_signatures_that_verify() {
    use sha2::{Digest, Sha256, Sha384};
    use ssh_key::public::{EcdsaPublicKey, KeyData};
    let sim = Swtpm::start();
    let dir = TempDir::new("sign");
    let store = dir.path().join("store");
    let t = sim.tcti();
    ok(tk(&t, &store, &["init"], b"", &[]), "init");
    ok(
        tk(
            &t,
            &store,
            &[
                "token",
                "add",
                "--label",
                "ci",
                "--userpin",
                "1234",
                "--sopin",
                "so-55",
            ],
            b"",
            &[],
        ),
        "token add",
    );
    for (label, alg) in [("ec", "ecc256"), ("rsa", "rsa2048")] {
        ok(
            tk(
                &t,
                &store,
                &[
                    "key",
                    "add",
                    "--token",
                    "ci",
                    "--label",
                    label,
                    "--algorithm",
                    alg,
                    "--userpin",
                    "1234",
                ],
                b"",
                &[],
            ),
            "key add",
        );
    }
    let data = b"release-1.2.3.tar.gz contents";

    // ECDSA P-256 over SHA-256, data on stdin, PIN from TPMKEY_PIN.
    let out = ok(
        tk(
            &t,
            &store,
            &["sign", "--token", "ci", "--label", "ec"],
            data,
            &[("TPMKEY_PIN", "1234")],
        ),
        "sign ec",
    );
    let sig = hex::decode(String::from_utf8(out).unwrap().trim()).unwrap();
    assert_eq!(sig.len(), 64);
    let KeyData::Ecdsa(EcdsaPublicKey::NistP256(p)) =
        ssh_key_of(&t, &store, "ec").key_data().clone()
    else {
        panic!("not a P-256 key")
    };
    {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        p256::ecdsa::VerifyingKey::from_sec1_bytes(p.as_bytes())
            .unwrap()
            .verify_prehash(
                &Sha256::digest(data),
                &p256::ecdsa::Signature::from_slice(&sig).unwrap(),
            )
            .expect("ECDSA signature from tpmkey sign");
    }

    // RSA PKCS#1 v1.5 over SHA-384, data from --in, PIN from --userpin.
    let input = dir.path().join("data");
    std::fs::write(&input, data).unwrap();
    let out = ok(
        tk(
            &t,
            &store,
            &[
                "sign",
                "--token",
                "ci",
                "--label",
                "rsa",
                "--userpin",
                "1234",
                "--hash",
                "sha384",
                "--in",
                input.to_str().unwrap(),
            ],
            b"",
            &[],
        ),
        "sign rsa",
    );
    let sig = hex::decode(String::from_utf8(out).unwrap().trim()).unwrap();
    assert_eq!(sig.len(), 256);
    let KeyData::Rsa(rk) = ssh_key_of(&t, &store, "rsa").key_data().clone() else {
        panic!("not an RSA key")
    };
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(rk.n.as_positive_bytes().unwrap()),
        rsa::BigUint::from_bytes_be(rk.e.as_positive_bytes().unwrap()),
    )
    .unwrap();
    key.verify(
        rsa::Pkcs1v15Sign::new::<Sha384>(),
        &Sha384::digest(data),
        &sig,
    )
    .expect("RSA PKCS#1 v1.5 signature from tpmkey sign");

    // A wrong PIN: the TPM's answer, no signature.
    let o = tk(
        &t,
        &store,
        &[
            "sign",
            "--token",
            "ci",
            "--label",
            "ec",
            "--userpin",
            "0000",
        ],
        data,
        &[],
    );
    assert!(fails(&o, "sign with a wrong PIN").contains("TPM_RC_AUTH_FAIL"));
    assert!(o.stdout.is_empty());
    let o = tk(
        &t,
        &store,
        &[
            "sign",
            "--token",
            "ci",
            "--label",
            "nope",
            "--userpin",
            "1234",
        ],
        data,
        &[],
    );
    assert!(fails(&o, "sign with an unknown key").contains("no key labelled"));
}

/// target/<profile>/examples/embed, next to this test's deps/ directory, built
/// (or found up to date) by cargo first: `cargo test --all-targets` compiles the
/// example as a test harness, which is not the program.
fn example_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--quiet", "--example", "embed"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let st = build.status().expect("cargo build --example embed");
    assert!(st.success(), "cargo build --example embed failed");
    profile_dir.join("examples").join("embed")
}

#[test]
fn the_embed_example_runs_against_swtpm() {
    let bin = example_bin();
    let sim = Swtpm::start();
    for pin in [None, Some("1234")] {
        let mut cmd = Command::new(&bin);
        cmd.arg(sim.tcti()).env_remove("TPMKEY_EXAMPLE_PIN");
        if let Some(p) = pin {
            cmd.env("TPMKEY_EXAMPLE_PIN", p);
        }
        let o = cmd.output().expect("run examples/embed");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "embed failed: {}{out}", err(&o));
        for step in [
            "SRK",
            "verified with p256",
            "sealed 32 bytes under PCRs sha256:16",
            "unsealed 32 bytes",
        ] {
            assert!(out.contains(step), "no {step:?} in {out}");
        }
        assert_eq!(out.contains("and a PIN"), pin.is_some(), "{out}");
    }
}

#[test]
fn sealed_secret_api_reads_many_pcrs_and_names_the_changed_one() {
    use tpmkey::keys::templates::SrkKind;
    use tpmkey::{pcr, Error, PcrSelection, SealedSecret, Srk, Tpm};
    let sim = Swtpm::start();
    let mut tpm = Tpm::open(&sim.tcti().parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    // 17 PCRs in two banks: more than one TPM2_PCR_Read answers (8 values each).
    let pcrs = PcrSelection::parse("sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15+sha1:16").unwrap();
    let sealed =
        SealedSecret::seal(&mut tpm, &srk, &pcrs, Some(b"api-pin"), b"api secret").unwrap();
    assert_eq!(sealed.pcr_values().len(), 17);
    let sealed = SealedSecret::from_json(sealed.to_json().unwrap().as_bytes()).unwrap();
    assert!(sealed.needs_pin());
    assert_eq!(
        &sealed.unseal(&mut tpm, &srk, Some(b"api-pin")).unwrap()[..],
        b"api secret"
    );
    let e = sealed.unseal(&mut tpm, &srk, Some(b"nope")).unwrap_err();
    assert_eq!(
        e.response_code().map(|rc| rc.base()),
        Some(tpm_commands::rc::ResponseCode::AUTH_FAIL),
        "{e}"
    );
    assert!(sealed.unseal(&mut tpm, &srk, None).is_err());

    // A PCR outside the selection changes nothing; one inside is named.
    pcr::extend_sha256(&mut tpm, 23, &[1; 32]).unwrap();
    assert_eq!(
        &sealed.unseal(&mut tpm, &srk, Some(b"api-pin")).unwrap()[..],
        b"api secret"
    );
    pcr::extend_sha256(&mut tpm, 3, &[2; 32]).unwrap();
    match sealed.unseal(&mut tpm, &srk, Some(b"api-pin")) {
        Err(Error::PolicyMismatch(m)) => {
            assert!(m.contains("(PCR sha256:3 changed since)"), "{m}");
        }
        other => panic!("expected a policy mismatch, got {:?}", other.map(|_| ())),
    }
}
