//! End to end through OpenSSH: a swtpm, a throwaway sshd on 127.0.0.1, keys made
//! (or imported) with the `tpmkey` CLI, `ssh-keygen -D libtpmkey.so` into the
//! server's authorized_keys, and real logins with `ssh -I libtpmkey.so` (PIN through
//! SSH_ASKPASS), a no-PIN token, P-256, P-384 and RSA keys, an imported key, and
//! ssh-agent after `ssh-add -s`. A wrong PIN fails the login without crashing ssh.
//! Every TPM command goes through a counting proxy.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::proxy::TpmProxy;
use common::ssh::{askpass, askpass_calls, logged_in, module_path, with_tpm, Agent, Sshd};
use common::{Swtpm, TempDir};

/// A swtpm behind a counting proxy, a store, and the CLI pointed at both.
struct Bench {
    _sim: Swtpm,
    proxy: TpmProxy,
    dir: TempDir,
}

impl Bench {
    fn new() -> Bench {
        let sim = Swtpm::start();
        let proxy = TpmProxy::start(sim.data_port());
        let dir = TempDir::new("p11ssh");
        let b = Bench {
            _sim: sim,
            proxy,
            dir,
        };
        b.tk(&["init"]);
        b
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn tcti(&self) -> String {
        self.proxy.tcti()
    }

    /// Runs the CLI; panics with its stderr when it fails.
    fn tk(&self, args: &[&str]) -> String {
        let (ok, out, err) = common::run_tpmkey_in(&self.tcti(), &self.store(), args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    }

    fn pin_token(&self, label: &str) {
        self.tk(&[
            "token",
            "add",
            "--label",
            label,
            "--userpin",
            "1234",
            "--sopin",
            "5678",
        ]);
    }

    fn key(&self, token: &str, label: &str, alg: &str, pin: Option<&str>) {
        let mut args = vec![
            "key",
            "add",
            "--token",
            token,
            "--label",
            label,
            "--algorithm",
            alg,
        ];
        if let Some(p) = pin {
            args.extend(["--userpin", p]);
        }
        self.tk(&args);
    }

    /// An SSH_ASKPASS that answers `pin`, in its own directory.
    fn askpass(&self, tag: &str, pin: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path().join(tag);
        std::fs::create_dir_all(&d).expect("askpass dir");
        (askpass(&d, pin), d)
    }

    /// `ssh-keygen -D module`, with the number of TPM commands it sent.
    fn keygen_d(&self, askpass: &Path) -> (String, usize) {
        let before = self.proxy.command_count();
        let mut c = Command::new("ssh-keygen");
        c.arg("-D").arg(module_path());
        with_tpm(&mut c, &self.tcti(), &self.store(), askpass);
        let out = c.output().expect("ssh-keygen -D");
        assert!(
            out.status.success(),
            "ssh-keygen -D failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            self.proxy.command_count() - before,
        )
    }

    /// `ssh -I module` to `sshd`; the output and the TPM command names it sent.
    fn ssh_i(&self, sshd: &Sshd, askpass: &Path) -> (Output, Vec<String>) {
        let before = self.proxy.command_count();
        let m = module_path();
        let mut c = sshd.ssh(&["-I", &m.to_string_lossy()], None);
        with_tpm(&mut c, &self.tcti(), &self.store(), askpass);
        let out = c.output().expect("run ssh");
        let names = self.proxy.exchanges()[before..]
            .iter()
            .map(|x| cc_name(x.cc()))
            .collect();
        (out, names)
    }

    /// Transient objects and sessions loaded in the TPM now (asked directly, not
    /// through the proxy).
    fn loaded_handles(&self) -> Vec<u32> {
        common::loaded_handles(&self._sim.tcti())
    }
}

fn cc_name(cc: u32) -> String {
    match cc {
        0x131 => "CreatePrimary",
        0x157 => "Load",
        0x15d => "Sign",
        0x15e => "Unseal",
        0x165 => "FlushContext",
        0x173 => "ReadPublic",
        0x176 => "StartAuthSession",
        0x17a => "GetCapability",
        0x17b => "GetRandom",
        _ => return format!("0x{cc:x}"),
    }
    .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The authorized_keys line of the key labelled `label` in `ssh-keygen -D` output.
fn line_of<'a>(keygen: &'a str, label: &str) -> &'a str {
    keygen
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(label))
        .unwrap_or_else(|| panic!("no key {label:?} in ssh-keygen -D output:\n{keygen}"))
}

#[test]
fn login_with_pin_through_askpass() {
    let b = Bench::new();
    b.pin_token("ssh");
    b.key("ssh", "laptop", "ecc256", Some("1234"));
    let (ap, apdir) = b.askpass("ap", "1234");
    let (keys, listed) = b.keygen_d(&ap);
    assert_eq!(listed, 0, "ssh-keygen -D must not touch the TPM");
    assert!(askpass_calls(&apdir).is_empty(), "listing asked for a PIN");
    // The same public key line the CLI prints.
    let cli = b.tk(&["ssh-pubkey", "--token", "ssh"]);
    assert_eq!(
        line_of(&keys, "laptop").split_whitespace().nth(1),
        cli.split_whitespace().nth(1)
    );
    let sshd = Sshd::start(line_of(&keys, "laptop"));
    let (out, cmds) = b.ssh_i(&sshd, &ap);
    assert!(
        logged_in(&out),
        "ssh -I failed: {}\nsshd: {}",
        stderr(&out),
        sshd.log()
    );
    let calls = askpass_calls(&apdir);
    assert_eq!(calls.len(), 1, "one PIN prompt expected: {calls:?}");
    assert!(
        calls[0].contains("ssh"),
        "prompt names the token: {calls:?}"
    );
    println!("login: {} TPM commands: {cmds:?}", cmds.len());
    assert_eq!(
        cmds.iter().filter(|c| *c == "Sign").count(),
        1,
        "one signature per login: {cmds:?}"
    );
    // Nothing left loaded after ssh exits (it does not call C_Finalize).
    assert_eq!(b.loaded_handles(), Vec::<u32>::new(), "handles leaked");
}

#[test]
fn wrong_pin_fails_the_login_cleanly() {
    let b = Bench::new();
    b.pin_token("ssh");
    b.key("ssh", "laptop", "ecc256", Some("1234"));
    let (ap, apdir) = b.askpass("ap", "0000");
    let (keys, _) = b.keygen_d(&ap);
    let sshd = Sshd::start(line_of(&keys, "laptop"));
    let (out, _) = b.ssh_i(&sshd, &ap);
    assert!(!logged_in(&out), "logged in with a wrong PIN");
    // ssh exits with its own error status (255), not killed by a signal.
    assert_eq!(out.status.code(), Some(255), "ssh: {}", stderr(&out));
    assert!(
        !stderr(&out).contains("core dumped") && !stderr(&out).contains("panicked"),
        "{}",
        stderr(&out)
    );
    assert!(!askpass_calls(&apdir).is_empty(), "the PIN was never asked");
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
    assert_eq!(
        b.loaded_handles(),
        Vec::<u32>::new(),
        "a failed login left handles"
    );
    // The right PIN still works afterwards (one failure, well under the lockout).
    let (ap, _) = b.askpass("ap2", "1234");
    let (out, _) = b.ssh_i(&sshd, &ap);
    assert!(logged_in(&out), "ssh -I failed: {}", stderr(&out));
    assert_eq!(b.loaded_handles(), Vec::<u32>::new(), "handles leaked");
}

#[test]
fn no_pin_token_logs_in_without_any_prompt() {
    let b = Bench::new();
    b.tk(&["token", "add", "--label", "auto", "--no-pin"]);
    b.key("auto", "server", "ecc256", None);
    let (ap, apdir) = b.askpass("ap", "never-asked");
    let (keys, listed) = b.keygen_d(&ap);
    assert_eq!(listed, 0);
    let sshd = Sshd::start(line_of(&keys, "server"));
    let (out, cmds) = b.ssh_i(&sshd, &ap);
    assert!(logged_in(&out), "ssh -I failed: {}", stderr(&out));
    assert!(
        askpass_calls(&apdir).is_empty(),
        "a no-PIN token asked for a PIN: {:?}",
        askpass_calls(&apdir)
    );
    println!("no-PIN login: {} TPM commands: {cmds:?}", cmds.len());
    assert!(
        !cmds.iter().any(|c| c == "Unseal"),
        "a no-PIN key needs no unseal: {cmds:?}"
    );
    assert_eq!(b.loaded_handles(), Vec::<u32>::new(), "handles leaked");
}

#[test]
fn p384_and_rsa_keys_log_in() {
    let b = Bench::new();
    b.pin_token("ssh");
    b.key("ssh", "p384", "ecc384", Some("1234"));
    b.key("ssh", "rsa", "rsa2048", Some("1234"));
    let (ap, _) = b.askpass("ap", "1234");
    let (keys, _) = b.keygen_d(&ap);
    assert!(line_of(&keys, "p384").starts_with("ecdsa-sha2-nistp384 "));
    assert!(line_of(&keys, "rsa").starts_with("ssh-rsa "));
    for label in ["p384", "rsa"] {
        // The server accepts this key only, so the login proves this key signed.
        let sshd = Sshd::start(line_of(&keys, label));
        let (out, _) = b.ssh_i(&sshd, &ap);
        assert!(
            logged_in(&out),
            "{label}: ssh -I failed: {}\nsshd: {}",
            stderr(&out),
            sshd.log()
        );
        if label == "rsa" {
            // OpenSSH signs with rsa-sha2-512 or -256 (a DigestInfo through CKM_RSA_PKCS).
            assert!(sshd.log().contains("Accepted publickey"), "{}", sshd.log());
            assert!(sshd.log().contains("RSA"), "{}", sshd.log());
        }
    }
}

#[test]
fn imported_key_logs_in_through_the_module() {
    let b = Bench::new();
    b.pin_token("ssh");
    let key = b.dir.path().join("id_ecdsa");
    let st = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "ecdsa", "-b", "256", "-N", "", "-C", "old", "-f",
        ])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    b.tk(&[
        "key",
        "import",
        "--token",
        "ssh",
        "--label",
        "old",
        "--userpin",
        "1234",
        &key.to_string_lossy(),
    ]);
    let original = std::fs::read_to_string(key.with_extension("pub")).expect("read .pub");
    let (ap, _) = b.askpass("ap", "1234");
    let (keys, _) = b.keygen_d(&ap);
    assert_eq!(
        line_of(&keys, "old").split_whitespace().nth(1),
        original.split_whitespace().nth(1),
        "the module shows the imported key's original public key"
    );
    // The server knows only the original .pub; the key file is gone from the client.
    std::fs::remove_file(&key).expect("rm key");
    let sshd = Sshd::start(&original);
    let (out, _) = b.ssh_i(&sshd, &ap);
    assert!(
        logged_in(&out),
        "ssh -I failed: {}\nsshd: {}",
        stderr(&out),
        sshd.log()
    );
}

#[test]
fn ssh_agent_after_ssh_add_s() {
    let b = Bench::new();
    b.pin_token("ssh");
    b.key("ssh", "laptop", "ecc256", Some("1234"));
    let (ap, apdir) = b.askpass("ap", "1234");
    let (keys, _) = b.keygen_d(&ap);
    let sshd = Sshd::start(line_of(&keys, "laptop"));
    let m = module_path();
    let (tcti, store) = (b.tcti(), b.store());
    let agent = Agent::start(&m, |c| with_tpm(c, &tcti, &store, &ap));
    let mut add = Command::new("ssh-add");
    add.arg("-s").arg(&m).env("SSH_AUTH_SOCK", agent.sock());
    with_tpm(&mut add, &tcti, &store, &ap);
    let out = add
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh-add -s");
    assert!(out.status.success(), "ssh-add -s failed: {}", stderr(&out));
    let list = Command::new("ssh-add")
        .arg("-L")
        .env("SSH_AUTH_SOCK", agent.sock())
        .output()
        .expect("ssh-add -L");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(line_of(&keys, "laptop").split_whitespace().nth(1).unwrap()),
        "the agent does not hold the key: {listed}"
    );
    // Two logins through the agent: no -I, no further PIN prompt.
    for i in 0..2 {
        let mut c = sshd.ssh(&[], Some(agent.sock()));
        c.env("SSH_ASKPASS", &ap)
            .env("SSH_ASKPASS_REQUIRE", "never");
        let out = c.output().expect("ssh");
        assert!(
            logged_in(&out),
            "login {i} through the agent failed: {}\nsshd: {}",
            stderr(&out),
            sshd.log()
        );
    }
    assert_eq!(
        askpass_calls(&apdir).len(),
        1,
        "{:?}",
        askpass_calls(&apdir)
    );
}

#[test]
fn pkcs11_tool_test_keypairgen_and_p11_kit() {
    let b = Bench::new();
    b.pin_token("ssh");
    b.key("ssh", "laptop", "ecc256", Some("1234"));
    let m = module_path();
    let p11tool = |args: &[&str]| {
        let out = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&m)
            .args(["--token-label", "ssh", "--login", "--pin", "1234"])
            .args(args)
            .env("TPMKEY_TCTI", b.tcti())
            .env("TPMKEY_STORE", b.store())
            .output()
            .expect("pkcs11-tool (apt-get install opensc)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pkcs11-tool {args:?} failed:\n{text}");
        text
    };
    for (label, kind) in [("gen-ec", "EC:prime256v1"), ("gen-rsa", "rsa:2048")] {
        let out = p11tool(&["--keypairgen", "--key-type", kind, "--label", label]);
        assert!(out.contains("Key pair generated"), "{out}");
    }
    let listed = b.tk(&["key", "list", "--token", "ssh"]);
    assert!(
        listed.contains("gen-ec") && listed.contains("gen-rsa"),
        "{listed}"
    );
    let out = p11tool(&["--test"]);
    assert!(out.contains("No errors"), "{out}");
    assert!(out.contains("RSA-PKCS: OK"), "{out}");
    // A signature by pkcs11-tool verifies against the key the CLI shows (chosen by
    // CKA_ID: pkcs11-tool --sign does not select by label).
    let listing: serde_json::Value =
        serde_json::from_str(&b.tk(&["key", "list", "--token", "ssh", "--json"])).unwrap();
    let id = listing
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["label"] == "gen-ec"))
        .and_then(|k| k["id"].as_str())
        .expect("gen-ec's id")
        .to_string();
    let data = b.dir.path().join("data");
    let sig = b.dir.path().join("sig");
    std::fs::write(&data, b"signed by the TPM through pkcs11-tool").unwrap();
    p11tool(&[
        "--sign",
        "-m",
        "ECDSA-SHA256",
        "--id",
        &id,
        "-i",
        &data.to_string_lossy(),
        "-o",
        &sig.to_string_lossy(),
    ]);
    let sig = std::fs::read(&sig).expect("signature");
    let (ap, _) = b.askpass("ap", "1234");
    let (keys, _) = b.keygen_d(&ap);
    let blob = line_of(&keys, "gen-ec");
    let pk = ssh_key::PublicKey::from_openssh(blob).expect("parse ssh key");
    let ssh_key::public::KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::NistP256(point)) =
        pk.key_data()
    else {
        panic!("not P-256: {blob}");
    };
    use p256::ecdsa::signature::Verifier;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point.as_bytes()).expect("point");
    let sig = p256::ecdsa::Signature::from_slice(&sig).expect("r||s");
    vk.verify(b"signed by the TPM through pkcs11-tool", &sig)
        .expect("pkcs11-tool's signature verifies");

    // p11-kit with a user module file lists tpmkey and its token.
    let home = b.dir.path().join("home");
    let modules = home.join(".config/pkcs11/modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(
        modules.join("tpmkey.module"),
        format!("module: {}\n", m.display()),
    )
    .unwrap();
    // p11-kit skips user configuration for root: there, bind-mount a directory
    // holding only our module file over the system one, in a private mount namespace.
    let mut c = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("unshare");
        c.arg("-m").arg("sh").arg("-c").arg(format!(
            "mount --bind '{}' /usr/share/p11-kit/modules && exec p11-kit list-modules",
            modules.display()
        ));
        c
    } else {
        let mut c = Command::new("p11-kit");
        c.arg("list-modules");
        c
    };
    let out = c
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("TPMKEY_TCTI", b.tcti())
        .env("TPMKEY_STORE", b.store())
        .output()
        .expect("p11-kit (apt-get install p11-kit)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "p11-kit: {}", stderr(&out));
    let ours = text
        .split("\nmodule: ")
        .find(|s| s.starts_with("tpmkey"))
        .unwrap_or_else(|| panic!("tpmkey not listed by p11-kit:\n{text}"));
    assert!(ours.contains("token: ssh"), "{ours}");
    assert!(ours.contains("library-description: tpmkey"), "{ours}");
}

#[test]
fn another_tpm_is_named_not_mistaken_for_a_wrong_pin() {
    let b = Bench::new();
    b.pin_token("ssh");
    b.key("ssh", "laptop", "ecc256", Some("1234"));
    b.tk(&["token", "add", "--label", "auto", "--no-pin"]);
    b.key("auto", "server", "ecc256", None);
    let (ap, _) = b.askpass("ap", "1234");
    let (keys, _) = b.keygen_d(&ap);
    let sshd = Sshd::start(&keys);
    // Another TPM: first a fresh one (nothing at 0x81000001), then one with its own
    // persistent SRK there (sessions salted to our SRK cannot work on it).
    let other = Swtpm::start();
    let other_store = b.dir.path().join("other-store");
    for round in 0..2 {
        if round == 1 {
            let (ok, _, err) = common::run_tpmkey_in(&other.tcti(), &other_store, &["init"]);
            assert!(ok, "{err}");
        }
        let m = module_path();
        let mut c = sshd.ssh(&["-I", &m.to_string_lossy()], None);
        with_tpm(&mut c, &other.tcti(), &b.store(), &ap);
        let out = c.output().expect("ssh");
        assert!(!logged_in(&out), "round {round}: logged in on another TPM");
        assert!(
            stderr(&out).contains("not the one the keys belong to"),
            "round {round}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("PIN incorrect"),
            "round {round}: {}",
            stderr(&out)
        );
    }
}
