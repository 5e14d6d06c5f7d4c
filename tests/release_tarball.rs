//! The static release tarball: `scripts/build-tarball.sh` builds it in one command
//! (its scripts/build-musl.sh step loads the musl module with a musl program that
//! signs on a swtpm). Here: the tarball's own checksum file, every file against
//! SHA256SUMS, the static binary (no interpreter; it talks to a swtpm), the module
//! (a shared object needing only libc, exporting C_GetFunctionList, the same bytes
//! build-musl.sh loaded), the p11-kit module file, man pages that render, the
//! completions and the initramfs example.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Swtpm, TempDir};

fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tarball_builds_in_one_command_and_holds_what_minimal_hosts_need() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = TempDir::new("tarball");
    let out_dir = dir.path().join("dist");
    let tarball = PathBuf::from(
        ok(Command::new(root.join("scripts/build-tarball.sh"))
            .arg("--out")
            .arg(&out_dir)
            .current_dir(root))
        .trim(),
    );
    let name = tarball
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .unwrap_or_else(|| panic!("not a .tar.gz: {tarball:?}"))
        .to_string();
    assert!(
        name.starts_with("tpmkey-") && name.ends_with("-x86_64-linux-musl"),
        "{name}"
    );
    ok(Command::new("sha256sum")
        .args(["-c", &format!("{name}.tar.gz.sha256")])
        .current_dir(&out_dir));

    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    ok(Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&x));
    let top = x.join(&name);
    let sums = ok(Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&top));
    let files = ok(Command::new("find")
        .args([".", "-type", "f", "!", "-name", "SHA256SUMS"])
        .current_dir(&top));
    assert_eq!(
        sums.lines().count(),
        files.lines().count(),
        "SHA256SUMS does not cover every file:\n{sums}\n{files}"
    );

    let bin = top.join("bin/tpmkey");
    let file = ok(Command::new("file").arg("-b").arg(&bin));
    assert!(
        file.contains("static-pie linked") || file.contains("statically linked"),
        "{file}"
    );
    let elf = ok(Command::new("readelf").arg("-lW").arg(&bin));
    assert!(
        !elf.contains("INTERP"),
        "the static tpmkey asks for a loader:\n{elf}"
    );
    let tpm = Swtpm::start();
    let random = ok(Command::new(&bin)
        .args(["random", "16"])
        .env("TPMKEY_TCTI", tpm.tcti()));
    assert_eq!(random.trim().len(), 32, "{random}");

    let so = top.join("lib/pkcs11/libtpmkey.so");
    let dynamic = ok(Command::new("readelf").arg("-dW").arg(&so));
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        needed.len() == 1 && needed[0].contains("[libc.so]"),
        "the module needs more than musl's libc: {needed:?}"
    );
    let syms = ok(Command::new("readelf").arg("--dyn-syms").arg("-W").arg(&so));
    assert!(
        syms.lines()
            .any(|l| l.ends_with(" C_GetFunctionList") && !l.contains(" UND ")),
        "C_GetFunctionList not exported"
    );
    let built = root.join("target/musl-cdylib/x86_64-unknown-linux-musl/release/libtpmkey.so");
    assert_eq!(
        std::fs::read(&so).unwrap(),
        std::fs::read(&built).unwrap(),
        "the tarball's module is not the one scripts/build-musl.sh loaded and signed with"
    );

    let module = std::fs::read_to_string(top.join("share/p11-kit/modules/tpmkey.module")).unwrap();
    assert!(
        module.lines().any(|l| l == "module: libtpmkey.so"),
        "{module}"
    );

    let man1: Vec<_> = std::fs::read_dir(top.join("share/man/man1"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        man1.iter().any(|p| p.ends_with("tpmkey-key-add.1")),
        "{man1:?}"
    );
    assert!(
        man1.len() >= 20,
        "one page per subcommand expected: {man1:?}"
    );
    for page in man1.iter().chain([&top.join("share/man/man7/libtpmkey.7")]) {
        let text = ok(Command::new("man").args(["-P", "cat", "-l"]).arg(page));
        assert!(text.contains("NAME"), "{page:?} does not render:\n{text}");
    }
    for f in [
        "share/bash-completion/completions/tpmkey",
        "share/zsh/site-functions/_tpmkey",
        "share/fish/vendor_completions.d/tpmkey.fish",
        "share/tpmkey/initramfs-tools/hooks/tpmkey",
        "share/tpmkey/initramfs-tools/tpmkey-keyscript",
        "README.md",
        "COPYRIGHT",
    ] {
        assert!(top.join(f).is_file(), "{f} missing from the tarball");
    }
    ok(Command::new("bash")
        .arg("-n")
        .arg(top.join("share/bash-completion/completions/tpmkey")));
}
