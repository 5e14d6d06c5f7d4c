//! TSS2 PRIVATE KEY files both ways, against the real tools on one swtpm:
//! tpm2-openssl (`openssl … -provider tpm2`, TPM2OPENSSL_TCTI) makes P-256 and
//! RSA-2048 keys, with and without a password; `tpmkey key import` takes them over
//! (TPM2_ObjectChangeAuth) and they keep their public keys, sign through
//! libtpmkey.so (pkcs11-tool) and log into sshd; `tpmkey key export --tss2` hands
//! keys to tpm2-openssl, which signs with them. The file bytes are compared with
//! tpm2-openssl's, a go-tpm-keyfiles/ssh-tpm-agent-style file is built from the
//! draft's ASN.1, hostile files are refused with nothing written, and a recording
//! proxy shows that no password or authValue crosses the bus in clear.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::proxy::TpmProxy;
use common::ssh::{askpass, logged_in, module_path, with_tpm, Sshd};
use common::{Swtpm, TempDir};
use der::asn1::{ObjectIdentifier, OctetString};
use tpmkey::keys::tss2::Tss2Key;

/// A swtpm both stacks reach (tpmkey through a recording proxy, tpm2-openssl
/// directly), a store and a scratch directory.
struct Bench {
    sim: Swtpm,
    proxy: TpmProxy,
    dir: TempDir,
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Bench {
    fn new() -> Bench {
        let sim = Swtpm::start_tss();
        let proxy = TpmProxy::start(sim.data_port());
        let b = Bench {
            sim,
            proxy,
            dir: TempDir::new("tss2"),
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
        b
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, data).expect("write");
        p.to_string_lossy().into_owned()
    }

    fn tk_run(&self, args: &[&str]) -> (bool, String, String) {
        common::run_tpmkey_in(&self.proxy.tcti(), &self.store(), args)
    }

    /// Runs the CLI; panics with its stderr when it fails.
    fn tk(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.tk_run(args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    }

    /// Runs the CLI expecting a refusal; returns its stderr.
    fn tk_refused(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.tk_run(args);
        assert!(!ok, "tpmkey {args:?} should have failed: {out}");
        err
    }

    /// `openssl args…` with the tpm2 provider pointed at the swtpm.
    fn openssl(&self, args: &[&str]) -> Output {
        openssl_on(&self.sim, args)
    }

    fn openssl_ok(&self, args: &[&str]) -> Output {
        let out = self.openssl(args);
        assert!(
            out.status.success(),
            "openssl {args:?} failed (tpm2-openssl installed? apt-get install tpm2-openssl):\n{}",
            text(&out)
        );
        out
    }

    /// The store's key files of token `t`.
    fn key_files(&self) -> usize {
        std::fs::read_dir(self.store().join("tokens/t/keys"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// `tpmkey key list` of token `t`, as (label, id).
    fn keys(&self) -> Vec<(String, String)> {
        let v: serde_json::Value =
            serde_json::from_str(&self.tk(&["key", "list", "--token", "t", "--json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["label"].as_str().unwrap().to_string(),
                    k["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The key blob (second field) of `tpmkey ssh-pubkey` for one key.
    fn ssh_blob(&self, label: &str) -> String {
        let line = self.tk(&["ssh-pubkey", "--token", "t", "--label", label]);
        blob(&line)
    }
}

fn openssl_on(sim: &Swtpm, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .env("TPM2OPENSSL_TCTI", sim.tcti())
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (apt-get install openssl tpm2-openssl)")
}

fn blob(line: &str) -> String {
    line.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("not an ssh key line: {line:?}"))
        .to_string()
}

/// `ssh-keygen -i -m PKCS8`: an SPKI PEM public key as an ssh key line.
fn ssh_line_of_spki(pem: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-i", "-m", "PKCS8", "-f"])
        .arg(pem)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen -i: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `ssh-keygen -e -m PKCS8`: an ssh public key line as an SPKI PEM file.
fn spki_of_ssh_line(dir: &Path, name: &str, line: &str) -> PathBuf {
    let pubfile = dir.join(format!("{name}.pub"));
    std::fs::write(&pubfile, line).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-e", "-m", "PKCS8", "-f"])
        .arg(&pubfile)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen -e: {}", text(&out));
    let pem = dir.join(format!("{name}.spki.pem"));
    std::fs::write(&pem, &out.stdout).unwrap();
    pem
}

/// One tpm2-openssl key: P-256 or RSA-2048, with or without a password.
struct Case {
    name: &'static str,
    genpkey: &'static [&'static str],
    password: Option<&'static str>,
    rsa: bool,
}

const CASES: [Case; 4] = [
    Case {
        name: "p256",
        genpkey: &["-algorithm", "EC", "-pkeyopt", "group:P-256"],
        password: None,
        rsa: false,
    },
    Case {
        name: "p256pw",
        genpkey: &["-algorithm", "EC", "-pkeyopt", "group:P-256"],
        password: Some("old-p256-pw-5b1e"),
        rsa: false,
    },
    Case {
        name: "rsa",
        genpkey: &["-algorithm", "RSA", "-pkeyopt", "bits:2048"],
        password: None,
        rsa: true,
    },
    Case {
        name: "rsapw",
        genpkey: &["-algorithm", "RSA", "-pkeyopt", "bits:2048"],
        password: Some("old-rsa-pw-77c2"),
        rsa: true,
    },
];

impl Bench {
    /// `openssl genpkey -provider tpm2 …` for `case` (extra -pkeyopt in `extra`).
    fn genpkey(&self, case: &Case, file: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(file);
        let auth = case.password.map(|p| format!("user-auth:{p}"));
        let mut args = vec!["genpkey", "-provider", "tpm2"];
        args.extend(case.genpkey);
        if let Some(a) = &auth {
            args.extend(["-pkeyopt", a]);
        }
        args.extend(extra);
        let out_arg = out.to_string_lossy().into_owned();
        args.extend(["-out", &out_arg]);
        self.openssl_ok(&args);
        out
    }

    /// `-passin pass:…` for a password case.
    fn passin(case: &Case) -> Vec<String> {
        case.password
            .map(|p| vec!["-passin".to_string(), format!("pass:{p}")])
            .unwrap_or_default()
    }

    /// Signs a SHA-256 digest with tpm2-openssl's key file (`openssl pkeyutl
    /// -provider tpm2 -sign`; RSA: PKCS#1 v1.5 with DigestInfo) and verifies the
    /// signature with `public` (SPKI PEM) in software (`openssl pkeyutl -verify`).
    fn openssl_sign_verifies(
        &self,
        key: &Path,
        passin: &[String],
        rsa: bool,
        public: &Path,
        tag: &str,
    ) {
        let hash = self.path(&format!("{tag}.hash"));
        std::fs::write(&hash, sha256(format!("signed via {tag}").as_bytes())).unwrap();
        let sig = self.path(&format!("{tag}.sig"));
        let (hash, sig) = (
            hash.to_string_lossy().into_owned(),
            sig.to_string_lossy().into_owned(),
        );
        let digest_opt: &[&str] = if rsa {
            &["-pkeyopt", "digest:sha256"]
        } else {
            &[]
        };
        let key = key.to_string_lossy().into_owned();
        let mut args = vec![
            "pkeyutl",
            "-provider",
            "tpm2",
            "-provider",
            "default",
            "-sign",
            "-inkey",
            &key,
        ];
        args.extend(passin.iter().map(String::as_str));
        args.extend(["-in", &hash, "-out", &sig]);
        args.extend(digest_opt);
        self.openssl_ok(&args);
        let public = public.to_string_lossy().into_owned();
        let mut args = vec![
            "pkeyutl", "-verify", "-pubin", "-inkey", &public, "-in", &hash, "-sigfile", &sig,
        ];
        args.extend(digest_opt);
        self.openssl_ok(&args);
    }

    /// Signing with `key` and a wrong password fails.
    fn openssl_sign_refused(&self, key: &Path, rsa: bool) {
        let hash = self.path("wrong.hash");
        std::fs::write(&hash, [9u8; 32]).unwrap();
        let (hash, sig) = (
            hash.to_string_lossy().into_owned(),
            self.path("wrong.sig").to_string_lossy().into_owned(),
        );
        let key = key.to_string_lossy().into_owned();
        let mut args = vec![
            "pkeyutl",
            "-provider",
            "tpm2",
            "-provider",
            "default",
            "-sign",
            "-inkey",
            &key,
            "-passin",
            "pass:not-the-password",
            "-in",
            &hash,
            "-out",
            &sig,
        ];
        if rsa {
            args.extend(["-pkeyopt", "digest:sha256"]);
        }
        assert!(
            !self.openssl(&args).status.success(),
            "a wrong password signs"
        );
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// The DER inside a PEM file.
fn der_of(pem: &Path) -> Vec<u8> {
    let text = std::fs::read(pem).unwrap();
    der::pem::decode_vec(&text).expect("PEM").1
}

/// Our writer gives tpm2-openssl's file byte for byte, except emptyAuth TRUE,
/// which tpm2-openssl writes as `01` (not DER) and we as `FF`.
fn assert_same_bytes_as_tpm2_openssl(file: &Path, empty_auth: bool) {
    let theirs = der_of(file);
    let key = Tss2Key::from_pem(&std::fs::read(file).unwrap()).expect("tpmkey reads it");
    let ours = key.to_der().unwrap();
    let expected = if empty_auth {
        let at = theirs
            .windows(5)
            .position(|w| w == [0xA0, 3, 1, 1, 1])
            .expect("emptyAuth TRUE in tpm2-openssl's file");
        let mut e = theirs.clone();
        e[at + 4] = 0xFF;
        e
    } else {
        assert!(
            theirs.windows(5).any(|w| w == [0xA0, 3, 1, 1, 0]),
            "tpm2-openssl writes emptyAuth FALSE"
        );
        theirs
    };
    assert_eq!(ours, expected, "{}", file.display());
}

#[test]
fn tpm2_openssl_keys_move_into_tpmkey_and_work_there() {
    let b = Bench::new();
    let mut originals = Vec::new();
    for case in &CASES {
        let file = b.genpkey(case, &format!("{}.pem", case.name), &[]);
        let key = Tss2Key::from_pem(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(key.parent.0, 0x4000_0001, "tpm2-openssl's parent");
        assert_eq!(key.empty_auth, case.password.is_none());
        assert_same_bytes_as_tpm2_openssl(&file, case.password.is_none());

        // The original public key, as tpm2-openssl sees it.
        let spki = b.path(&format!("{}.orig.pem", case.name));
        let mut args: Vec<String> = ["pkey", "-provider", "tpm2", "-provider", "default", "-in"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(file.to_string_lossy().into_owned());
        args.extend(Bench::passin(case));
        args.extend([
            "-pubout".into(),
            "-out".into(),
            spki.to_string_lossy().into_owned(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        b.openssl_ok(&args);
        let original_line = ssh_line_of_spki(&spki);

        // Import, through the recording proxy.
        let before = std::fs::read(&file).unwrap();
        b.proxy.clear();
        let mut args = vec![
            "key",
            "import",
            "--token",
            "t",
            "--label",
            case.name,
            "--userpin",
            "1234",
        ];
        let pwfile = case
            .password
            .map(|p| b.write(&format!("{}.pw", case.name), format!("{p}\n").as_bytes()));
        if let Some(f) = &pwfile {
            args.extend(["--passphrase-file", f.as_str()]);
        }
        let file_arg = file.to_string_lossy().into_owned();
        args.push(&file_arg);
        let out = b.tk(&args);
        assert!(out.contains("imported into token t"), "{out}");
        let cmds: Vec<u32> = b.proxy.exchanges().iter().map(|x| x.cc()).collect();
        assert!(
            cmds.contains(&0x0157) && cmds.contains(&0x0150),
            "Load and ObjectChangeAuth sent: {cmds:x?}"
        );
        if let Some(p) = case.password {
            assert!(
                !b.proxy.saw_bytes(p.as_bytes()),
                "{}: the old password crossed the bus",
                case.name
            );
        }
        assert!(!b.proxy.saw_bytes(b"1234"), "the PIN crossed the bus");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "the original file is untouched"
        );

        // Same public key, as `tpmkey ssh-pubkey` shows it.
        assert_eq!(b.ssh_blob(case.name), blob(&original_line), "{}", case.name);
        originals.push((case, file, spki, original_line));
    }
    assert!(
        common::loaded_handles(&b.sim.tcti()).is_empty(),
        "nothing left loaded"
    );

    // The original files keep working with their old passwords.
    for (case, file, spki, _) in &originals {
        b.openssl_sign_verifies(
            file,
            &Bench::passin(case),
            case.rsa,
            spki,
            &format!("{}-orig", case.name),
        );
    }

    // A signature through libtpmkey.so (pkcs11-tool) verifies against the original
    // public key.
    let ids = b.keys();
    for (case, _, spki, _) in &originals {
        let id = &ids.iter().find(|(l, _)| l == case.name).unwrap().1;
        let data = b.write(
            &format!("{}.p11data", case.name),
            b"signed through libtpmkey.so",
        );
        let sig = b.path(&format!("{}.p11sig", case.name));
        let out = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module_path())
            .args([
                "--token-label",
                "t",
                "--login",
                "--pin",
                "1234",
                "--sign",
                "--id",
                id,
            ])
            .args([
                "-m",
                if case.rsa {
                    "SHA256-RSA-PKCS"
                } else {
                    "ECDSA-SHA256"
                },
            ])
            .args(["--signature-format", "openssl", "-i", &data, "-o"])
            .arg(&sig)
            .env("TPMKEY_TCTI", b.proxy.tcti())
            .env("TPMKEY_STORE", b.store())
            .output()
            .expect("pkcs11-tool (apt-get install opensc)");
        assert!(out.status.success(), "pkcs11-tool: {}", text(&out));
        b.openssl_ok(&[
            "dgst",
            "-sha256",
            "-verify",
            &spki.to_string_lossy(),
            "-signature",
            &sig.to_string_lossy(),
            &data,
        ]);
    }

    // An ssh login with each imported key, the server knowing only the original
    // public key.
    let apdir = b.path("askpass");
    std::fs::create_dir_all(&apdir).unwrap();
    let ap = askpass(&apdir, "1234");
    for (case, _, _, original_line) in &originals {
        let sshd = Sshd::start(&format!("{original_line}\n"));
        let m = module_path();
        let mut c = sshd.ssh(&["-I", &m.to_string_lossy()], None);
        with_tpm(&mut c, &b.proxy.tcti(), &b.store(), &ap);
        let out = c.output().expect("ssh");
        assert!(
            logged_in(&out),
            "{}: ssh login failed: {}\n{}",
            case.name,
            text(&out),
            sshd.log()
        );
    }
}

#[test]
fn tpmkey_keys_export_to_tpm2_openssl() {
    let b = Bench::new();
    b.tk(&[
        "key",
        "add",
        "--token",
        "t",
        "--label",
        "ec",
        "--algorithm",
        "ecc256",
        "--userpin",
        "1234",
    ]);
    b.tk(&[
        "key",
        "add",
        "--token",
        "t",
        "--label",
        "rsa",
        "--algorithm",
        "rsa2048",
        "--userpin",
        "1234",
    ]);
    // tpm2-openssl's own files under the same parent, for the DER layout.
    let reference = |pw: bool| {
        let case = &CASES[usize::from(pw)];
        let f = b.genpkey(
            case,
            &format!("ref-{pw}.pem"),
            &["-pkeyopt", "parent:0x81000001"],
        );
        asn1_shape(&b, &f)
    };
    let (ref_pw, ref_nopw) = (reference(true), reference(false));
    for label in ["ec", "rsa"] {
        for password in [Some("new-export-pw-3d9a"), None] {
            let out = b.path(&format!("{label}-{}.pem", password.is_some()));
            let out_arg = out.to_string_lossy().into_owned();
            let mut args = vec![
                "key",
                "export",
                "--token",
                "t",
                "--label",
                label,
                "--tss2",
                "--out",
                &out_arg,
                "--userpin",
                "1234",
            ];
            let pwfile =
                password.map(|p| b.write(&format!("{label}.newpw"), format!("{p}\n").as_bytes()));
            match &pwfile {
                Some(f) => args.extend(["--passphrase-file", f.as_str()]),
                None => args.push("--no-password"),
            }
            b.proxy.clear();
            b.tk(&args);
            if let Some(p) = password {
                assert!(
                    !b.proxy.saw_bytes(p.as_bytes()),
                    "the new password crossed the bus"
                );
            }
            assert!(!b.proxy.saw_bytes(b"1234"), "the PIN crossed the bus");
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
                0o600
            );

            // The layout is tpm2-openssl's: SEQUENCE { OID 2.23.133.10.1.3,
            // [0] BOOLEAN, INTEGER 0x81000001, OCTET STRING, OCTET STRING }.
            let shape = asn1_shape(&b, &out);
            assert_eq!(
                shape.iter().map(|(t, _)| t).collect::<Vec<_>>(),
                if password.is_some() {
                    &ref_pw
                } else {
                    &ref_nopw
                }
                .iter()
                .map(|(t, _)| t)
                .collect::<Vec<_>>()
            );
            assert!(
                shape
                    .iter()
                    .any(|(t, v)| t == "OBJECT" && v == "2.23.133.10.1.3"),
                "{shape:?}"
            );
            assert!(
                shape.iter().any(|(t, v)| t == "INTEGER" && v == "81000001"),
                "{shape:?}"
            );
            let exported = Tss2Key::from_pem(&std::fs::read(&out).unwrap()).unwrap();
            assert_eq!(exported.empty_auth, password.is_none());

            // tpm2-openssl signs with it; the signature verifies against the key
            // `tpmkey ssh-pubkey` shows.
            let spki = spki_of_ssh_line(
                b.dir.path(),
                label,
                &b.tk(&["ssh-pubkey", "--token", "t", "--label", label]),
            );
            let passin: Vec<String> = password
                .map(|p| vec!["-passin".to_string(), format!("pass:{p}")])
                .unwrap_or_default();
            let rsa = label == "rsa";
            b.openssl_sign_verifies(&out, &passin, rsa, &spki, &format!("{label}-exp"));
            // The password is the copy's only way in.
            if password.is_some() {
                b.openssl_sign_refused(&out, rsa);
            }
            let h = b.write("store-sign.data", b"the store's key still signs");
            // The key in the store keeps its PIN.
            b.tk(&[
                "sign",
                "--token",
                "t",
                "--label",
                label,
                "--userpin",
                "1234",
                "--in",
                &h,
            ]);
        }
    }
    // Never overwritten.
    let existing = b.path("ec-true.pem").to_string_lossy().into_owned();
    let err = b.tk_refused(&[
        "key",
        "export",
        "--token",
        "t",
        "--label",
        "ec",
        "--tss2",
        "--out",
        &existing,
        "--no-password",
        "--userpin",
        "1234",
    ]);
    assert!(err.contains("never overwritten"), "{err}");
    // A failed export (wrong PIN) leaves no file behind.
    let fresh = b.path("never.pem").to_string_lossy().into_owned();
    let err = b.tk_refused(&[
        "key",
        "export",
        "--token",
        "t",
        "--label",
        "ec",
        "--tss2",
        "--out",
        &fresh,
        "--no-password",
        "--userpin",
        "9999",
    ]);
    assert!(err.contains("TPM_RC_AUTH_FAIL"), "{err}");
    assert!(!Path::new(&fresh).exists(), "a failed export left {fresh}");
    assert!(
        common::loaded_handles(&b.sim.tcti()).is_empty(),
        "nothing left loaded"
    );
}

/// `openssl asn1parse` of a PEM file: (type, value) per element.
fn asn1_shape(b: &Bench, pem: &Path) -> Vec<(String, String)> {
    let out = b.openssl_ok(&["asn1parse", "-in", &pem.to_string_lossy()]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let after = l
                .split_once("prim:")
                .or_else(|| l.split_once("cons:"))
                .map_or("", |x| x.1);
            let mut parts = after.trim().splitn(2, ' ');
            let t = parts.next().unwrap_or("").to_string();
            let v = parts
                .next()
                .unwrap_or("")
                .trim()
                .trim_start_matches(':')
                .to_string();
            let v = if t == "OCTET" { String::new() } else { v };
            (t, v)
        })
        .collect()
}

/// A go-tpm-keyfiles/ssh-tpm-agent-style key file, built here from the draft's
/// ASN.1 (not with tpmkey's writer): a key made in the TPM with sign and decrypt,
/// scheme NULL, a password, emptyAuth left out, a description.
mod ssh_tpm_agent_style {
    use der::asn1::{ObjectIdentifier, OctetString};
    use der::{Encode, Sequence};

    /// TPMKey as the draft writes it (the fields go-tpm-keyfiles writes).
    #[derive(Sequence)]
    pub struct TpmKey {
        pub key_type: ObjectIdentifier,
        #[asn1(context_specific = "0", optional = "true")]
        pub empty_auth: Option<bool>,
        #[asn1(context_specific = "2", optional = "true")]
        pub secret: Option<OctetString>,
        #[asn1(context_specific = "4", optional = "true")]
        pub description: Option<String>,
        pub parent: u32,
        pub pubkey: OctetString,
        pub privkey: OctetString,
    }

    pub fn pem(key: &TpmKey) -> String {
        der::pem::encode_string(
            "TSS2 PRIVATE KEY",
            der::pem::LineEnding::LF,
            &key.to_der().unwrap(),
        )
        .unwrap()
    }
}

#[test]
fn an_ssh_tpm_agent_style_file_with_a_description_imports() {
    use p256::ecdsa::signature::Verifier;
    use tpm_commands::attributes::{TpmaObject, TpmaSession};
    use tpm_commands::buffers::{Tpm2bAuth, Tpm2bData, Tpm2bSensitiveData};
    use tpm_commands::codec::Marshal;
    use tpm_commands::commands::Create;
    use tpm_commands::structures::{
        PublicParams, Tpm2bPublic, Tpm2bSensitiveCreate, TpmlPcrSelection, TpmsSensitiveCreate,
    };
    use tpmkey::keys::srk::Srk;
    use tpmkey::keys::templates::{signing_template, KeyAlgorithm, SrkKind};
    use tpmkey::session::start::SessionParams;
    use tpmkey::tpm::{Auth, Tpm};

    let b = Bench::new();
    let password = "agent-pw-0c4f";
    // The key, made in the TPM with ssh-tpm-agent's attributes.
    let mut tpm = Tpm::open(&b.sim.tcti().parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&srk.salt_key().unwrap()))
        .unwrap();
    let mut template = signing_template(KeyAlgorithm::Ecc256, false);
    template.object_attributes = TpmaObject::FIXED_TPM
        | TpmaObject::FIXED_PARENT
        | TpmaObject::SENSITIVE_DATA_ORIGIN
        | TpmaObject::USER_WITH_AUTH
        | TpmaObject::SIGN_ENCRYPT
        | TpmaObject::DECRYPT;
    s.set_attributes(TpmaSession::CONTINUE_SESSION | TpmaSession::DECRYPT);
    let rsp = tpm
        .execute(
            &Create {
                parent_handle: srk.handle,
                in_sensitive: Tpm2bSensitiveCreate::new(TpmsSensitiveCreate {
                    user_auth: Tpm2bAuth::new(password.as_bytes().to_vec()).unwrap(),
                    data: Tpm2bSensitiveData::empty(),
                }),
                in_public: Tpm2bPublic::new(template),
                outside_info: Tpm2bData::empty(),
                creation_pcr: TpmlPcrSelection::default(),
            },
            &[&srk.name],
            &mut [Auth::Session(&mut s, &[])],
        )
        .unwrap();
    let public = rsp.out_public.0.clone().unwrap();
    let PublicParams::Ecc { unique, .. } = &public.params else {
        panic!()
    };
    let point = [&[4u8][..], unique.x.as_bytes(), unique.y.as_bytes()].concat();
    drop(tpm);

    let file = ssh_tpm_agent_style::TpmKey {
        key_type: ObjectIdentifier::new_unwrap("2.23.133.10.1.3"),
        empty_auth: None,
        secret: None,
        description: Some("alice@laptop".into()),
        parent: 0x4000_0001,
        pubkey: OctetString::new(rsp.out_public.to_bytes().unwrap()).unwrap(),
        privkey: OctetString::new(rsp.out_private.to_bytes().unwrap()).unwrap(),
    };
    let path = b.write("agent.tpm", ssh_tpm_agent_style::pem(&file).as_bytes());
    let parsed = Tss2Key::from_pem(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(parsed.description.as_deref(), Some("alice@laptop"));
    assert!(!parsed.empty_auth);
    assert_eq!(parsed.public, public);

    // Without the password: refused, nothing written.
    let wrong = b.write("wrong.pw", b"not-it\n");
    let err = b.tk_refused(&[
        "key",
        "import",
        "--token",
        "t",
        "--label",
        "agent",
        "--userpin",
        "1234",
        "--passphrase-file",
        &wrong,
        &path,
    ]);
    assert!(err.contains("wrong password for the key file"), "{err}");
    assert_eq!(b.key_files(), 0);
    assert!(
        common::loaded_handles(&b.sim.tcti()).is_empty(),
        "the key is flushed after a wrong password"
    );

    let pw = b.write("agent.pw", format!("{password}\n").as_bytes());
    b.proxy.clear();
    b.tk(&[
        "key",
        "import",
        "--token",
        "t",
        "--label",
        "agent",
        "--userpin",
        "1234",
        "--passphrase-file",
        &pw,
        &path,
    ]);
    assert!(
        !b.proxy.saw_bytes(password.as_bytes()),
        "the password crossed the bus"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&b.tk(&["key", "list", "--token", "t", "--json"])).unwrap();
    assert_eq!(
        listed[0]["imported"], false,
        "made by the TPM: not an imported key"
    );

    // It signs as the key the TPM made.
    let data = b.write("agent.data", b"agent data");
    let sig = b.tk(&[
        "sign",
        "--token",
        "t",
        "--label",
        "agent",
        "--userpin",
        "1234",
        "--in",
        &data,
    ]);
    let sig = p256::ecdsa::Signature::from_slice(&hex::decode(sig.trim()).unwrap()).unwrap();
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
        .unwrap()
        .verify(b"agent data", &sig)
        .expect("verifies against the TPM-made public key");
}

/// An importable key file (id-importablekey, go-tpm-keyfiles' form): a P-256 key
/// made in software, wrapped here for this TPM's SRK (outer wrapper only, the seed
/// in `secret`), with a password. tpmkey imports it with TPM2_Import, then moves it
/// to its PIN; the private scalar and the password never cross the bus in clear.
#[test]
fn an_importable_key_file_imports() {
    use p256::ecdsa::signature::Verifier;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use tpm_commands::attributes::TpmaObject;
    use tpm_commands::buffers::{
        Tpm2bAuth, Tpm2bDigest, Tpm2bEccParameter, Tpm2bEccPrivate, Tpm2bEncryptedSecret,
        Tpm2bPrivate,
    };
    use tpm_commands::codec::Marshal;
    use tpm_commands::structures::{
        PublicParams, SensitiveComposite, Tpm2bPublic, Tpm2bSensitive, TpmsEccPoint, TpmtSensitive,
    };
    use tpmkey::crypto::{duplicate::outer_wrap, hash::HashAlg, secret};
    use tpmkey::keys::public::{object_name, SaltKey};
    use tpmkey::keys::srk::Srk;
    use tpmkey::keys::templates::{signing_template, KeyAlgorithm, SrkKind};
    use tpmkey::tpm::Tpm;

    let b = Bench::new();
    let password = "importable-pw-41aa";
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    let d = key.to_bytes().to_vec();
    let point = key.public_key().to_encoded_point(false);
    let mut public = signing_template(KeyAlgorithm::Ecc256, false);
    public.object_attributes =
        TpmaObject::USER_WITH_AUTH | TpmaObject::SIGN_ENCRYPT | TpmaObject::DECRYPT;
    if let PublicParams::Ecc { unique, .. } = &mut public.params {
        *unique = TpmsEccPoint {
            x: Tpm2bEccParameter::new(point.x().unwrap().to_vec()).unwrap(),
            y: Tpm2bEccParameter::new(point.y().unwrap().to_vec()).unwrap(),
        };
    }
    let sensitive = Tpm2bSensitive::new(TpmtSensitive {
        auth_value: Tpm2bAuth::new(password.as_bytes().to_vec()).unwrap(),
        seed_value: Tpm2bDigest::empty(),
        sensitive: SensitiveComposite::Ecc(Tpm2bEccPrivate::new(d.clone()).unwrap()),
    })
    .to_bytes()
    .unwrap();
    let mut tpm = Tpm::open(&b.sim.tcti().parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    drop(tpm);
    let SaltKey::Ecc {
        curve,
        x,
        y,
        name_alg,
        ..
    } = srk.salt_key().unwrap()
    else {
        panic!("ECC SRK")
    };
    let (seed, ex, ey) =
        secret::ecc_encapsulate(curve, &x, &y, name_alg, b"DUPLICATE", &mut rand_core::OsRng)
            .unwrap();
    let duplicate = outer_wrap(
        HashAlg::Sha256,
        128,
        &seed,
        &object_name(&public).unwrap(),
        &sensitive,
    )
    .unwrap();
    let file = ssh_tpm_agent_style::TpmKey {
        key_type: ObjectIdentifier::new_unwrap("2.23.133.10.1.4"),
        empty_auth: None,
        secret: Some(
            OctetString::new(
                Tpm2bEncryptedSecret::new(secret::ecc_point_bytes(&ex, &ey))
                    .unwrap()
                    .to_bytes()
                    .unwrap(),
            )
            .unwrap(),
        ),
        description: None,
        parent: 0x4000_0001,
        pubkey: OctetString::new(Tpm2bPublic::new(public).to_bytes().unwrap()).unwrap(),
        privkey: OctetString::new(Tpm2bPrivate::new(duplicate).unwrap().to_bytes().unwrap())
            .unwrap(),
    };
    let path = b.write("importable.tpm", ssh_tpm_agent_style::pem(&file).as_bytes());
    let pw = b.write("importable.pw", format!("{password}\n").as_bytes());
    b.proxy.clear();
    b.tk(&[
        "key",
        "import",
        "--token",
        "t",
        "--label",
        "imp",
        "--userpin",
        "1234",
        "--passphrase-file",
        &pw,
        &path,
    ]);
    let cmds: Vec<u32> = b.proxy.exchanges().iter().map(|x| x.cc()).collect();
    assert!(cmds.contains(&0x0156), "TPM2_Import sent: {cmds:x?}");
    assert!(!b.proxy.saw_bytes(&d), "the private scalar crossed the bus");
    assert!(
        !b.proxy.saw_bytes(password.as_bytes()),
        "the password crossed the bus"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&b.tk(&["key", "list", "--token", "t", "--json"])).unwrap();
    assert_eq!(listed[0]["imported"], true, "not made by the TPM");

    let data = b.write("imp.data", b"importable data");
    let sig = b.tk(&[
        "sign",
        "--token",
        "t",
        "--label",
        "imp",
        "--userpin",
        "1234",
        "--in",
        &data,
    ]);
    let sig = p256::ecdsa::Signature::from_slice(&hex::decode(sig.trim()).unwrap()).unwrap();
    p256::ecdsa::VerifyingKey::from(key.public_key())
        .verify(b"importable data", &sig)
        .expect("verifies against the software key");

    // Wrapped for another TPM: TPM2_Import fails, said as such.
    let other = Swtpm::start();
    let mut tpm2 = Tpm::open(&other.tcti().parse().unwrap()).unwrap();
    let other_srk = Srk::load(&mut tpm2, SrkKind::Ecc).unwrap();
    drop(tpm2);
    let SaltKey::Ecc {
        curve,
        x,
        y,
        name_alg,
        ..
    } = other_srk.salt_key().unwrap()
    else {
        panic!("ECC SRK")
    };
    let (_, ex, ey) =
        secret::ecc_encapsulate(curve, &x, &y, name_alg, b"DUPLICATE", &mut rand_core::OsRng)
            .unwrap();
    let foreign = ssh_tpm_agent_style::TpmKey {
        secret: Some(
            OctetString::new(
                Tpm2bEncryptedSecret::new(secret::ecc_point_bytes(&ex, &ey))
                    .unwrap()
                    .to_bytes()
                    .unwrap(),
            )
            .unwrap(),
        ),
        ..file
    };
    let path = b.write(
        "foreign-importable.tpm",
        ssh_tpm_agent_style::pem(&foreign).as_bytes(),
    );
    let err = b.tk_refused(&[
        "key",
        "import",
        "--token",
        "t",
        "--label",
        "imp2",
        "--userpin",
        "1234",
        "--passphrase-file",
        &pw,
        &path,
    ]);
    assert!(
        err.contains("not wrapped for this TPM's storage root key"),
        "{err}"
    );
    assert_eq!(b.key_files(), 1);
}

/// Edits a DER file: replaces `from` (once) by `to`, fixing the outer length.
fn splice_der(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let hl = match der[1] {
        0x81 => 3,
        0x82 => 4,
        _ => 2,
    };
    let content = &der[hl..];
    let at = content
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern");
    let new = [&content[..at], to, &content[at + from.len()..]].concat();
    let mut out = match new.len() {
        0..=0x7F => vec![0x30, new.len() as u8],
        0x80..=0xFF => vec![0x30, 0x81, new.len() as u8],
        n => vec![0x30, 0x82, (n >> 8) as u8, n as u8],
    };
    out.extend(new);
    out
}

fn pem_of(der: &[u8]) -> String {
    der::pem::encode_string("TSS2 PRIVATE KEY", der::pem::LineEnding::LF, der).unwrap()
}

#[test]
fn hostile_and_foreign_files_are_refused_with_nothing_written() {
    let b = Bench::new();
    let good = b.genpkey(&CASES[0], "good.pem", &[]);
    let der = der_of(&good);
    let owner = [0x02, 0x04, 0x40, 0x00, 0x00, 0x01];
    let oid = [0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x03];
    let mut oversized = der.clone();
    oversized[2] += 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            pem_of(&der[..der.len() - 40]).into_bytes(),
            "DER",
        ),
        ("oversized", pem_of(&oversized).into_bytes(), "DER"),
        (
            "huge",
            format!(
                "-----BEGIN TSS2 PRIVATE KEY-----\n{}-----END TSS2 PRIVATE KEY-----\n",
                "MIIB"
                    .repeat(16)
                    .repeat(1100)
                    .as_bytes()
                    .chunks(64)
                    .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
                    .collect::<String>()
            )
            .into_bytes(),
            "more than any TPM key file",
        ),
        (
            "wrong-oid",
            pem_of(&splice_der(
                &der,
                &oid,
                &[0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x07],
            ))
            .into_bytes(),
            "unknown key type 2.23.133.10.1.7",
        ),
        (
            "lying-public-size",
            pem_of(&splice_der(
                &der,
                &[0x04, 0x58, 0x00, 0x56],
                &[0x04, 0x58, 0x00, 0x60],
            ))
            .into_bytes(),
            "pubkey is not a TPM2B_PUBLIC",
        ),
        (
            "parent-ffffffff",
            pem_of(&splice_der(
                &der,
                &owner,
                &[0x02, 0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF],
            ))
            .into_bytes(),
            "parent is 0xffffffff",
        ),
        (
            "parent-81000002",
            pem_of(&splice_der(
                &der,
                &owner,
                &[0x02, 0x05, 0x00, 0x81, 0x00, 0x00, 0x02],
            ))
            .into_bytes(),
            "parent is 0x81000002",
        ),
        (
            "sealed",
            pem_of(&splice_der(
                &der,
                &oid,
                &[0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x05],
            ))
            .into_bytes(),
            "sealed data object",
        ),
    ];
    for (name, bytes, expect) in &cases {
        let path = b.write(&format!("{name}.pem"), bytes);
        let err = b.tk_refused(&[
            "key",
            "import",
            "--token",
            "t",
            "--label",
            name,
            "--userpin",
            "1234",
            &path,
        ]);
        assert!(err.contains(expect), "{name}: {err}");
        assert_eq!(b.key_files(), 0, "{name}: something was written");
    }

    // A private blob from another TPM: TPM2_Load fails, said as such; nothing
    // written, nothing left loaded.
    let other = Swtpm::start_tss();
    let foreign = b.path("foreign.pem");
    let out = openssl_on(
        &other,
        &[
            "genpkey",
            "-provider",
            "tpm2",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "group:P-256",
            "-out",
            &foreign.to_string_lossy(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let err = b.tk_refused(&[
        "key",
        "import",
        "--token",
        "t",
        "--label",
        "foreign",
        "--userpin",
        "1234",
        &foreign.to_string_lossy(),
    ]);
    assert!(
        err.contains("does not load under this TPM's storage root key"),
        "{err}"
    );
    assert!(err.contains("another TPM"), "{err}");
    assert_eq!(b.key_files(), 0);
    assert!(
        common::loaded_handles(&b.sim.tcti()).is_empty(),
        "nothing left loaded"
    );

    // A key file with a policy (the draft's policy field: one TPM2_PolicyPCR step)
    // is refused, naming it.
    let empty_auth = [0xA0, 0x03, 0x01, 0x01, 0x01];
    let policy = [
        0xA1, 0x0E, 0x30, 0x0C, 0x30, 0x0A, 0xA0, 0x04, 0x02, 0x02, 0x01, 0x7F, 0xA1, 0x02, 0x04,
        0x00,
    ];
    let with_policy = splice_der(&der, &empty_auth, &[&empty_auth[..], &policy].concat());
    let path = b.write("policy.pem", pem_of(&with_policy).as_bytes());
    let err = b.tk_refused(&[
        "key",
        "import",
        "--token",
        "t",
        "--label",
        "policy",
        "--userpin",
        "1234",
        &path,
    ]);
    assert!(
        err.contains("the key has a policy (TPM2_PolicyPCR)"),
        "{err}"
    );
    assert_eq!(b.key_files(), 0);

    // A store whose SRK is the RSA one refuses a key under the P-256 primary.
    let rsa_store = b.path("rsa-store");
    let run = |args: &[&str]| common::run_tpmkey_in(&b.proxy.tcti(), &rsa_store, args);
    assert!(run(&["init", "--srk", "rsa", "--no-persist"]).0);
    assert!(run(&["token", "add", "--label", "r", "--no-pin"]).0);
    let (ok, _, err) = run(&[
        "key",
        "import",
        "--token",
        "r",
        "--label",
        "k",
        &good.to_string_lossy(),
    ]);
    assert!(
        !ok && err.contains("0x40000001 with the ECC P-256 template"),
        "{err}"
    );
}

/// The wire audit of an import and an export through the library: neither the
/// key file's password, the export password, nor the key's tpmkey authValue
/// crosses the bus in clear (TPM2_ObjectChangeAuth with `decrypt`, the old value
/// only in an HMAC key).
#[test]
fn wire_audit_import_and_export() {
    use tpmkey::app::App;
    let b = Bench::new();
    let case = &CASES[1];
    let file = b.genpkey(case, "audit.pem", &[]);
    let key = Tss2Key::from_pem(&std::fs::read(&file).unwrap()).unwrap();
    let old = case.password.unwrap().as_bytes();
    let app = App::open(Some(b.store()), b.proxy.tcti().parse().unwrap()).unwrap();
    b.proxy.clear();
    let rec = app
        .key_import_tss2("t", "audit", &key, old, b"1234")
        .unwrap();
    let new_password = b"audit-export-pw-e81d";
    let exported = app
        .key_export_tss2("t", "audit", b"1234", new_password)
        .unwrap();
    assert!(exported.pem.contains("BEGIN TSS2 PRIVATE KEY"));
    let exchanges = b.proxy.exchanges();

    // The key's tpmkey authValue, computed off the wire.
    let direct = App::open(Some(b.store()), b.sim.tcti().parse().unwrap()).unwrap();
    let mut c = direct.connect().unwrap();
    let secret = direct.token_secret(&mut c, "t", b"1234").unwrap();
    let auth = tpmkey::token::key_auth(&secret, &hex::decode(&rec.id).unwrap());
    drop(c);

    let change_auths = exchanges.iter().filter(|x| x.cc() == 0x0150).count();
    assert_eq!(change_auths, 2, "one ObjectChangeAuth each way");
    for (what, secret) in [
        ("the old password", old),
        ("the export password", &new_password[..]),
        ("the key's authValue", &auth[..]),
        ("the PIN", b"1234"),
    ] {
        assert!(
            !exchanges.iter().any(|x| {
                x.command.windows(secret.len()).any(|w| w == secret)
                    || x.response.windows(secret.len()).any(|w| w == secret)
            }),
            "{what} crossed the bus in clear"
        );
    }
}
