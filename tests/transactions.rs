//! Nothing half-done: `token add`, `pin change`, `pin reset` and `token rm` fail at
//! every TPM command they send — the command dropped before the TPM sees it, its
//! response cut in half after the TPM carried it out, and the process killed with
//! SIGKILL while the response is held — and each time the store and the TPM's
//! persistent handles stay consistent:
//! - no persistent seal that no token record names (another store's seal is never
//!   touched), no temporary file, no half-made or half-removed token directory;
//! - exactly one user PIN works (the old one or the new one), or the token is there
//!   whole with its PIN or not at all;
//! - "failed" is printed only when the old state holds, success only when the new
//!   one does;
//! - after the next command that uses the token, no pending handle is left and the
//!   TPM holds exactly the persistent seals the records name.
//!
//! Also: a full disk (a small tmpfs) at every point of those commands, and a
//! persistent handle that does not hold the token's seal, whatever the TPM answers.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::proxy::{Fault, TpmProxy};
use common::{Swtpm, TempDir};
use tpm_commands::constants::TpmHandle;
use tpmkey::keys::persist::TOKEN_SEALS;
use tpmkey::store::TokenRecord;
use tpmkey::tpm::Tpm;

/// Persistent handles in the token-seal range.
fn seal_handles(tcti: &str) -> BTreeSet<u32> {
    common::tpm_handles(tcti, *TOKEN_SEALS.start())
        .into_iter()
        .filter(|h| TOKEN_SEALS.contains(h))
        .collect()
}

/// Flushes what killed or cut-off processes left loaded (a TPM without a resource
/// manager keeps it), so that every case starts alike.
fn flush_transients(tcti: &str) {
    let handles = common::loaded_handles(tcti);
    let mut tpm = Tpm::open(&tcti.parse().unwrap()).unwrap();
    for h in handles {
        tpm.flush(TpmHandle(h)).unwrap();
    }
}

/// No dictionary-attack lockout in these tests: wrong PINs are tried on purpose
/// (TPM2_DictionaryAttackParameters with the empty lockout password).
fn allow_many_wrong_pins(tcti: &str) {
    use tpm_commands::commands::DictionaryAttackParameters;
    let mut tpm = Tpm::open(&tcti.parse().unwrap()).unwrap();
    let lockout = TpmHandle::RH_LOCKOUT.0.to_be_bytes();
    tpm.execute(
        &DictionaryAttackParameters {
            lock_handle: TpmHandle::RH_LOCKOUT,
            new_max_tries: 100_000,
            new_recovery_time: 1,
            lockout_recovery: 1,
        },
        &[&lockout],
        &mut [tpmkey::tpm::Auth::EmptyPassword],
    )
    .unwrap();
}

fn read_token(store: &Path, label: &str) -> Option<TokenRecord> {
    let p = store.join("tokens").join(label).join("token.json");
    let text = std::fs::read(&p).ok()?;
    Some(serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn token_labels(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Every persistent handle the store's records name: (committed, pending).
fn named_handles(store: &Path) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let mut committed = BTreeSet::new();
    let mut pending = BTreeSet::new();
    for l in token_labels(store) {
        let t = read_token(store, &l).unwrap_or_else(|| panic!("token {l} without token.json"));
        committed.extend(t.user_seal_handle);
        pending.extend(t.pending_seal_handle);
    }
    (committed, pending)
}

/// Files and directories a finished or killed command must not leave.
fn debris(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.contains(".tmp-") || name.starts_with(".new-") || name.starts_with(".rm-") {
            out.push(e.path());
        }
        if e.file_type().unwrap().is_dir() {
            out.extend(debris(&e.path()));
        }
    }
    out
}

/// A swtpm, a proxy in front of it, our store, and a bystander store whose token's
/// persistent seal shares the range.
struct Rig {
    sim: Swtpm,
    proxy: TpmProxy,
    _dir: TempDir,
    store: PathBuf,
    other: PathBuf,
    other_handle: u32,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let sim = Swtpm::start();
        let proxy = TpmProxy::start(sim.data_port());
        let dir = TempDir::new(tag);
        let store = dir.path().join("store");
        let other = dir.path().join("other");
        let direct = sim.tcti();
        allow_many_wrong_pins(&direct);
        let ok = |s: &Path, args: &[&str]| {
            let (good, out, err) = common::run_tpmkey_in(&direct, s, args);
            assert!(good, "tpmkey {args:?}: {out}{err}");
        };
        ok(&other, &["init"]);
        ok(
            &other,
            &[
                "token",
                "add",
                "--label",
                "theirs",
                "--userpin",
                "9999",
                "--sopin",
                "so-9",
            ],
        );
        let other_handle = read_token(&other, "theirs")
            .and_then(|t| t.user_seal_handle)
            .expect("the bystander's seal is persistent");
        ok(&store, &["init"]);
        Rig {
            sim,
            proxy,
            _dir: dir,
            store,
            other,
            other_handle,
        }
    }

    fn direct(&self) -> String {
        self.sim.tcti()
    }

    /// tpmkey straight to the TPM.
    fn tk(&self, args: &[&str]) -> (bool, String) {
        let (ok, out, err) = common::run_tpmkey_in(&self.direct(), &self.store, args);
        (ok, out + &err)
    }

    fn ok(&self, args: &[&str]) {
        let (good, out) = self.tk(args);
        assert!(good, "tpmkey {args:?}: {out}");
    }

    /// True when `pin` is `label`'s user PIN (a signature with key `k`); a refusal
    /// must be the TPM's wrong-PIN answer, nothing else.
    fn pin_works(&self, label: &str, pin: &str) -> bool {
        let (good, out) = self.tk(&["sign", "--token", label, "--label", "k", "--userpin", pin]);
        assert!(
            good || out.contains("TPM_RC_AUTH_FAIL"),
            "sign with {pin:?} failed for another reason than a wrong PIN: {out}"
        );
        good
    }

    /// Runs tpmkey through the proxy with `fault` armed at command `at` (None: no
    /// fault); Some(success) for a run that ended, None for one killed.
    fn run_faulted(&self, args: &[&str], fault: Option<(usize, Fault)>) -> Option<(bool, String)> {
        self.proxy.set_fault(fault);
        let mut child = Command::new(common::tpmkey_bin())
            .args(args)
            .env("TPMKEY_TCTI", self.proxy.tcti())
            .env("TPMKEY_STORE", &self.store)
            .env_remove("TPM2TOOLS_TCTI")
            .env_remove("TPMKEY_PIN")
            .env_remove("TPMKEY_SOPIN")
            .env_remove("TPMKEY_NEW_PIN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let result = if matches!(fault, Some((_, Fault::HoldResponse))) {
            assert!(
                self.proxy.wait_held(Duration::from_secs(60)),
                "tpmkey {args:?} never reached command {fault:?}"
            );
            child.kill().unwrap();
            child.wait().unwrap();
            self.proxy.release();
            None
        } else {
            let out = child.wait_with_output().unwrap();
            Some((
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            ))
        };
        self.proxy.disarm();
        // The proxy closes its side right after; then the TPM is ours again.
        std::thread::sleep(Duration::from_millis(20));
        flush_transients(&self.direct());
        result
    }

    /// The checks that hold right after any failure, before the next command
    /// settles anything.
    fn check_structure(&self, what: &str) {
        let debris = debris(&self.store);
        assert!(debris.is_empty(), "{what}: left {debris:?}");
        let tpm = seal_handles(&self.direct());
        let (committed, pending) = named_handles(&self.store);
        let (theirs, _) = named_handles(&self.other);
        assert!(
            tpm.contains(&self.other_handle),
            "{what}: the other store's seal 0x{:08x} was evicted",
            self.other_handle
        );
        for h in &tpm {
            assert!(
                committed.contains(h) || pending.contains(h) || theirs.contains(h),
                "{what}: persistent seal 0x{h:08x} is named by no token (TPM {tpm:x?}, committed {committed:x?}, pending {pending:x?})"
            );
        }
    }

    /// After a command used the token: nothing pending, and the TPM holds exactly
    /// the persistent seals the records name.
    fn check_settled(&self, what: &str) {
        let tpm = seal_handles(&self.direct());
        let (committed, pending) = named_handles(&self.store);
        let (theirs, _) = named_handles(&self.other);
        assert!(pending.is_empty(), "{what}: still pending {pending:x?}");
        let named: BTreeSet<u32> = committed.union(&theirs).copied().collect();
        assert_eq!(tpm, named, "{what}: TPM seals vs. named ones");
    }
}

/// The state a case left, compared with what the command printed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    Old,
    New,
}

fn judge(what: &str, outcome: &Option<(bool, String)>, state: State) {
    match outcome {
        Some((true, out)) => assert_eq!(
            state,
            State::New,
            "{what}: printed success ({out}), but the old state holds"
        ),
        Some((false, out)) => assert_eq!(
            state,
            State::Old,
            "{what}: printed failure ({out}), but the change took effect"
        ),
        None => {}
    }
}

const FAULTS: [Fault; 3] = [Fault::DropCommand, Fault::CutResponse, Fault::HoldResponse];

/// Runs `args` once without a fault to count its TPM commands, then once per
/// command and fault; `state` tells old from new (checking the PINs), `prepare`
/// sets up the starting state before each run (the same commands must be sent).
fn every_step(
    rig: &Rig,
    name: &str,
    args: &dyn Fn(usize) -> Vec<String>,
    state: &dyn Fn(&Rig, usize) -> State,
    prepare: &dyn Fn(&Rig),
) -> usize {
    prepare(rig);
    let argv = args(0);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let dry = rig.run_faulted(&argv, None).unwrap();
    assert!(dry.0, "{name} without a fault: {}", dry.1);
    let steps = rig.proxy.commands_seen();
    assert!(steps >= 2, "{name}: {steps} TPM commands?");
    assert_eq!(state(rig, 0), State::New);
    rig.check_settled(name);
    let mut case = 1;
    for fault in FAULTS {
        for at in 0..steps {
            let what = format!("{name}, {fault:?} at command {at} of {steps}");
            prepare(rig);
            let argv = args(case);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let outcome = rig.run_faulted(&argv, Some((at, fault)));
            if let Some((_, out)) = &outcome {
                assert!(!out.contains("panicked"), "{what}: {out}");
            }
            rig.check_structure(&what);
            let s = state(rig, case);
            judge(&what, &outcome, s);
            rig.check_settled(&what);
            case += 1;
        }
    }
    steps
}

#[test]
fn token_add_and_rm_fail_at_every_step_without_leaving_anything() {
    let rig = Rig::new("tx-token");
    let add_args = |_: usize| -> Vec<String> {
        [
            "token",
            "add",
            "--label",
            "t2",
            "--userpin",
            "2222",
            "--sopin",
            "so-2",
        ]
        .map(String::from)
        .to_vec()
    };
    let added = |rig: &Rig, _: usize| -> State {
        if !token_labels(&rig.store).contains(&"t2".to_string()) {
            return State::Old;
        }
        let (good, out) = rig.tk(&[
            "key",
            "add",
            "--token",
            "t2",
            "--label",
            "k",
            "--userpin",
            "2222",
        ]);
        assert!(good, "t2 exists, its PIN must work: {out}");
        State::New
    };
    let remove = |rig: &Rig| {
        if token_labels(&rig.store).contains(&"t2".to_string()) {
            rig.ok(&["token", "rm", "--label", "t2"]);
        }
    };
    let steps = every_step(&rig, "token add", &add_args, &added, &remove);
    eprintln!("token add: {steps} TPM commands, each failed 3 ways");

    // token rm of a token with a key and a persistent seal.
    let make_t3 = |rig: &Rig| {
        if let Some(t) = read_token(&rig.store, "t3") {
            if t.user_seal_handle.is_some() {
                return;
            }
            rig.ok(&["token", "rm", "--label", "t3"]);
        }
        rig.ok(&[
            "token",
            "add",
            "--label",
            "t3",
            "--userpin",
            "3333",
            "--sopin",
            "so-3",
        ]);
        rig.ok(&[
            "key",
            "add",
            "--token",
            "t3",
            "--label",
            "k",
            "--userpin",
            "3333",
        ]);
        assert!(read_token(&rig.store, "t3")
            .unwrap()
            .user_seal_handle
            .is_some());
    };
    let rm_args =
        |_: usize| -> Vec<String> { ["token", "rm", "--label", "t3"].map(String::from).to_vec() };
    let removed = |rig: &Rig, _: usize| -> State {
        if token_labels(&rig.store).contains(&"t3".to_string()) {
            assert!(
                rig.pin_works("t3", "3333"),
                "t3 is there, its PIN must work"
            );
            State::Old
        } else {
            State::New
        }
    };
    let steps = every_step(&rig, "token rm", &rm_args, &removed, &make_t3);
    eprintln!("token rm: {steps} TPM commands, each failed 3 ways");
}

#[test]
fn pin_change_and_reset_fail_at_every_step_leaving_one_pin() {
    let rig = Rig::new("tx-pin");
    rig.ok(&[
        "token",
        "add",
        "--label",
        "ssh",
        "--userpin",
        "p0",
        "--sopin",
        "so-1",
    ]);
    rig.ok(&[
        "key",
        "add",
        "--token",
        "ssh",
        "--label",
        "k",
        "--userpin",
        "p0",
    ]);
    let current = std::cell::RefCell::new("p0".to_string());
    // Case n changes the PIN from the current one to "p<n+1>" (or "r<n+1>").
    let which = |rig: &Rig, next: String| -> State {
        let cur = current.borrow().clone();
        let old = rig.pin_works("ssh", &cur);
        let new = rig.pin_works("ssh", &next);
        assert!(
            old != new,
            "exactly one PIN must work: {cur:?} {old}, {next:?} {new}"
        );
        if new {
            *current.borrow_mut() = next;
            State::New
        } else {
            State::Old
        }
    };
    let change_args = |n: usize| -> Vec<String> {
        vec![
            "pin".into(),
            "change".into(),
            "--token".into(),
            "ssh".into(),
            "--userpin".into(),
            current.borrow().clone(),
            "--new-userpin".into(),
            format!("p{}", n + 1),
        ]
    };
    let steps = every_step(
        &rig,
        "pin change",
        &change_args,
        &|rig, n| which(rig, format!("p{}", n + 1)),
        &|_| {},
    );
    eprintln!("pin change: {steps} TPM commands, each failed 3 ways");
    let reset_args = |n: usize| -> Vec<String> {
        [
            "pin",
            "reset",
            "--token",
            "ssh",
            "--sopin",
            "so-1",
            "--new-userpin",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("r{}", n + 1)])
        .collect()
    };
    let steps = every_step(
        &rig,
        "pin reset",
        &reset_args,
        &|rig, n| which(rig, format!("r{}", n + 1)),
        &|_| {},
    );
    eprintln!("pin reset: {steps} TPM commands, each failed 3 ways");
}

/// A tmpfs of `size`, mounted for the test and unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount (util-linux)");
        assert!(
            st.success(),
            "mount -t tmpfs failed: the full-disk test needs root and CAP_SYS_ADMIN"
        );
        Tmpfs(at.to_path_buf())
    }

    /// Free blocks (4 KiB on tmpfs).
    fn free_blocks(&self) -> u64 {
        nix::sys::statvfs::statvfs(&self.0)
            .unwrap()
            .blocks_available()
    }

    /// Fills the file system up to `free` blocks left.
    fn fill_to(&self, free: u64) -> PathBuf {
        let filler = self.0.join("filler");
        let _ = std::fs::remove_file(&filler);
        let blocks = self.free_blocks().saturating_sub(free);
        std::fs::write(&filler, vec![0xa5u8; (blocks * 4096) as usize]).unwrap();
        assert_eq!(self.free_blocks(), free, "filler");
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_at_every_point() {
    let rig = Rig::new("tx-disk");
    let dir = TempDir::new("tx-disk-mnt");
    let fs = Tmpfs::mount(&dir.path().join("mnt"), "256k");
    let store = fs.0.join("store");
    let direct = rig.direct();
    let tk = |args: &[&str]| {
        let (ok, out, err) = common::run_tpmkey_in(&direct, &store, args);
        (ok, out + &err)
    };
    let ok = |args: &[&str]| {
        let (good, out) = tk(args);
        assert!(good, "tpmkey {args:?}: {out}");
    };
    ok(&["init"]);
    ok(&[
        "token",
        "add",
        "--label",
        "ssh",
        "--userpin",
        "p0",
        "--sopin",
        "so-1",
    ]);
    ok(&[
        "key",
        "add",
        "--token",
        "ssh",
        "--label",
        "k",
        "--userpin",
        "p0",
    ]);
    let pin_works = |pin: &str| {
        let (good, out) = tk(&["sign", "--token", "ssh", "--label", "k", "--userpin", pin]);
        assert!(good || out.contains("TPM_RC_AUTH_FAIL"), "{out}");
        good
    };
    let mut current = "p0".to_string();
    let mut seen_full = 0;
    for free in 0..4u64 {
        let what = |op: &str| format!("{op} with {free} free blocks");
        let filler = fs.fill_to(free);

        // token add: either a whole token or nothing (no directory, no temp file).
        let (good, out) = tk(&[
            "token",
            "add",
            "--label",
            "t2",
            "--userpin",
            "2222",
            "--sopin",
            "so-2",
        ]);
        let exists = store.join("tokens/t2").exists();
        if good {
            assert!(exists, "{}: success without a token", what("token add"));
        } else {
            seen_full += 1;
            assert!(
                out.contains("No space left on device"),
                "{}: {out}",
                what("token add")
            );
            assert!(!exists, "{}: failed but left tokens/t2", what("token add"));
        }
        assert!(
            debris(&store).is_empty(),
            "{}: {:?}",
            what("token add"),
            debris(&store)
        );

        // pin change and pin reset: the old PIN, or the new one.
        for op in ["pin change", "pin reset"] {
            let args: Vec<String> = if op == "pin change" {
                [
                    "pin",
                    "change",
                    "--token",
                    "ssh",
                    "--userpin",
                    &current,
                    "--new-userpin",
                    "nc",
                ]
                .map(String::from)
                .to_vec()
            } else {
                [
                    "pin",
                    "reset",
                    "--token",
                    "ssh",
                    "--sopin",
                    "so-1",
                    "--new-userpin",
                    "nr",
                ]
                .map(String::from)
                .to_vec()
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let next = if op == "pin change" { "nc" } else { "nr" };
            let (good, out) = tk(&args);
            if !good {
                seen_full += 1;
                assert!(
                    out.contains("No space left on device") && out.contains("was not changed"),
                    "{}: {out}",
                    what(op)
                );
            }
            assert!(
                debris(&store).is_empty(),
                "{}: {:?}",
                what(op),
                debris(&store)
            );
            let (old_ok, new_ok) = (pin_works(&current), pin_works(next));
            assert!(old_ok != new_ok, "{}: old {old_ok}, new {new_ok}", what(op));
            assert_eq!(good, new_ok, "{}: printed {good} ({out})", what(op));
            if new_ok {
                current = next.to_string();
            }
            // Back to a PIN that is not "nc"/"nr" for the next round.
            std::fs::remove_file(&filler).unwrap();
            ok(&[
                "pin",
                "change",
                "--token",
                "ssh",
                "--userpin",
                &current.clone(),
                "--new-userpin",
                &format!("p{free}{}", &op[4..]),
            ]);
            current = format!("p{free}{}", &op[4..]);
            fs.fill_to(free);
        }

        // key add: no key file claims a key that was not stored.
        let (good, out) = tk(&[
            "key",
            "add",
            "--token",
            "ssh",
            "--label",
            "k2",
            "--userpin",
            &current,
        ]);
        let keys = std::fs::read_dir(store.join("tokens/ssh/keys"))
            .unwrap()
            .count();
        if good {
            assert_eq!(keys, 2, "{}", what("key add"));
            ok(&["key", "rm", "--token", "ssh", "--label", "k2"]);
        } else {
            assert!(
                out.contains("No space left on device"),
                "{}: {out}",
                what("key add")
            );
            assert_eq!(keys, 1, "{}", what("key add"));
        }
        assert!(
            debris(&store).is_empty(),
            "{}: {:?}",
            what("key add"),
            debris(&store)
        );

        // token rm: whole or not at all.
        if exists {
            let (good, out) = tk(&["token", "rm", "--label", "t2"]);
            assert!(good, "token rm needs no room: {out}");
        }
        std::fs::remove_file(&filler).unwrap();
        let tpm = seal_handles(&direct);
        let (committed, pending) = named_handles(&store);
        let (theirs, _) = named_handles(&rig.other);
        for h in &tpm {
            assert!(
                committed.contains(h) || pending.contains(h) || theirs.contains(h),
                "{}: unnamed persistent seal 0x{h:08x}",
                what("all")
            );
        }
        assert!(pin_works(&current));
    }
    assert!(
        seen_full >= 3,
        "the disk was never full enough to fail ({seen_full})"
    );
    drop(fs);
}

#[test]
fn a_seal_handle_that_does_not_hold_the_seal_is_forgotten_whatever_the_tpm_answers() {
    let rig = Rig::new("tx-handle");
    rig.ok(&[
        "token",
        "add",
        "--label",
        "ssh",
        "--userpin",
        "1111",
        "--sopin",
        "so-1",
    ]);
    rig.ok(&[
        "key",
        "add",
        "--token",
        "ssh",
        "--label",
        "k",
        "--userpin",
        "1111",
    ]);
    let path = rig.store.join("tokens/ssh/token.json");
    let ours = read_token(&rig.store, "ssh")
        .unwrap()
        .user_seal_handle
        .unwrap();
    let set_handle = |h: u32| {
        let mut t = read_token(&rig.store, "ssh").unwrap();
        t.user_seal_handle = Some(h);
        std::fs::write(&path, serde_json::to_vec(&t).unwrap()).unwrap();
    };
    // Edited to name other handles: the SRK, the other store's seal, an empty
    // one, and handles of other types.
    for h in [
        0x8100_0001,
        rig.other_handle,
        0x8100_01fe,
        0x8000_0000,
        0x4000_0001,
        0xffff_ffff,
        0,
    ] {
        set_handle(h);
        assert!(rig.pin_works("ssh", "1111"), "handle 0x{h:08x}");
        let t = read_token(&rig.store, "ssh").unwrap();
        assert_eq!(t.user_seal_handle, None, "handle 0x{h:08x} is forgotten");
        assert!(!rig.pin_works("ssh", "0000"), "a wrong PIN stays wrong");
    }
    let tpm = seal_handles(&rig.direct());
    assert!(
        tpm.contains(&rig.other_handle) && tpm.contains(&ours),
        "nothing evicted: {tpm:x?}"
    );
    assert!(common::tpm_handles(&rig.direct(), 0x8100_0001).contains(&0x8100_0001));

    // Evicted behind our back, and the TPM's answer to the Unseal there replaced
    // by each of these codes: never a wrong PIN.
    {
        let mut tpm = Tpm::open(&rig.direct().parse().unwrap()).unwrap();
        let name = tpm
            .run(&tpm_commands::commands::ReadPublic {
                object_handle: TpmHandle(ours),
            })
            .unwrap()
            .name;
        assert!(tpmkey::keys::persist::evict_control(
            &mut tpm,
            TpmHandle(ours),
            name.as_bytes(),
            TpmHandle(ours)
        )
        .unwrap());
    }
    for rc in [
        0x98Eu32,
        0x9A2,
        0x18B,
        0x184,
        0x18A,
        0x182,
        0x101,
        0x910,
        0x921,
        0xffff_ffff,
        0x000b_0910,
    ] {
        set_handle(ours);
        rig.proxy
            .set_tamper(Some(Box::new(move |cmd: &[u8], rsp: &mut Vec<u8>| {
                let cc = u32::from_be_bytes([cmd[6], cmd[7], cmd[8], cmd[9]]);
                let handle = u32::from_be_bytes([cmd[10], cmd[11], cmd[12], cmd[13]]);
                if cc == 0x15E && handle == ours {
                    let mut frame = vec![0x80, 0x01, 0, 0, 0, 10];
                    frame.extend_from_slice(&rc.to_be_bytes());
                    *rsp = frame;
                }
            })));
        let (good, out) = rig
            .run_faulted(
                &[
                    "sign",
                    "--token",
                    "ssh",
                    "--label",
                    "k",
                    "--userpin",
                    "1111",
                ],
                None,
            )
            .unwrap();
        rig.proxy.set_tamper(None);
        assert!(good, "rc {rc:#x}: {out}");
        assert_eq!(
            read_token(&rig.store, "ssh").unwrap().user_seal_handle,
            None,
            "rc {rc:#x}"
        );
    }

    // When the TPM will not even say what is at the handle (TPM2_ReadPublic
    // answered with an odd code too), the blob decides and the handle is kept: it
    // is forgotten only on a definite answer.
    set_handle(ours);
    rig.proxy
        .set_tamper(Some(Box::new(move |cmd: &[u8], rsp: &mut Vec<u8>| {
            let cc = u32::from_be_bytes([cmd[6], cmd[7], cmd[8], cmd[9]]);
            let handle = u32::from_be_bytes([cmd[10], cmd[11], cmd[12], cmd[13]]);
            if (cc == 0x15E || cc == 0x173) && handle == ours {
                *rsp = vec![0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];
            }
        })));
    let (good, out) = rig
        .run_faulted(
            &[
                "sign",
                "--token",
                "ssh",
                "--label",
                "k",
                "--userpin",
                "1111",
            ],
            None,
        )
        .unwrap();
    rig.proxy.set_tamper(None);
    assert!(good, "{out}");
    assert_eq!(
        read_token(&rig.store, "ssh").unwrap().user_seal_handle,
        Some(ours)
    );
    assert!(rig.pin_works("ssh", "1111"));
    assert_eq!(
        read_token(&rig.store, "ssh").unwrap().user_seal_handle,
        None
    );
}

#[test]
fn token_rm_without_the_tpm_removes_nothing_unless_forced() {
    let rig = Rig::new("tx-force");
    rig.ok(&[
        "token",
        "add",
        "--label",
        "t",
        "--userpin",
        "1111",
        "--sopin",
        "so-1",
    ]);
    let h = read_token(&rig.store, "t")
        .unwrap()
        .user_seal_handle
        .unwrap();
    let nowhere = format!("swtpm:host=127.0.0.1,port={}", common::free_port_pub());
    let (good, out, err) =
        common::run_tpmkey_in(&nowhere, &rig.store, &["token", "rm", "--label", "t"]);
    assert!(
        !good && err.contains("not removed") && err.contains("--force"),
        "{out}{err}"
    );
    assert!(read_token(&rig.store, "t").is_some(), "nothing removed");
    let (good, out, err) = common::run_tpmkey_in(
        &nowhere,
        &rig.store,
        &["token", "rm", "--label", "t", "--force"],
    );
    assert!(good, "{out}{err}");
    assert!(out.contains("token t removed"), "{out}");
    assert!(
        err.contains(&format!("0x{h:08x}")),
        "what stays is named: {err}"
    );
    assert!(read_token(&rig.store, "t").is_none());
    assert!(debris(&rig.store).is_empty());
}
