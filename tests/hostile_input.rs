//! Hostile and damaged input gives a clear error at once, and damage stays local:
//! - a FIFO, `/dev/zero` (directly and through a symlink), a directory or an
//!   oversized file in every file position (store.json, token.json, a key file, the
//!   store lock, a key file to import, PIN, passphrase and sealed files, `--in`):
//!   an error naming the path, within a bound, never a hang or an out-of-memory;
//! - one unreadable key or token file hides only that key or token;
//! - passphrase-protected OpenSSH keys asking for more bcrypt rounds than the cap are
//!   refused before any work; OpenSSH keys wrapped at 76 columns import;
//! - RSA keys whose parts disagree, and ECDSA keys whose public point is not d·G,
//!   are refused before the TPM sees them;
//! - key labels are unique and bounded; a missing passphrase is named as such; a
//!   response code outside the TPM's range prints as an unknown code.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use common::proxy::TpmProxy;
use common::{Swtpm, TempDir};

/// How long any of these commands may take: each fails before doing real work.
const BOUND: Duration = Duration::from_secs(10);

/// Runs tpmkey with no controlling terminal (so nothing can be prompted for) and
/// no PIN in the environment; fails the test if it runs past [`BOUND`].
fn tk(tcti: &str, store: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(common::tpmkey_bin());
    cmd.args(args)
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_STORE", store)
        .env_remove("TPM2TOOLS_TCTI")
        .env_remove("TPMKEY_PIN")
        .env_remove("TPMKEY_SOPIN")
        .env_remove("TPMKEY_PASSPHRASE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe; it only detaches the child from the
    // test's terminal, so that /dev/tty cannot be opened for a prompt.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn tpmkey");
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tpmkey {args:?} hung (killed after {BOUND:?})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The odd things put in a file's place, and what the error must say.
fn odd_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let fifo = dir.join("fifo");
    if !fifo.exists() {
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }
    let zero = dir.join("zero-link");
    if !zero.exists() {
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    }
    let subdir = dir.join("a-directory");
    std::fs::create_dir_all(&subdir).unwrap();
    let big = dir.join("big");
    if !big.exists() {
        std::fs::write(&big, vec![b'A'; 2 << 20]).unwrap();
    }
    vec![
        (fifo, "a FIFO"),
        (zero, "a character device"),
        (PathBuf::from("/dev/zero"), "a character device"),
        (subdir, "a directory"),
        (big, "larger than 1048576 bytes"),
    ]
}

/// A store with an initialized SRK, token "ssh" (PIN 1111) with keys k1 and k2, and
/// a no-PIN token "open" with key o.
struct Rig {
    sim: Swtpm,
    dir: TempDir,
    store: PathBuf,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let sim = Swtpm::start();
        let dir = TempDir::new(tag);
        let store = dir.path().join("store");
        let rig = Rig { sim, dir, store };
        rig.ok(&["init"]);
        rig.ok(&[
            "token",
            "add",
            "--label",
            "ssh",
            "--userpin",
            "1111",
            "--sopin",
            "so",
        ]);
        rig.ok(&[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            "k1",
            "--userpin",
            "1111",
        ]);
        rig.ok(&[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            "k2",
            "--userpin",
            "1111",
        ]);
        rig.ok(&["token", "add", "--label", "open", "--no-pin"]);
        rig.ok(&["key", "add", "--token", "open", "--label", "o"]);
        rig
    }

    fn tk(&self, args: &[&str]) -> (bool, String) {
        tk(&self.sim.tcti(), &self.store, args, &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        let (good, out) = self.tk(args);
        assert!(good, "tpmkey {args:?}: {out}");
        out
    }

    fn fails(&self, args: &[&str], needles: &[&str]) -> String {
        let (good, out) = self.tk(args);
        assert!(!good, "tpmkey {args:?} should fail: {out}");
        for n in needles {
            assert!(out.contains(n), "tpmkey {args:?}: no {n:?} in: {out}");
        }
        out
    }

    fn key_file(&self, token: &str, label: &str) -> PathBuf {
        let dir = self.store.join("tokens").join(token).join("keys");
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if std::fs::read_to_string(&p)
                .unwrap()
                .contains(&format!("\"label\": \"{label}\""))
            {
                return p;
            }
        }
        panic!("no key file for {label}");
    }

    /// Swaps `path` for each odd file in turn, runs `check`, and puts it back.
    fn with_odd_file_at(&self, path: &Path, check: impl Fn(&Path, &str)) {
        let saved = self.dir.path().join("saved");
        std::fs::rename(path, &saved).unwrap();
        for (odd, what) in odd_files(self.dir.path()) {
            if odd.starts_with("/dev") {
                std::os::unix::fs::symlink(&odd, path).unwrap();
            } else {
                std::fs::rename(&odd, path).unwrap();
            }
            check(path, what);
            if odd.starts_with("/dev") {
                std::fs::remove_file(path).unwrap();
            } else {
                std::fs::rename(path, &odd).unwrap();
            }
        }
        std::fs::rename(&saved, path).unwrap();
    }
}

#[test]
fn odd_files_in_the_store_are_named_at_once_and_hide_only_themselves() {
    let rig = Rig::new("hostile-store");
    let root = rig.store.clone();

    // store.json: every command that needs the store says which file is wrong.
    rig.with_odd_file_at(&root.join("store.json"), |p, what| {
        let what = if what == "a character device" {
            "a symbolic link" // the store's own files are never followed
        } else {
            what
        };
        for args in [
            &["token", "list"][..],
            &["key", "list"],
            &["ssh-pubkey"],
            &["sign", "--token", "open", "--label", "o"],
        ] {
            rig.fails(args, &[&p.display().to_string(), what]);
        }
    });

    // A token file: that token is named and skipped, the other one works.
    rig.with_odd_file_at(&root.join("tokens/ssh/token.json"), |p, _| {
        let out = rig.ok(&["token", "list"]);
        assert!(
            out.contains("open") && out.contains(&p.display().to_string()),
            "{out}"
        );
        rig.fails(
            &[
                "sign",
                "--token",
                "ssh",
                "--label",
                "k1",
                "--userpin",
                "1111",
            ],
            &[&p.display().to_string()],
        );
        rig.ok(&["sign", "--token", "open", "--label", "o"]);
    });

    // A key file: that key is skipped (and named), the others are listed and work.
    let k1 = rig.key_file("ssh", "k1");
    rig.with_odd_file_at(&k1, |p, _| {
        let out = rig.ok(&["key", "list"]);
        assert!(
            out.contains("k2") && out.contains("o") && !out.contains("\tk1\t"),
            "{out}"
        );
        assert!(out.contains(&p.display().to_string()), "{out}");
        let out = rig.ok(&["ssh-pubkey"]);
        assert_eq!(
            out.lines().filter(|l| l.starts_with("ecdsa-")).count(),
            2,
            "{out}"
        );
        assert!(
            out.contains("skipped") && out.contains(&p.display().to_string()),
            "{out}"
        );
        rig.ok(&[
            "sign",
            "--token",
            "ssh",
            "--label",
            "k2",
            "--userpin",
            "1111",
        ]);
        rig.fails(
            &[
                "sign",
                "--token",
                "ssh",
                "--label",
                "k1",
                "--userpin",
                "1111",
            ],
            &["no key labelled \"k1\"", &p.display().to_string()],
        );
    });

    // The lock file.
    let lock = root.join("lock");
    std::fs::remove_file(&lock).unwrap();
    nix::unistd::mkfifo(&lock, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    rig.fails(
        &["token", "add", "--label", "x", "--no-pin"],
        &[&lock.display().to_string()],
    );
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &lock).unwrap();
    rig.fails(
        &["token", "add", "--label", "x", "--no-pin"],
        &[&lock.display().to_string()],
    );
    std::fs::remove_file(&lock).unwrap();
    rig.ok(&["token", "add", "--label", "x", "--no-pin"]);
}

#[test]
fn one_damaged_key_or_token_hides_only_itself() {
    let rig = Rig::new("hostile-damage");
    // Truncated JSON, then a public area that does not parse.
    let k1 = rig.key_file("ssh", "k1");
    let good = std::fs::read_to_string(&k1).unwrap();
    std::fs::write(&k1, &good[..good.len() / 2]).unwrap();
    let out = rig.ok(&["ssh-pubkey"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ecdsa-")).count(),
        2,
        "{out}"
    );
    assert!(out.contains(&k1.display().to_string()), "{out}");
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["blob"]["public"] = serde_json::Value::String("0023".into());
    std::fs::write(&k1, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = rig.ok(&["ssh-pubkey"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ecdsa-")).count(),
        2,
        "{out}"
    );
    assert!(out.contains(&k1.display().to_string()), "{out}");
    let out = rig.ok(&["ssh-pubkey", "--token", "ssh"]);
    assert!(out.contains(" k2"), "{out}");
    // Only the damaged key asked for: nothing to print, and the reason.
    rig.fails(
        &["ssh-pubkey", "--label", "k1"],
        &[&k1.display().to_string()],
    );
    std::fs::write(&k1, good).unwrap();
    assert_eq!(
        rig.ok(&["ssh-pubkey"])
            .lines()
            .filter(|l| l.starts_with("ecdsa-"))
            .count(),
        3
    );
    // A token whose keys directory is gone: the other token's keys are listed.
    let keys = rig.store.join("tokens/open/keys");
    std::fs::rename(&keys, rig.dir.path().join("k")).unwrap();
    let out = rig.ok(&["key", "list"]);
    assert!(
        out.contains("k1") && out.contains("k2") && out.contains("open/keys"),
        "{out}"
    );
    std::fs::rename(rig.dir.path().join("k"), &keys).unwrap();
}

#[test]
fn odd_files_given_on_the_command_line_are_named_at_once() {
    let rig = Rig::new("hostile-args");
    let d = rig.dir.path().join("odd");
    std::fs::create_dir_all(&d).unwrap();
    let sealed = rig.dir.path().join("sealed.json");
    std::fs::write(rig.dir.path().join("secret"), b"s3cret").unwrap();
    let secret = rig.dir.path().join("secret").display().to_string();
    rig.ok(&[
        "seal",
        "--pcrs",
        "sha256:16",
        "--in",
        &secret,
        "--out",
        &sealed.display().to_string(),
    ]);
    let enc = rig.dir.path().join("enc");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "pw", "-C", "", "-f"])
        .arg(&enc)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let enc = enc.display().to_string();
    for (odd, what) in odd_files(&d) {
        let p = odd.display().to_string();
        let needles = [p.as_str(), what];
        let checks: Vec<Vec<&str>> = vec![
            vec!["key", "import", "--token", "open", "--label", "i", &p],
            vec![
                "key",
                "add",
                "--token",
                "ssh",
                "--label",
                "n",
                "--pin-file",
                &p,
            ],
            vec!["sign", "--token", "ssh", "--label", "k1", "--pin-file", &p],
            vec![
                "key",
                "import",
                "--token",
                "open",
                "--label",
                "i",
                &enc,
                "--passphrase-file",
                &p,
            ],
            vec!["unseal", &p],
            vec![
                "seal",
                "--pcrs",
                "sha256:16",
                "--in",
                &p,
                "--out",
                "/nonexistent/x",
            ],
            vec![
                "seal",
                "--with-pin",
                "--pin-file",
                &p,
                "--pcrs",
                "",
                "--in",
                &secret,
                "--out",
                "/nonexistent/x",
            ],
            vec!["sign", "--token", "open", "--label", "o", "--in", &p],
        ];
        for args in checks {
            let odd_is_data = args.windows(2).any(|w| w[0] == "--in" && w[1] == p);
            if what.starts_with("larger") && args[0] == "sign" && odd_is_data {
                // Data to sign has no size limit: it is hashed as it is read.
                rig.ok(&args);
                continue;
            }
            if what.starts_with("larger") && args[0] == "seal" && odd_is_data {
                rig.fails(&args, &["larger than 128 bytes"]);
                continue;
            }
            rig.fails(&args, &needles);
        }
    }
    // The key file, sealed file, PIN and passphrase files still work as files.
    let pin = rig.dir.path().join("pin");
    std::fs::write(&pin, "1111\n").unwrap();
    rig.ok(&[
        "sign",
        "--token",
        "ssh",
        "--label",
        "k1",
        "--pin-file",
        &pin.display().to_string(),
    ]);
    let pass = rig.dir.path().join("pass");
    std::fs::write(&pass, "pw\n").unwrap();
    rig.ok(&[
        "key",
        "import",
        "--token",
        "open",
        "--label",
        "i",
        &enc,
        "--passphrase-file",
        &pass.display().to_string(),
    ]);
    assert_eq!(rig.ok(&["unseal", &sealed.display().to_string()]), "s3cret");
}

/// Base64 of an OpenSSH key file's body.
fn openssh_body(text: &str) -> Vec<u8> {
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    Base64::decode_vec(&b64).unwrap()
}

/// An OpenSSH key file with its body wrapped at `width`.
fn openssh_text(body: &[u8], width: usize) -> String {
    let b64 = Base64::encode_string(body);
    let mut s = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(width) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s + "-----END OPENSSH PRIVATE KEY-----\n"
}

#[test]
fn bcrypt_rounds_are_capped_and_76_column_keys_import() {
    let rig = Rig::new("hostile-ssh");
    let dir = rig.dir.path();
    let keygen = |name: &str, args: &[&str]| -> PathBuf {
        let p = dir.join(name);
        let st = Command::new("ssh-keygen")
            .args(["-q", "-C", name, "-f"])
            .arg(&p)
            .args(args)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        p
    };
    let pass = dir.join("pass");
    std::fs::write(&pass, "pw\n").unwrap();
    let pass = pass.display().to_string();

    // The rounds field (after "openssh-key-v1\0", cipher, kdf name, salt) set to
    // more than the cap: refused at once, without asking for the passphrase.
    let enc = keygen("enc", &["-t", "ecdsa", "-N", "pw"]);
    let body = openssh_body(&std::fs::read_to_string(&enc).unwrap());
    let mut at = 15;
    let mut field = |body: &[u8]| {
        let n = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + n;
        at - n
    };
    field(&body); // cipher
    field(&body); // kdf name
    let kdfopts = field(&body); // kdf options: string salt, uint32 rounds
    let salt_len = u32::from_be_bytes(body[kdfopts..kdfopts + 4].try_into().unwrap()) as usize;
    let rounds_at = kdfopts + 4 + salt_len;
    assert_eq!(
        u32::from_be_bytes(body[rounds_at..rounds_at + 4].try_into().unwrap()),
        16
    );
    for rounds in [u32::MAX, 1025] {
        let mut patched = body.clone();
        patched[rounds_at..rounds_at + 4].copy_from_slice(&rounds.to_be_bytes());
        let f = dir.join(format!("rounds-{rounds}"));
        std::fs::write(&f, openssh_text(&patched, 70)).unwrap();
        let start = Instant::now();
        let out = rig.fails(
            &[
                "key",
                "import",
                "--token",
                "open",
                "--label",
                "r",
                &f.display().to_string(),
            ],
            &[&format!("{rounds} bcrypt rounds"), "at most 1024"],
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(!out.contains("passphrase for the key file given"), "{out}");
    }

    // Wrapped at 76 columns (Python's cryptography), plain and encrypted, ECDSA
    // and RSA: imported, with the original public key.
    for (name, args) in [
        ("w-ecdsa", &["-t", "ecdsa", "-N", ""][..]),
        ("w-rsa", &["-t", "rsa", "-b", "2048", "-N", ""]),
        ("w-enc", &["-t", "ecdsa", "-N", "pw"]),
    ] {
        let k = keygen(name, args);
        let text = openssh_text(&openssh_body(&std::fs::read_to_string(&k).unwrap()), 76);
        assert!(text.lines().nth(1).unwrap().len() == 76);
        std::fs::write(&k, text).unwrap();
        rig.ok(&[
            "key",
            "import",
            "--token",
            "open",
            "--label",
            name,
            &k.display().to_string(),
            "--passphrase-file",
            &pass,
        ]);
        let line = rig.ok(&["ssh-pubkey", "--token", "open", "--label", name]);
        let original = std::fs::read_to_string(k.with_extension("pub")).unwrap();
        let blob = |s: &str| s.split_whitespace().nth(1).unwrap().to_string();
        assert_eq!(blob(&line), blob(&original), "{name}");
    }
}

/// An RSA-2048 key's parts: (n, e, d, p, q).
fn rsa_parts() -> [Vec<u8>; 5] {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let k = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    [
        k.n().to_bytes_be(),
        k.e().to_bytes_be(),
        k.d().to_bytes_be(),
        k.primes()[0].to_bytes_be(),
        k.primes()[1].to_bytes_be(),
    ]
}

fn openssh_rsa(n: &[u8], e: &[u8], d: &[u8], iqmp: &[u8], p: &[u8], q: &[u8]) -> String {
    use ssh_key::private::{KeypairData, RsaKeypair, RsaPrivateKey};
    use ssh_key::public::RsaPublicKey;
    use ssh_key::Mpint;
    let m = |b: &[u8]| Mpint::from_positive_bytes(b).unwrap();
    let kp = RsaKeypair {
        public: RsaPublicKey { e: m(e), n: m(n) },
        private: RsaPrivateKey {
            d: m(d),
            iqmp: m(iqmp),
            p: m(p),
            q: m(q),
        },
    };
    ssh_key::PrivateKey::new(KeypairData::Rsa(kp), "x")
        .unwrap()
        .to_openssh(ssh_key::LineEnding::LF)
        .unwrap()
        .to_string()
}

fn pkcs1_pem(parts: [&[u8]; 8]) -> String {
    use rsa::pkcs1::der::asn1::UintRef;
    use rsa::pkcs1::der::Encode;
    let u = |b| UintRef::new(b).unwrap();
    let der = rsa::pkcs1::RsaPrivateKey {
        modulus: u(parts[0]),
        public_exponent: u(parts[1]),
        private_exponent: u(parts[2]),
        prime1: u(parts[3]),
        prime2: u(parts[4]),
        exponent1: u(parts[5]),
        exponent2: u(parts[6]),
        coefficient: u(parts[7]),
        other_prime_infos: None,
    }
    .to_der()
    .unwrap();
    rsa::pkcs1::der::pem::encode_string(
        "RSA PRIVATE KEY",
        rsa::pkcs1::der::pem::LineEnding::LF,
        &der,
    )
    .unwrap()
}

#[test]
fn keys_whose_parts_disagree_never_reach_the_tpm() {
    use rsa::BigUint;
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let dir = TempDir::new("hostile-rsa");
    let store = dir.path().join("store");
    let direct = sim.tcti();
    for args in [
        &["init"][..],
        &["token", "add", "--label", "open", "--no-pin"],
    ] {
        assert!(tk(&direct, &store, args, &[]).0);
    }
    let [n, e, d, p, q] = rsa_parts();
    let [_, _, d2, p2, q2] = rsa_parts();
    let big = |b: &[u8]| BigUint::from_bytes_be(b);
    let one = BigUint::from(1u8);
    let crt = |d: &[u8], p: &[u8], q: &[u8]| -> [Vec<u8>; 3] {
        let (p, q, d) = (big(p), big(q), big(d));
        let qinv = q.modpow(&(&p - BigUint::from(2u8)), &p);
        [
            (&d % (&p - &one)).to_bytes_be(),
            (&d % (&q - &one)).to_bytes_be(),
            qinv.to_bytes_be(),
        ]
    };
    let [dp, dq, qinv] = crt(&d, &p, &q);
    let bad_qinv = (big(&qinv) + &one).to_bytes_be();
    let bad_dp = (big(&dp) + &one + &one).to_bytes_be();
    let import = |name: &str, text: &str| -> (bool, String) {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        proxy.clear();
        let r = tk(
            &proxy.tcti(),
            &store,
            &[
                "key",
                "import",
                "--token",
                "open",
                "--label",
                name,
                &f.display().to_string(),
            ],
            &[],
        );
        r
    };
    // The good key imports (both formats), so the rest fail for their damage only.
    let (good, out) = import("ok-ssh", &openssh_rsa(&n, &e, &d, &qinv, &p, &q));
    assert!(good, "{out}");
    let (good, out) = import("ok-pem", &pkcs1_pem([&n, &e, &d, &p, &q, &dp, &dq, &qinv]));
    assert!(good, "{out}");
    let [_, _, qinv2] = crt(&d, &p, &q2);
    let cases: Vec<(&str, String)> = vec![
        ("ssh-other-q", openssh_rsa(&n, &e, &d, &qinv2, &p, &q2)),
        ("ssh-other-p", openssh_rsa(&n, &e, &d, &qinv, &p2, &q)),
        ("ssh-other-d", openssh_rsa(&n, &e, &d2, &qinv, &p, &q)),
        ("ssh-bad-iqmp", openssh_rsa(&n, &e, &d, &bad_qinv, &p, &q)),
        (
            "pem-other-q",
            pkcs1_pem([&n, &e, &d, &p, &q2, &dp, &dq, &qinv]),
        ),
        (
            "pem-other-d",
            pkcs1_pem([&n, &e, &d2, &p, &q, &dp, &dq, &qinv]),
        ),
        (
            "pem-bad-dp",
            pkcs1_pem([&n, &e, &d, &p, &q, &bad_dp, &dq, &qinv]),
        ),
        (
            "pem-bad-qinv",
            pkcs1_pem([&n, &e, &d, &p, &q, &dp, &dq, &bad_qinv]),
        ),
    ];
    for (name, text) in &cases {
        let (good, out) = import(name, text);
        assert!(
            !good && out.contains("components disagree"),
            "{name}: {out}"
        );
        assert_eq!(proxy.command_count(), 0, "{name}: the TPM was asked");
    }
    // ECDSA: a public point that is not d·G (both copies in the file replaced).
    {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let f = dir.path().join("ecdsa");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-N", "", "-C", "", "-f"])
            .arg(&f)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        let text = std::fs::read_to_string(&f).unwrap();
        let point = match ssh_key::PrivateKey::from_openssh(&text)
            .unwrap()
            .public_key()
            .key_data()
        {
            ssh_key::public::KeyData::Ecdsa(k) => k.as_sec1_bytes().to_vec(),
            other => panic!("{other:?}"),
        };
        let other = p256::SecretKey::random(&mut rand_core::OsRng)
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let mut body = openssh_body(&text);
        let mut replaced = 0;
        let mut i = 0;
        while i + point.len() <= body.len() {
            if body[i..i + point.len()] == point[..] {
                body[i..i + point.len()].copy_from_slice(&other);
                replaced += 1;
            }
            i += 1;
        }
        assert_eq!(replaced, 2);
        let (good, out) = import("ecdsa-mixed", &openssh_text(&body, 70));
        assert!(!good && out.contains("public point"), "{out}");
        assert_eq!(proxy.command_count(), 0);
    }
    let (good, out) = tk(&direct, &store, &["key", "list"], &[]);
    assert!(
        good && out.lines().count() == 2,
        "only the two good keys: {out}"
    );
}

#[test]
fn labels_passphrases_and_unknown_response_codes() {
    let rig = Rig::new("hostile-misc");
    // Labels: bounded, printable, unique; an ambiguous one (made by hand) is an
    // error naming the ids, and `key rm --id` resolves it.
    let long = "x".repeat(129);
    rig.fails(
        &["key", "add", "--token", "open", "--label", &long],
        &["1 to 128 bytes"],
    );
    rig.ok(&["key", "add", "--token", "open", "--label", &long[..128]]);
    rig.fails(
        &["key", "add", "--token", "open", "--label", "a\tb"],
        &["control character"],
    );
    rig.fails(
        &["key", "add", "--token", "open", "--label", "o"],
        &["already has a key labelled \"o\""],
    );
    let o = rig.key_file("open", "o");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&o).unwrap()).unwrap();
    v["id"] = serde_json::Value::String("00112233".into());
    std::fs::write(
        o.with_file_name("00112233.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
    let out = rig.fails(
        &["sign", "--token", "open", "--label", "o"],
        &["2 keys labelled \"o\"", "00112233"],
    );
    assert!(out.contains("--id"), "{out}");
    rig.ok(&["key", "rm", "--token", "open", "--id", "00112233"]);
    rig.ok(&["sign", "--token", "open", "--label", "o"]);

    // A passphrase-protected key with no passphrase to be had: named as such.
    let enc = rig.dir.path().join("enc");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "pw", "-C", "", "-f"])
        .arg(&enc)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let out = rig.fails(
        &[
            "key",
            "import",
            "--token",
            "open",
            "--label",
            "e",
            &enc.display().to_string(),
        ],
        &[
            "no passphrase for the key file given",
            "--passphrase-file or TPMKEY_PASSPHRASE",
        ],
    );
    assert!(!out.contains("PIN"), "{out}");
    let out = rig.fails(
        &["sign", "--token", "ssh", "--label", "k1"],
        &["no user PIN given"],
    );
    assert!(out.contains("--userpin, --pin-file or TPMKEY_PIN"), "{out}");

    // 0xFFFFFFFF and other codes no TPM sends: unknown codes, not layer 255.
    let proxy = TpmProxy::start(rig.sim.data_port());
    for rc in [0xffff_ffffu32, 0x0100_008e, 0x0006_098e] {
        proxy.set_tamper(Some(Box::new(move |_: &[u8], rsp: &mut Vec<u8>| {
            let mut frame = vec![0x80, 0x01, 0, 0, 0, 10];
            frame.extend_from_slice(&rc.to_be_bytes());
            *rsp = frame;
        })));
        let (good, out) = tk(&proxy.tcti(), &rig.store, &["random", "8"], &[]);
        assert!(!good, "{out}");
        assert!(
            out.contains(&format!("unknown response code {rc:#010x}")),
            "{out}"
        );
        assert!(
            !out.contains("layer") && !out.contains("parameter"),
            "{out}"
        );
    }
}
