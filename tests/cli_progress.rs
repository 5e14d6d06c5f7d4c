//! Progress on slow TPM steps: under a pseudo-terminal (`script` from util-linux)
//! `tpmkey key add --algorithm rsa3072`, an RSA SRK and a TPM that keeps answering
//! TPM_RC_RETRY name the step on stderr while it runs and clear the line
//! afterwards; with stderr a pipe nothing of the kind is written.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::proxy::TpmProxy;
use common::{run_tpmkey_in, tpmkey_bin, Swtpm, TempDir};

/// Runs `tpmkey args…` under a pseudo-terminal; returns (exit ok, what the
/// terminal showed: stdout and stderr together, as a user sees them).
fn under_pty(tcti: &str, store: &std::path::Path, args: &[&str]) -> (bool, String) {
    let cmdline = std::iter::once(tpmkey_bin().to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmdline, "/dev/null"])
        .env("TPMKEY_TCTI", tcti)
        .env("TPMKEY_STORE", store)
        .env_remove("TPM2TOOLS_TCTI")
        .env_remove("TPMKEY_PIN")
        .stdin(Stdio::null())
        .output()
        .expect("script (apt-get install bsdutils)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn rsa_key_creation_shows_its_step_on_a_terminal_only() {
    let tpm = Swtpm::start();
    let dir = TempDir::new("progress");
    let store = dir.path().join("store");
    let tk = |args: &[&str]| {
        let (ok, out, err) = run_tpmkey_in(&tpm.tcti(), &store, args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        (out, err)
    };
    tk(&["init"]);
    tk(&["token", "add", "--label", "t", "--no-pin"]);

    let (ok, screen) = under_pty(
        &tpm.tcti(),
        &store,
        &[
            "key",
            "add",
            "--token",
            "t",
            "--label",
            "big",
            "--algorithm",
            "rsa3072",
        ],
    );
    assert!(ok, "key add under a terminal failed:\n{screen}");
    let step = screen
        .find("creating an RSA-3072 key in the TPM (hardware TPMs take up to a minute)…")
        .unwrap_or_else(|| panic!("no progress line on the terminal:\n{screen:?}"));
    let result = screen
        .find("key big (rsa3072, sign) added to token t")
        .unwrap_or_else(|| panic!("no result line:\n{screen:?}"));
    assert!(
        step < result,
        "the progress line came after the result:\n{screen:?}"
    );
    // The spinner line is erased (ESC[2K) before the result is printed.
    assert!(
        screen[step..result].contains("\x1b[2K"),
        "the progress line was not cleared:\n{screen:?}"
    );

    // stderr a pipe: the same work, and not a byte of progress.
    let (out, err) = tk(&[
        "key",
        "add",
        "--token",
        "t",
        "--label",
        "big2",
        "--algorithm",
        "rsa3072",
    ]);
    assert!(out.contains("key big2 (rsa3072, sign) added"), "{out}");
    assert!(
        err.is_empty(),
        "stderr is a pipe, yet tpmkey wrote to it: {err:?}"
    );

    // An ECC key is quick everywhere: no progress line even on a terminal.
    let (ok, screen) = under_pty(
        &tpm.tcti(),
        &store,
        &[
            "key",
            "add",
            "--token",
            "t",
            "--label",
            "small",
            "--algorithm",
            "ecc256",
        ],
    );
    assert!(ok, "{screen}");
    assert!(!screen.contains("in the TPM"), "{screen:?}");
}

#[test]
fn a_transient_rsa_srk_shows_its_derivation_on_a_terminal() {
    let tpm = Swtpm::start();
    let dir = TempDir::new("progress-srk");
    let store = dir.path().join("store");
    let (ok, screen) = under_pty(
        &tpm.tcti(),
        &store,
        &["init", "--srk", "rsa", "--no-persist"],
    );
    assert!(ok, "init --srk rsa failed:\n{screen}");
    assert!(
        screen.contains("deriving the RSA storage root key (hardware TPMs take up to a minute)…"),
        "{screen:?}"
    );
    // Every later command derives it again, and says so on a terminal only.
    let (ok, screen) = under_pty(
        &tpm.tcti(),
        &store,
        &["token", "add", "--label", "t", "--no-pin"],
    );
    assert!(ok, "{screen}");
    assert!(
        screen.contains("deriving the RSA storage root key"),
        "{screen:?}"
    );
    let (ok, _, err) = run_tpmkey_in(
        &tpm.tcti(),
        &store,
        &["token", "add", "--label", "u", "--no-pin"],
    );
    assert!(ok, "{err}");
    assert!(
        err.is_empty(),
        "stderr is a pipe, yet tpmkey wrote to it: {err:?}"
    );
}

/// A TPM_RC_RETRY response frame (Part 2 §6.6.3: RC_WARN + 0x022), no parameters.
const RETRY: [u8; 10] = [0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x09, 0x22];
/// TPM_CC_GetCapability.
const GET_CAPABILITY: [u8; 4] = [0, 0, 0x01, 0x7a];

#[test]
fn a_busy_tpm_is_shown_while_tpmkey_waits_for_it() {
    let tpm = Swtpm::start();
    let proxy = TpmProxy::start(tpm.data_port());
    let dir = TempDir::new("progress-busy");
    // The first 9 GetCapability answers say "retry": tpmkey resends with back-off
    // (1, 2, 4 … 256 ms), and from ~60 ms of waiting on says why it waits.
    let busy = Arc::new(AtomicU32::new(0));
    let left = busy.clone();
    proxy.set_tamper(Some(Box::new(move |cmd: &[u8], rsp: &mut Vec<u8>| {
        if cmd.get(6..10) == Some(&GET_CAPABILITY[..])
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            *rsp = RETRY.to_vec();
        }
    })));
    busy.store(9, Ordering::SeqCst);
    let (ok, screen) = under_pty(&proxy.tcti(), &dir.path().join("store"), &["info"]);
    assert!(ok, "tpmkey info through a busy TPM failed:\n{screen}");
    assert_eq!(
        busy.load(Ordering::SeqCst),
        0,
        "the TPM never answered retry"
    );
    assert!(
        screen.contains("the TPM is busy (TPM_RC_RETRY); waiting for it…"),
        "{screen:?}"
    );
    assert!(screen.contains("Manufacturer:"), "{screen:?}");

    busy.store(9, Ordering::SeqCst);
    let (ok, out, err) = run_tpmkey_in(&proxy.tcti(), &dir.path().join("store"), &["info"]);
    assert!(ok, "{err}");
    assert_eq!(
        busy.load(Ordering::SeqCst),
        0,
        "the TPM never answered retry"
    );
    assert!(out.contains("Manufacturer:"), "{out}");
    assert!(
        err.is_empty(),
        "stderr is a pipe, yet tpmkey wrote to it: {err:?}"
    );
}
