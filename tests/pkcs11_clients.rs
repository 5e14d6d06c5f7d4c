//! Real PKCS#11 clients against the module and a swtpm: `pkcs11-tool --test
//! --login` with nothing left "not implemented" or "not supported" (its OAEP
//! decryption with a label included), `pkcs11-tool --decrypt` of what `openssl
//! pkeyutl -encrypt` made, `pkcs11-tool --derive` agreeing with `openssl pkeyutl
//! -derive` on P-256 and P-384, `openssl pkeyutl -decrypt` through OpenSSL's
//! pkcs11 engine, and an S/MIME round trip: `openssl cms -encrypt` to a
//! certificate a test CA issued for the TPM key's public key, `openssl cms
//! -decrypt` with the key through the engine.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::ssh::module_path;
use common::{run_tpmkey_in, Swtpm, TempDir};

/// Where Debian's libengine-pkcs11-openssl puts the engine.
const ENGINE: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";

struct Bench {
    sim: Swtpm,
    dir: TempDir,
}

impl Bench {
    /// A PIN token "t" (user PIN 1234) with the keys `keys` (label, algorithm, usage).
    fn new(keys: &[(&str, &str, &str)]) -> Bench {
        let b = Bench {
            sim: Swtpm::start(),
            dir: TempDir::new("p11cl"),
        };
        b.tk(&["init"]);
        b.tk(&[
            "token",
            "add",
            "--label",
            "t",
            "--userpin",
            "1234",
            "--sopin",
            "5678",
        ]);
        for (label, alg, usage) in keys {
            b.tk(&[
                "key",
                "add",
                "--token",
                "t",
                "--label",
                label,
                "--algorithm",
                alg,
                "--usage",
                usage,
                "--userpin",
                "1234",
            ]);
        }
        b
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tk(&self, args: &[&str]) -> String {
        let (ok, out, err) = run_tpmkey_in(&self.sim.tcti(), &self.store(), args);
        assert!(ok, "tpmkey {args:?}: {err}");
        out
    }

    /// The CKA_ID (hex) of a key.
    fn id(&self, label: &str) -> String {
        let keys: serde_json::Value =
            serde_json::from_str(&self.tk(&["key", "list", "--json"])).unwrap();
        keys.as_array()
            .and_then(|ks| ks.iter().find(|k| k["label"] == label))
            .and_then(|k| k["id"].as_str())
            .unwrap_or_else(|| panic!("no key {label}"))
            .to_string()
    }

    /// A command with the module's environment; fails loudly when the tool is
    /// missing. `openssl … -engine pkcs11` gets the engine's configuration.
    fn run(&self, tool: &str, package: &str, args: &[&str]) -> Output {
        let mut c = Command::new(tool);
        if args.contains(&"-engine") {
            c.env("OPENSSL_CONF", self.engine_conf());
        }
        c.args(args)
            .env("TPMKEY_TCTI", self.sim.tcti())
            .env("TPMKEY_STORE", self.store())
            .env_remove("TPM2TOOLS_TCTI")
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e} (apt-get install {package})"))
    }

    /// Runs `tool`, which must succeed; stdout and stderr together.
    fn ok(&self, tool: &str, package: &str, args: &[&str]) -> String {
        let out = self.run(tool, package, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
        text
    }

    fn p11tool(&self, args: &[&str]) -> String {
        let m = module_path();
        let mut all = vec![
            "--module",
            m.to_str().unwrap(),
            "--token-label",
            "t",
            "--login",
            "--pin",
            "1234",
        ];
        all.extend_from_slice(args);
        self.ok("pkcs11-tool", "opensc", &all)
    }

    fn openssl(&self, args: &[&str]) -> String {
        self.ok("openssl", "openssl", args)
    }

    /// The key's public half as a PEM file, read through the module.
    fn public_pem(&self, label: &str) -> PathBuf {
        let der = self.path(&format!("{label}.pub.der"));
        let pem = self.path(&format!("{label}.pub.pem"));
        self.p11tool(&[
            "--read-object",
            "--type",
            "pubkey",
            "--id",
            &self.id(label),
            "-o",
            der.to_str().unwrap(),
        ]);
        self.openssl(&[
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            der.to_str().unwrap(),
            "-out",
            pem.to_str().unwrap(),
        ]);
        pem
    }

    /// The key's public half as a PEM file, from `tpmkey ssh-pubkey` through
    /// `ssh-keygen -e -m PKCS8` (pkcs11-tool 0.23 cannot build P-384 keys with
    /// OpenSSL 3: "cannot create EVP_PKEY", whatever the module says).
    fn public_pem_from_ssh(&self, label: &str) -> PathBuf {
        let ssh = self.path(&format!("{label}.ssh.pub"));
        std::fs::write(
            &ssh,
            self.tk(&["ssh-pubkey", "--token", "t", "--label", label]),
        )
        .unwrap();
        let pem = self.ok(
            "ssh-keygen",
            "openssh-client",
            &["-e", "-m", "PKCS8", "-f", s(&ssh)],
        );
        let path = self.path(&format!("{label}.pub.pem"));
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// An OpenSSL configuration that loads the pkcs11 engine with the module.
    fn engine_conf(&self) -> PathBuf {
        let conf = self.path("openssl.cnf");
        if !conf.exists() {
            assert!(
                Path::new(ENGINE).exists(),
                "{ENGINE} missing: apt-get install libengine-pkcs11-openssl"
            );
            std::fs::write(
                &conf,
                format!(
                    "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n\
                     [pkcs11]\nengine_id = pkcs11\ndynamic_path = {ENGINE}\nMODULE_PATH = {}\ninit = 0\n",
                    module_path().display()
                ),
            )
            .unwrap();
        }
        conf
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn pkcs11_tool_test_finds_nothing_unimplemented() {
    let b = Bench::new(&[
        ("rsa", "rsa2048", "sign,decrypt"),
        ("ec", "ecc256", "sign,decrypt"),
    ]);
    let out = b.p11tool(&["--test"]);
    for line in out.lines() {
        let l = line.to_lowercase();
        assert!(
            !l.contains("not implemented") && !l.contains("not supported"),
            "{line}\n{out}"
        );
    }
    assert!(out.contains("No errors"), "{out}");
    // Seeding, the four digest calls, verification, and decryption with
    // PKCS #1 v1.5 and OAEP (with the label "ABC" and without one).
    assert!(
        out.contains("C_SeedRandom() and C_GenerateRandom():\n  seems to be OK"),
        "{out}"
    );
    assert!(out.contains("all 4 digest functions seem to work"), "{out}");
    assert!(out.contains("SHA256: OK"), "{out}");
    assert!(out.contains("Verify (currently only for RSA)"), "{out}");
    assert!(out.contains("Label) present, length 3"), "{out}");
    let decryption = out.split("Decryption").nth(1).unwrap_or_default();
    assert!(decryption.contains("RSA-PKCS: OK"), "{out}");
    assert_eq!(
        decryption.matches("\nOK").count(),
        2,
        "two OAEP runs: {out}"
    );
}

#[test]
fn pkcs11_tool_decrypts_what_openssl_encrypted() {
    let b = Bench::new(&[("rsa", "rsa2048", "decrypt")]);
    let pem = b.public_pem("rsa");
    let msg = b.path("msg");
    std::fs::write(&msg, b"for the TPM's eyes only").unwrap();
    let id = b.id("rsa");
    for (hash, mgf, md) in [
        ("SHA256", "MGF1-SHA256", "sha256"),
        ("SHA-1", "MGF1-SHA1", "sha1"),
        ("SHA512", "MGF1-SHA512", "sha512"),
    ] {
        let ct = b.path(&format!("ct-{md}"));
        let out = b.path(&format!("out-{md}"));
        b.openssl(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            s(&pem),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &format!("rsa_oaep_md:{md}"),
            "-pkeyopt",
            &format!("rsa_mgf1_md:{md}"),
            "-in",
            s(&msg),
            "-out",
            s(&ct),
        ]);
        b.p11tool(&[
            "--decrypt",
            "-m",
            "RSA-PKCS-OAEP",
            "--hash-algorithm",
            hash,
            "--mgf",
            mgf,
            "--id",
            &id,
            "-i",
            s(&ct),
            "-o",
            s(&out),
        ]);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"for the TPM's eyes only",
            "{md}"
        );
    }
    // PKCS #1 v1.5 too.
    let (ct, out) = (b.path("ct-pkcs1"), b.path("out-pkcs1"));
    b.openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        s(&pem),
        "-in",
        s(&msg),
        "-out",
        s(&ct),
    ]);
    b.p11tool(&[
        "--decrypt",
        "-m",
        "RSA-PKCS",
        "--id",
        &id,
        "-i",
        s(&ct),
        "-o",
        s(&out),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), b"for the TPM's eyes only");
}

#[test]
fn pkcs11_tool_derive_agrees_with_openssl() {
    let b = Bench::new(&[("p256", "ecc256", "decrypt"), ("p384", "ecc384", "decrypt")]);
    for (label, curve) in [("p256", "P-256"), ("p384", "P-384")] {
        let tpm_pub = b.public_pem_from_ssh(label);
        let peer = b.path(&format!("peer-{label}.pem"));
        let peer_der = b.path(&format!("peer-{label}.der"));
        b.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            s(&peer),
        ]);
        b.openssl(&[
            "pkey",
            "-in",
            s(&peer),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            s(&peer_der),
        ]);
        let (ours, theirs) = (
            b.path(&format!("z-{label}")),
            b.path(&format!("z2-{label}")),
        );
        let out = b.p11tool(&[
            "--derive",
            "-m",
            "ECDH1-DERIVE",
            "--id",
            &b.id(label),
            "-i",
            s(&peer_der),
            "-o",
            s(&ours),
        ]);
        assert!(out.contains("ECDH1-DERIVE"), "{out}");
        b.openssl(&[
            "pkeyutl",
            "-derive",
            "-inkey",
            s(&peer),
            "-peerkey",
            s(&tpm_pub),
            "-out",
            s(&theirs),
        ]);
        let z = std::fs::read(&ours).unwrap();
        assert_eq!(z.len(), if label == "p256" { 32 } else { 48 });
        assert_eq!(z, std::fs::read(&theirs).unwrap(), "{curve}");
    }
}

#[test]
fn openssl_engine_decrypts_and_smime_round_trips() {
    let b = Bench::new(&[("rsa", "rsa2048", "sign,decrypt")]);
    let pem = b.public_pem("rsa");
    let key = "pkcs11:token=t;object=rsa;type=private?pin-value=1234";
    let msg = b.path("msg");
    std::fs::write(&msg, b"a message to the TPM key").unwrap();
    // openssl pkeyutl -decrypt with the key through the engine.
    for oaep in [false, true] {
        let ct = b.path(&format!("ct-{oaep}"));
        let mut enc = vec!["pkeyutl", "-encrypt", "-pubin", "-inkey", s(&pem)];
        let mut dec = vec![
            "pkeyutl", "-decrypt", "-engine", "pkcs11", "-keyform", "engine", "-inkey", key,
        ];
        if oaep {
            let opts = [
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ];
            enc.extend_from_slice(&opts);
            dec.extend_from_slice(&opts);
        }
        enc.extend_from_slice(&["-in", s(&msg), "-out", s(&ct)]);
        dec.extend_from_slice(&["-in", s(&ct)]);
        b.openssl(&enc);
        let out = b.run("openssl", "openssl", &dec);
        assert!(
            out.status.success(),
            "engine decryption (OAEP {oaep}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"a message to the TPM key", "OAEP {oaep}");
    }
    // S/MIME: a test CA certifies the TPM key's public key; a message encrypted
    // to that certificate (RSA key transport, PKCS #1 v1.5 and OAEP) is
    // decrypted with the TPM key through the engine.
    let (ca_key, ca) = (b.path("ca.key"), b.path("ca.pem"));
    b.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&ca_key),
        "-out",
        s(&ca),
        "-subj",
        "/CN=tpmkey test CA",
        "-days",
        "2",
    ]);
    let (stand_in, csr, cert) = (b.path("stand-in.key"), b.path("req.csr"), b.path("tpm.pem"));
    b.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&stand_in),
        "-out",
        s(&csr),
        "-subj",
        "/CN=TPM recipient",
    ]);
    b.openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr),
        "-CA",
        s(&ca),
        "-CAkey",
        s(&ca_key),
        "-CAcreateserial",
        "-force_pubkey",
        s(&pem),
        "-days",
        "2",
        "-out",
        s(&cert),
    ]);
    for keyopt in [None, Some("rsa_padding_mode:oaep")] {
        let p7 = b.path("msg.p7");
        let mut enc = vec![
            "cms",
            "-encrypt",
            "-aes256",
            "-in",
            s(&msg),
            "-recip",
            s(&cert),
        ];
        if let Some(k) = keyopt {
            enc.extend_from_slice(&["-keyopt", k]);
        }
        enc.extend_from_slice(&["-out", s(&p7)]);
        b.openssl(&enc);
        let out = b.run(
            "openssl",
            "openssl",
            &[
                "cms",
                "-decrypt",
                "-in",
                s(&p7),
                "-recip",
                s(&cert),
                "-engine",
                "pkcs11",
                "-keyform",
                "engine",
                "-inkey",
                key,
            ],
        );
        assert!(
            out.status.success(),
            "cms -decrypt ({keyopt:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"a message to the TPM key", "{keyopt:?}");
    }
}
