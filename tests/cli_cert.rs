//! `tpmkey cert` against a swtpm: requests signed by the TPM that `openssl req
//! -verify` accepts (P-256, P-384, RSA-2048, with subject alternative names), a
//! certificate issued from one by `openssl x509 -req` that imports, lists,
//! exports byte for byte and reads back through the module (`pkcs11-tool
//! --read-object`), a self-signed certificate `openssl verify` accepts, and bad
//! input (not a certificate, truncated, another token's key, no key and no CA,
//! a label in use) refused with a clear message and nothing changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pki::{run, Ca};
use common::ssh::module_path;
use common::{Swtpm, TempDir};

struct Bench {
    sim: Swtpm,
    dir: TempDir,
}

impl Bench {
    fn new() -> Bench {
        let b = Bench {
            sim: Swtpm::start(),
            dir: TempDir::new("clicert"),
        };
        b.tk(&["init"]);
        b
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn try_tk(&self, args: &[&str]) -> (bool, String, String) {
        common::run_tpmkey_in(&self.sim.tcti(), &self.store(), args)
    }

    fn tk(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.try_tk(args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn path(&self, name: &str) -> String {
        self.file(name).to_string_lossy().into_owned()
    }

    /// Every file of the token's objects directory with its contents.
    fn objects(&self, token: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = self.store().join("tokens").join(token).join("objects");
        let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn openssl(args: &[&str]) -> String {
    run("openssl", args, "openssl")
}

fn der_of(pem: &Path, out: &Path) -> Vec<u8> {
    openssl(&[
        "x509",
        "-in",
        &pem.to_string_lossy(),
        "-outform",
        "DER",
        "-out",
        &out.to_string_lossy(),
    ]);
    std::fs::read(out).unwrap()
}

#[test]
fn requests_verify_and_issued_certificates_import_list_and_export() {
    let b = Bench::new();
    b.tk(&[
        "token",
        "add",
        "--label",
        "pki",
        "--userpin",
        "1234",
        "--sopin",
        "5678",
    ]);
    let ca = Ca::new(b.dir.path());
    for alg in ["ecc256", "ecc384", "rsa2048"] {
        b.tk(&[
            "key",
            "add",
            "--token",
            "pki",
            "--label",
            alg,
            "--algorithm",
            alg,
            "--userpin",
            "1234",
        ]);
        let csr = b.file(&format!("{alg}.csr"));
        // To stdout, as a user would pipe it to a CA.
        let pem = b.tk(&[
            "cert",
            "request",
            "--token",
            "pki",
            "--key",
            alg,
            "--subject",
            &format!("CN=alice-{alg},O=Example"),
            "--san",
            "DNS:alice.example,email:alice@example.org,IP:127.0.0.1",
            "--userpin",
            "1234",
        ]);
        assert!(
            pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
            "{pem}"
        );
        std::fs::write(&csr, &pem).unwrap();
        let out = Command::new("openssl")
            .args(["req", "-verify", "-noout", "-text", "-in"])
            .arg(&csr)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "openssl req -verify: {text}");
        assert!(text.contains("verify OK"), "{text}");
        assert!(
            text.contains("CN = alice-") && text.contains("O = Example"),
            "{text}"
        );
        assert!(
            text.contains("DNS:alice.example")
                && text.contains("email:alice@example.org")
                && text.contains("IP Address:127.0.0.1"),
            "{text}"
        );
        let want = match alg {
            "ecc256" => "ecdsa-with-SHA256",
            "ecc384" => "ecdsa-with-SHA384",
            _ => "sha256WithRSAEncryption",
        };
        assert!(text.contains(want), "{alg}: {text}");
        let cert = b.file(&format!("{alg}.pem"));
        ca.issue(&csr, &cert);
        let out = b.tk(&["cert", "import", "--token", "pki", &cert.to_string_lossy()]);
        assert!(out.contains(&format!("attached to key {alg}")), "{out}");
        // Exported byte for byte, DER and PEM.
        let der = der_of(&cert, &b.file(&format!("{alg}.der")));
        let exported = b.file(&format!("{alg}.export.der"));
        b.tk(&[
            "cert",
            "export",
            "--token",
            "pki",
            "--label",
            alg,
            "--der",
            "--out",
            &exported.to_string_lossy(),
        ]);
        assert_eq!(std::fs::read(&exported).unwrap(), der);
        let pem = b.tk(&["cert", "export", "--token", "pki", "--label", alg]);
        assert_eq!(pem, std::fs::read_to_string(&cert).unwrap());
    }
    // The CA's certificate goes on the token on its own.
    let out = b.tk(&[
        "cert",
        "import",
        "--token",
        "pki",
        &ca.cert().to_string_lossy(),
    ]);
    assert!(out.contains("stored on its own"), "{out}");
    let listing: serde_json::Value =
        serde_json::from_str(&b.tk(&["cert", "list", "--json"])).unwrap();
    let certs = listing.as_array().unwrap();
    assert_eq!(certs.len(), 4, "{listing}");
    let keys: serde_json::Value = serde_json::from_str(&b.tk(&["key", "list", "--json"])).unwrap();
    for k in keys.as_array().unwrap() {
        let label = k["label"].as_str().unwrap();
        let c = certs
            .iter()
            .find(|c| c["label"] == label)
            .unwrap_or_else(|| panic!("no certificate for {label}: {listing}"));
        assert_eq!(c["id"], k["id"], "same CKA_ID as the key");
        assert_eq!(c["key"], label);
        assert_eq!(c["issuer"], format!("CN={}", Ca::CN));
        assert_eq!(c["ca"], false);
        // pkcs11-tool reads back the same DER through the module (no login).
        let read = b.file(&format!("{label}.p11.der"));
        let out = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module_path())
            .args(["--token-label", "pki", "--read-object", "--type", "cert"])
            .args(["--id", k["id"].as_str().unwrap(), "-o"])
            .arg(&read)
            .env("TPMKEY_TCTI", b.sim.tcti())
            .env("TPMKEY_STORE", b.store())
            .output()
            .expect("pkcs11-tool (apt-get install opensc)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(&read).unwrap(),
            std::fs::read(b.file(&format!("{label}.der"))).unwrap(),
            "pkcs11-tool --read-object returns the imported DER"
        );
    }
    let ca_entry = certs.iter().find(|c| c["ca"] == true).expect("the CA");
    assert_eq!(ca_entry["label"], Ca::CN);
    assert_eq!(ca_entry["key"], serde_json::Value::Null);
    let text = b.tk(&["cert", "list", "--token", "pki"]);
    assert!(
        text.contains("key ecc384") && text.contains("CN=alice-ecc384,O=Example"),
        "{text}"
    );

    // A self-signed certificate: signed by the key itself, CA extensions, and it
    // replaces the key's earlier certificate.
    let selfsigned = b.file("self.pem");
    b.tk(&[
        "cert",
        "selfsign",
        "--token",
        "pki",
        "--key",
        "rsa2048",
        "--subject",
        "CN=Private CA",
        "--days",
        "30",
        "--userpin",
        "1234",
        "--out",
        &selfsigned.to_string_lossy(),
    ]);
    let s = selfsigned.to_string_lossy().into_owned();
    let v = openssl(&["verify", "-CAfile", &s, &s]);
    assert!(v.contains(": OK"), "{v}");
    let t = openssl(&["x509", "-in", &s, "-noout", "-text"]);
    for want in [
        "CA:TRUE",
        "Digital Signature, Certificate Sign, CRL Sign",
        "Subject Key Identifier",
        "sha256WithRSAEncryption",
        "Subject: CN = Private CA",
        "Issuer: CN = Private CA",
    ] {
        assert!(t.contains(want), "{want} missing: {t}");
    }
    // The authority key identifier is the subject key identifier: its own key.
    let key_id = |after: &str| {
        let at = t
            .find(after)
            .unwrap_or_else(|| panic!("{after} missing: {t}"));
        t[at..]
            .lines()
            .nth(1)
            .map(|l| l.trim().trim_start_matches("keyid:").to_string())
            .unwrap_or_default()
    };
    let ski = key_id("X509v3 Subject Key Identifier");
    assert_eq!(ski.len(), 59, "{t}");
    assert_eq!(key_id("X509v3 Authority Key Identifier"), ski, "{t}");
    let exported = b.tk(&["cert", "export", "--token", "pki", "--label", "rsa2048"]);
    assert_eq!(exported, std::fs::read_to_string(&selfsigned).unwrap());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&b.tk(&["cert", "list", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        4,
        "the self-signed certificate replaced the key's earlier one"
    );

    // rm: the certificate goes, the key stays.
    b.tk(&["cert", "rm", "--token", "pki", "--label", "ecc256"]);
    let (ok, _, err) = b.try_tk(&["cert", "export", "--token", "pki", "--label", "ecc256"]);
    assert!(!ok && err.contains("no certificate labelled"), "{err}");
    assert!(b.tk(&["key", "list"]).contains("ecc256"));
    // key rm: the key goes; its certificate stays (an object of its own), and the
    // user is told how to remove it.
    let (ok, _, err) = b.try_tk(&["key", "rm", "--token", "pki", "--label", "rsa2048"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("the certificate \"rsa2048\" of that key stays on the token; remove it with `tpmkey cert rm --token pki --label rsa2048`"),
        "{err}"
    );
    b.tk(&["cert", "export", "--token", "pki", "--label", "rsa2048"]);
    b.tk(&["cert", "rm", "--token", "pki", "--label", "rsa2048"]);
}

#[test]
fn bad_certificate_files_are_refused_and_change_nothing() {
    let b = Bench::new();
    b.tk(&["token", "add", "--label", "mine", "--no-pin"]);
    b.tk(&["token", "add", "--label", "other", "--no-pin"]);
    b.tk(&["key", "add", "--token", "mine", "--label", "k"]);
    b.tk(&["key", "add", "--token", "other", "--label", "theirs"]);
    let ca = Ca::new(b.dir.path());
    let csr = b.path("theirs.csr");
    b.tk(&[
        "cert",
        "request",
        "--token",
        "other",
        "--key",
        "theirs",
        "--subject",
        "CN=theirs",
        "--out",
        &csr,
    ]);
    let theirs = b.file("theirs.pem");
    ca.issue(Path::new(&csr), &theirs);
    let mine_csr = b.path("mine.csr");
    b.tk(&[
        "cert",
        "request",
        "--token",
        "mine",
        "--key",
        "k",
        "--subject",
        "CN=mine",
        "--out",
        &mine_csr,
    ]);
    let mine = b.file("mine.pem");
    ca.issue(Path::new(&mine_csr), &mine);
    let der = der_of(&mine, &b.file("mine.der"));
    // A leaf certificate of no key here (the server's).
    let (stranger, _) = ca.server();

    std::fs::write(b.file("garbage"), b"this is not a certificate\n").unwrap();
    std::fs::write(b.file("truncated.der"), &der[..der.len() / 2]).unwrap();
    let pem = std::fs::read_to_string(&mine).unwrap();
    std::fs::write(b.file("truncated.pem"), &pem[..pem.len() / 2]).unwrap();
    std::fs::write(b.file("empty"), b"").unwrap();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        ("garbage", b.file("garbage"), "not a DER or PEM certificate"),
        ("truncated DER", b.file("truncated.der"), "truncated"),
        ("truncated PEM", b.file("truncated.pem"), "truncated"),
        ("empty", b.file("empty"), "certificate"),
        (
            "another token's key",
            theirs.clone(),
            "is for key \"theirs\" of token \"other\"",
        ),
        ("no key, no CA", stranger.clone(), "--standalone"),
        ("missing file", b.file("nope.pem"), "No such file"),
    ];
    let before = b.objects("mine");
    for (what, file, want) in &cases {
        let (ok, _, err) =
            b.try_tk(&["cert", "import", "--token", "mine", &file.to_string_lossy()]);
        println!("{what}: {}", err.trim());
        assert!(!ok, "{what}: imported");
        assert!(err.contains(want), "{what}: {err:?} does not say {want:?}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_eq!(b.objects("mine"), before, "{what}: the store changed");
    }
    // A chain with one bad member changes nothing either.
    let chain = b.file("chain.pem");
    std::fs::write(
        &chain,
        format!(
            "{}{}",
            std::fs::read_to_string(&mine).unwrap(),
            std::fs::read_to_string(&stranger).unwrap()
        ),
    )
    .unwrap();
    let (ok, _, err) = b.try_tk(&[
        "cert",
        "import",
        "--token",
        "mine",
        &chain.to_string_lossy(),
    ]);
    assert!(!ok && err.contains("--standalone"), "{err}");
    assert_eq!(
        b.objects("mine"),
        before,
        "a refused chain wrote part of itself"
    );

    // The right certificate, then the same again, then a CA and a stranger on
    // their own; a label taken is refused.
    let out = b.tk(&["cert", "import", "--token", "mine", &b.path("mine.der")]);
    assert!(out.contains("attached to key k"), "{out}");
    let out = b.tk(&["cert", "import", "--token", "mine", &mine.to_string_lossy()]);
    assert!(out.contains("already on the token"), "{out}");
    let out = b.tk(&[
        "cert",
        "import",
        "--token",
        "mine",
        "--standalone",
        &stranger.to_string_lossy(),
    ]);
    assert!(out.contains("stored on its own"), "{out}");
    let (ok, _, err) = b.try_tk(&[
        "cert",
        "import",
        "--token",
        "mine",
        "--label",
        "k",
        &ca.cert().to_string_lossy(),
    ]);
    assert!(!ok && err.contains("labelled \"k\" already"), "{err}");
    let (ok, _, err) = b.try_tk(&[
        "cert",
        "request",
        "--token",
        "mine",
        "--key",
        "k",
        "--subject",
        "alice",
    ]);
    assert!(!ok && err.contains("not a distinguished name"), "{err}");
    let (ok, _, err) = b.try_tk(&[
        "cert",
        "request",
        "--token",
        "mine",
        "--key",
        "k",
        "--subject",
        "CN=a",
        "--san",
        "X400:a",
    ]);
    assert!(!ok && err.contains("DNS:NAME"), "{err}");
    let (ok, _, err) = b.try_tk(&[
        "cert",
        "request",
        "--token",
        "mine",
        "--key",
        "nokey",
        "--subject",
        "CN=a",
    ]);
    assert!(!ok && err.contains("no key labelled"), "{err}");
    assert_eq!(b.objects("mine").len(), 2);
}
