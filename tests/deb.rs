//! The Debian package, installed for real: builds it with `scripts/build-deb.sh`
//! (cargo-deb, then lintian: no error, and every warning left explained in the
//! README), installs it with `dpkg -i`, and then uses only installed paths —
//! `/usr/bin/tpmkey` on a swtpm for init, token add and key add, `ssh-keygen -D`
//! and an `ssh -I` login with `/usr/lib/x86_64-linux-gnu/pkcs11/libtpmkey.so`, the
//! same login through p11-kit's proxy (the token found by the package's p11-kit
//! registration alone), `p11-kit list-modules` with the tokens' flags, GnuTLS's
//! `p11tool` and NSS's `modutil` (through p11-kit-proxy) seeing the token, the man
//! pages and the bash, zsh and fish completions. Then `dpkg -r` and `dpkg --purge` must remove every file
//! the package installed (`dpkg -L` before, the filesystem after) and leave the key
//! store alone.
//!
//! It changes the machine (a system-wide package and p11-kit registration), so it
//! needs root (CI runs as root) and refuses to run when a `tpmkey` package is already
//! installed. Whatever happens, the package is purged at the end (a drop guard). It
//! is the only test in this binary, and cargo runs test binaries one after another,
//! so no other test sees the registration while it is installed.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use common::ssh::{askpass, askpass_calls, logged_in, with_tpm, Sshd};
use common::{Swtpm, TempDir};

const MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpmkey.so";
const PROXY: &str = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so";
const TPMKEY: &str = "/usr/bin/tpmkey";

/// Says in the test log how long each phase took (libtest shows stderr writes).
fn phase(start: Instant, what: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "deb: {what} ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    run(Command::new("dpkg-query").args(["-W", "-f", "${Status}", "tpmkey"]))
        .stdout
        .starts_with(b"install ok installed")
}

/// Purges the package when dropped: the machine is left as it was, also when an
/// assertion fails half-way.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "tpmkey"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read store dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                files.insert(p.clone(), std::fs::read(&p).expect("read store file"));
            }
        }
    }
    files
}

/// The lintian tags that `report` warns about.
fn lintian_warnings(report: &str) -> Vec<String> {
    let mut tags: Vec<String> = report
        .lines()
        .filter_map(|l| l.strip_prefix("W: "))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

#[test]
fn package_installs_works_from_installed_paths_and_removes_cleanly() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the package test installs a .deb system-wide: run it as root (CI does)"
    );
    assert!(
        !installed(),
        "a tpmkey package is installed on this machine; this test would replace and then \
         purge it: remove it first (dpkg -r tpmkey)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = Instant::now();

    // Build: one command; lintian runs inside it and fails it on any error.
    let build = run(Command::new(root.join("scripts/build-deb.sh")).current_dir(root));
    let log = text(&build);
    assert!(
        build.status.success(),
        "scripts/build-deb.sh failed:\n{log}"
    );
    let deb = PathBuf::from(String::from_utf8_lossy(&build.stdout).trim());
    assert!(deb.is_file(), "no package at {deb:?}:\n{log}");
    phase(t, "built and linted");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    for tag in lintian_warnings(&log) {
        assert!(
            readme.contains(&format!("`{tag}`")),
            "lintian warns {tag}, and the README does not explain it:\n{log}"
        );
    }

    // Depends on the C runtime only (libc6; libgcc-s1, its unwinder, would be as
    // good, should dpkg-shlibdeps ever name it); Recommends tpm-udev.
    let field = |f: &str| ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f));
    let depends = field("Depends");
    for dep in depends.split(',') {
        let name = dep.split_whitespace().next().unwrap_or("");
        assert!(
            ["libc6", "libgcc-s1"].contains(&name),
            "Depends has {dep:?}: {depends}"
        );
    }
    assert_eq!(field("Recommends").trim(), "tpm-udev");

    // What existed before, to tell the package's directories from shared ones.
    let listing = ok(Command::new("sh").arg("-c").arg(format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -t",
        deb.display()
    )));
    let existed_before: Vec<(PathBuf, bool)> = listing
        .lines()
        .map(|l| {
            let p = PathBuf::from(l.trim_start_matches('.').trim_end_matches('/'));
            let e = p.exists();
            (p, e)
        })
        .filter(|(p, _)| p != Path::new(""))
        .collect();

    let _purge = Purge;
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(installed(), "dpkg -i did not leave tpmkey installed");
    phase(t, "installed");
    let listed: Vec<PathBuf> = ok(Command::new("dpkg").args(["-L", "tpmkey"]))
        .lines()
        .map(PathBuf::from)
        .collect();
    for want in [
        TPMKEY,
        MODULE,
        "/usr/share/p11-kit/modules/tpmkey.module",
        "/usr/share/man/man1/tpmkey.1.gz",
        "/usr/share/man/man1/tpmkey-key-add.1.gz",
        "/usr/share/man/man1/tpmkey-token-add.1.gz",
        "/usr/share/man/man7/libtpmkey.7.gz",
        "/usr/share/bash-completion/completions/tpmkey",
        "/usr/share/zsh/vendor-completions/_tpmkey",
        "/usr/share/fish/vendor_completions.d/tpmkey.fish",
        "/usr/share/doc/tpmkey/README.md",
        "/usr/share/doc/tpmkey/copyright",
        "/usr/share/doc/tpmkey/changelog.Debian.gz",
        "/usr/lib/tpmkey/tpmkey-keyscript",
        "/usr/share/doc/tpmkey/examples/initramfs-tools/hooks/tpmkey",
    ] {
        assert!(
            listed.iter().any(|p| p == Path::new(want)),
            "dpkg -L lacks {want}"
        );
        assert!(
            Path::new(want).exists(),
            "{want} is not on disk after dpkg -i"
        );
    }

    // The seed workflow with installed paths only.
    let tpm = Swtpm::start();
    let dir = TempDir::new("deb");
    let store = dir.path().join("store");
    let tk = |args: &[&str]| {
        ok(Command::new(TPMKEY)
            .args(args)
            .env("TPMKEY_TCTI", tpm.tcti())
            .env("TPMKEY_STORE", &store)
            .env_remove("TPM2TOOLS_TCTI")
            .env_remove("TPMKEY_PIN"))
    };
    tk(&["init"]);
    tk(&[
        "token",
        "add",
        "--label",
        "ssh",
        "--userpin",
        "1234",
        "--sopin",
        "5678",
    ]);
    tk(&[
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
    // A no-PIN token with a key of its own (OpenSSH asks for the PIN of a token that
    // shows no key); the server does not accept that key.
    tk(&["token", "add", "--label", "auto", "--no-pin"]);
    tk(&[
        "key",
        "add",
        "--token",
        "auto",
        "--label",
        "server",
        "--algorithm",
        "ecc256",
    ]);

    let ap = askpass(dir.path(), "1234");
    // Programs that load p11-kit's modules run in the temp dir: other registered
    // modules may leave files in their working directory (tpm2-pkcs11 makes a
    // tpm2_pkcs11.sqlite3).
    let work = dir.path();
    let mut keygen = Command::new("ssh-keygen");
    keygen.args(["-D", MODULE]).current_dir(work);
    with_tpm(&mut keygen, &tpm.tcti(), &store, &ap);
    let keys = ok(&mut keygen);
    let laptop = keys
        .lines()
        .find(|l| l.starts_with("ecdsa-sha2-nistp256 ") && l.ends_with(" laptop"))
        .unwrap_or_else(|| panic!("ssh-keygen -D {MODULE}:\n{keys}"));
    assert!(keys.lines().any(|l| l.ends_with(" server")), "{keys}");
    assert!(
        askpass_calls(dir.path()).is_empty(),
        "ssh-keygen -D asked for a PIN"
    );

    phase(t, "workflow with /usr/bin/tpmkey and ssh-keygen -D");
    let sshd = Sshd::start(&format!("{laptop}\n"));
    let through_proxy = format!("PKCS11Provider={PROXY}");
    for (how, args) in [
        ("ssh -I", ["-I", MODULE]),
        (
            "PKCS11Provider through p11-kit",
            ["-o", through_proxy.as_str()],
        ),
    ] {
        let mut ssh = sshd.ssh(&args, None);
        ssh.current_dir(work);
        with_tpm(&mut ssh, &tpm.tcti(), &store, &ap);
        let out = run(&mut ssh);
        phase(t, how);
        assert!(
            logged_in(&out),
            "{how} ({args:?}) did not log in:\n{}\nsshd:\n{}",
            text(&out),
            sshd.log()
        );
    }
    // One PIN prompt per login, for the PIN token.
    let asked = askpass_calls(dir.path());
    assert!(
        asked.len() == 2 && asked.iter().all(|c| c.contains("PIN for 'ssh'")),
        "{asked:?}"
    );

    // p11-kit: the package's registration, nothing else, lists the module and tokens.
    let p11 = ok(Command::new("p11-kit")
        .arg("list-modules")
        .current_dir(work)
        .env("TPMKEY_TCTI", tpm.tcti())
        .env("TPMKEY_STORE", &store));
    let ours = p11
        .split("\nmodule: ")
        .find(|s| s.contains("library-description: tpmkey"))
        .unwrap_or_else(|| panic!("p11-kit list-modules does not list tpmkey:\n{p11}"));
    let token = |label: &str| -> &str {
        let start = ours
            .find(&format!("token: {label}\n"))
            .unwrap_or_else(|| panic!("token {label} not listed:\n{ours}"));
        let rest = &ours[start + 1..];
        &rest[..rest.find("token: ").map_or(rest.len(), |e| e + 1)]
    };
    let pin_token = token("ssh");
    for flag in [
        "rng",
        "login-required",
        "user-pin-initialized",
        "token-initialized",
    ] {
        assert!(
            pin_token.contains(flag),
            "token ssh lacks flag {flag}:\n{pin_token}"
        );
    }
    let auto = token("auto");
    assert!(auto.contains("token-initialized"), "{auto}");
    assert!(
        !auto.contains("login-required"),
        "a no-PIN token needs no login:\n{auto}"
    );

    // GnuTLS finds the token through p11-kit's registration, and NSS through
    // p11-kit-proxy.so added to a fresh database.
    let gnutls = ok(Command::new("p11tool")
        .arg("--list-tokens")
        .current_dir(work)
        .env("TPMKEY_TCTI", tpm.tcti())
        .env("TPMKEY_STORE", &store));
    assert!(
        gnutls.contains(";token=ssh") && gnutls.contains("Module: libtpmkey.so"),
        "p11tool --list-tokens:\n{gnutls}"
    );
    let nss = dir.path().join("nss");
    std::fs::create_dir(&nss).expect("nss dir");
    let db = format!("sql:{}", nss.display());
    ok(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
    ok(Command::new("modutil").current_dir(work).args([
        "-dbdir",
        &db,
        "-add",
        "p11-kit-proxy",
        "-libfile",
        PROXY,
        "-force",
    ]));
    let listed_nss = ok(Command::new("modutil")
        .args(["-dbdir", &db, "-list"])
        .current_dir(work)
        .env("TPMKEY_TCTI", tpm.tcti())
        .env("TPMKEY_STORE", &store));
    assert!(
        listed_nss.contains("token: ssh"),
        "modutil -list:\n{listed_nss}"
    );
    phase(t, "p11-kit list-modules, GnuTLS, NSS");
    // Man pages and completions, as installed.
    let man = ok(Command::new("man")
        .args(["-P", "cat", "tpmkey"])
        .env("MANWIDTH", "80"));
    for want in [
        "SYNOPSIS",
        "tpmkey-key(1)",
        "ENVIRONMENT",
        "TPMKEY_TCTI",
        "libtpmkey(7)",
    ] {
        assert!(man.contains(want), "man tpmkey lacks {want}:\n{man}");
    }
    let man = ok(Command::new("man").args(["-P", "cat", "tpmkey-key-add"]));
    assert!(man.contains("--algorithm"), "{man}");
    let man = ok(Command::new("man").args(["-P", "cat", "7", "libtpmkey"]));
    for want in ["TPMKEY_PKCS11_QUIET", "TPMKEY_TIMEOUT", "swtpm:path="] {
        assert!(man.contains(want), "man 7 libtpmkey lacks {want}:\n{man}");
    }
    // bash-completion finds the script in its standard directory and loads it; the
    // completion function then offers the subcommands.
    let completed = ok(Command::new("bash").arg("-c").arg(
        ". /usr/share/bash-completion/bash_completion && __load_completion tpmkey && \
         complete -p tpmkey && COMP_WORDS=(tpmkey to) COMP_CWORD=1 COMP_LINE='tpmkey to' \
         COMP_POINT=9 && _tpmkey tpmkey to tpmkey && echo \"reply: ${COMPREPLY[*]}\"",
    ));
    assert!(
        completed.contains("-F _tpmkey tpmkey") && completed.contains("reply: token"),
        "{completed}"
    );
    // fish loads the script from its vendor directory by itself and completes.
    let completed = ok(Command::new("fish")
        .args(["-c", "complete -C 'tpmkey to'; complete -C 'tpmkey key a'"])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data")));
    assert!(
        completed.lines().any(|l| l.starts_with("token\t"))
            && completed.lines().any(|l| l.starts_with("add\t")),
        "fish: {completed}"
    );
    // zsh: compinit finds `_tpmkey` in its vendor directory; a real line editor (in
    // a zpty) completes "tpmkey to<Tab>", and every match offered is written down.
    let matches = dir.path().join("zsh-matches");
    let script = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PROMPT=; autoload -Uz compinit; compinit -u -D'
zpty -w z 'compadd() {{ builtin compadd -O m "$@"; print -r -- "offered: ${{(j:,:)m}}" >> {m}; builtin compadd "$@"; }}'
zpty -w z 'bindkey "^I" complete-word'
zpty -w -n z $'tpmkey to\t'
for i in {{1..100}}; do grep -qs 'offered: .*token' {m} && break; sleep 0.1; done
zpty -d z
cat {m}"#,
        m = matches.display()
    );
    let completed = ok(Command::new("zsh")
        .args(["-f", "-c", &script])
        .env("HOME", dir.path()));
    assert!(completed.contains("offered: token"), "zsh: {completed}");

    phase(t, "man pages and completion");
    // Removal: every file goes, directories the package brought go, the store stays.
    let before = snapshot(&store);
    assert!(!before.is_empty());
    ok(Command::new("dpkg").args(["-r", "tpmkey"]));
    for p in &listed {
        if !p.is_dir() {
            assert!(
                !p.exists() && p.symlink_metadata().is_err(),
                "dpkg -r left {p:?}"
            );
        }
    }
    ok(Command::new("dpkg").args(["--purge", "tpmkey"]));
    assert!(
        !run(Command::new("dpkg").args(["-L", "tpmkey"]))
            .status
            .success(),
        "dpkg still knows tpmkey's files after --purge"
    );
    for (p, existed) in &existed_before {
        assert_eq!(
            p.exists(),
            *existed,
            "{p:?} {} before dpkg -i, and {} after dpkg --purge",
            if *existed { "existed" } else { "did not exist" },
            if p.exists() { "exists" } else { "is gone" }
        );
    }
    for p in &listed {
        let was = existed_before.iter().any(|(q, e)| q == p && *e);
        assert!(was || !p.exists(), "{p:?} is still there after --purge");
    }
    assert_eq!(
        snapshot(&store),
        before,
        "removing the package changed the key store"
    );
    phase(t, "removed and purged");
}
