//! tpmkey on a real Linux kernel: boots the cloud kernel in qemu (TCG) with a
//! swtpm-backed TIS TPM and the static musl `tpmkey` in an initramfs, and runs
//! tests/vm/init.sh there (scripts/vm-test.sh does the host side): the workflow
//! through /dev/tpmrm0 and /dev/tpm0, no handle left in the raw TPM after a run or an
//! error path, kill -9 during key add on /dev/tpm0 and every following run working,
//! concurrent processes through the kernel's resource manager.
//!
//! The static binary is built here (`cargo build --profile release-static --target
//! x86_64-unknown-linux-musl --bin tpmkey`) unless `TPMKEY_MUSL_BIN` names one.
//! Missing qemu, kernel, busybox, swtpm or musl target fail the test, with the
//! command that installs them; it never skips. `TPMKEY_VM_P11=1` (or
//! `TPMKEY_MUSL_SO=path`) adds the musl PKCS#11 module: the guest then also signs
//! through it on both devices, kills it mid-way, and runs it from 4 processes at once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const HINT: &str = "run scripts/install-deps.sh (apt-get install qemu-system-x86 \
                    linux-image-cloud-amd64 busybox-static cpio swtpm openssh-client file; \
                    rustup target add x86_64-unknown-linux-musl)";

/// Shown in the CI log even when the test passes (libtest captures `println!`,
/// not writes to the stderr handle).
fn show(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(tool);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

fn cloud_kernel() -> Option<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-") && n.contains("cloud"))
        })
        .collect();
    kernels.sort();
    kernels.pop()
}

/// The static musl tpmkey: `TPMKEY_MUSL_BIN`, else built now.
fn musl_binary(root: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("TPMKEY_MUSL_BIN") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t = Instant::now();
    // The outer `cargo test` has released the build directory lock by the time tests
    // run, so this does not wait on it; the musl artifacts live in their own
    // target/x86_64-unknown-linux-musl directory and rebuild only when sources change.
    let out = Command::new(&cargo)
        .args([
            "build",
            "--profile",
            "release-static",
            "--target",
            "x86_64-unknown-linux-musl",
            "--bin",
            "tpmkey",
        ])
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "building the static musl tpmkey failed ({HINT}):\n{log}"
    );
    show(&format!(
        "vm: static musl tpmkey built in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    dir.join("x86_64-unknown-linux-musl/release-static/tpmkey")
}

#[test]
fn workflow_kill_loop_and_concurrency_in_a_vm() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for tool in [
        "qemu-system-x86_64",
        "swtpm",
        "busybox",
        "cpio",
        "ssh-keygen",
        "file",
    ] {
        assert!(have(tool), "{tool} not found: {HINT}");
    }
    assert!(
        cloud_kernel().is_some(),
        "no /boot/vmlinuz-*cloud* kernel (it has the TIS and CRB TPM drivers built in): {HINT}"
    );
    let bin = musl_binary(root);
    assert!(bin.is_file(), "no static tpmkey at {}", bin.display());

    // Opt-in (one more LTO build): the musl PKCS#11 module in the guest as well.
    let mut vm = Command::new(root.join("scripts/vm-test.sh"));
    if std::env::var_os("TPMKEY_MUSL_SO").is_none()
        && std::env::var("TPMKEY_VM_P11").is_ok_and(|v| v == "1")
    {
        let t = Instant::now();
        let out = Command::new(root.join("scripts/build-musl.sh"))
            .arg("--no-load")
            .current_dir(root)
            .output()
            .expect("run scripts/build-musl.sh");
        assert!(
            out.status.success(),
            "scripts/build-musl.sh failed ({HINT}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        show(&format!(
            "vm: musl libtpmkey.so built in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        vm.env(
            "TPMKEY_MUSL_SO",
            root.join("target/musl-cdylib/x86_64-unknown-linux-musl/release/libtpmkey.so"),
        );
    }
    let t = Instant::now();
    let out = vm
        .env("TPMKEY_MUSL_BIN", &bin)
        .current_dir(root)
        .output()
        .expect("run scripts/vm-test.sh");
    let elapsed = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The whole console goes to the captured output (shown when the test fails);
    // the figures also go to the real stderr so that CI logs show them.
    println!("{stdout}\n{stderr}");
    for line in stdout.lines().filter(|l| {
        l.starts_with("TPMKEY-VM-STAT")
            || l.starts_with("TPMKEY-VM-TIME")
            || l.starts_with("TPMKEY-VM-GUARDED")
            || l.starts_with("TPMKEY-VM-FAIL")
    }) {
        show(&format!("vm: {line}"));
    }
    show(&format!(
        "vm: initramfs + swtpm + qemu (boot, flow, poweroff): {elapsed:.1} s"
    ));

    let result = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("TPMKEY-VM-RESULT rc="))
        .next_back();
    match result {
        None => panic!(
            "the VM printed no TPMKEY-VM-RESULT marker (script exit {:?}); guest console above:\n{stdout}\n{stderr}",
            out.status.code()
        ),
        Some(rc) => assert_eq!(
            rc, "0",
            "steps failed in the VM (TPMKEY-VM-FAIL lines):\n{stdout}\n{stderr}"
        ),
    }
    assert!(
        out.status.success(),
        "scripts/vm-test.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("TPMKEY-VM-STAT kill loop")
            && stdout.contains("TPMKEY-VM-STAT concurrency"),
        "the VM run skipped the kill loop or the concurrency run:\n{stdout}"
    );
}
