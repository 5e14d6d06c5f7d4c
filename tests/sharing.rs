//! One long-lived process holding the module must not shut the others out of a TPM
//! that has no resource manager (swtpm, TCP and unix socket). An ssh-agent holds
//! the module after `ssh-add -s` (logged in); while it is idle, 10 `ssh -I` logins,
//! 10 `tpmkey sign` runs and a second agent (a second module user, its own store)
//! all succeed, each within a bound, and the first agent still signs:
//!
//! - in the steady state with one TPM command per signature (TPM2_Sign alone);
//! - after another program flushed its key and session without a word (the agent
//!   loads the key and starts a session again, no PIN asked, and bumps the flush
//!   epoch, so that the second agent starts over too instead of trying its old
//!   handle numbers);
//! - after tpmkey's own stale-handle recovery flushed everything to make room and
//!   the second agent took the freed handle numbers: the first agent sees the new
//!   flush epoch and loads again instead of trying a handle that now names the
//!   other agent's key, so the TPM counts no failed authorization.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::proxy::TpmProxy;
use common::ssh::{askpass, askpass_calls, logged_in, module_path, with_tpm, Agent, Sshd};
use common::{Swtpm, TempDir};
use tpm_commands::commands::{Command as _, CreatePrimary, FlushContext};
use tpm_commands::constants::TpmHandle;
use tpmkey::keys::templates::{srk_template, SrkKind};
use tpmkey::Tcti;

/// Each of these waits is a login or a signature; it only has to tell a working
/// wait from the hang this is about (the issue saw 60 s time-outs).
const BOUND: Duration = Duration::from_secs(30);

const SIGN: u32 = 0x15d;
const LOAD: u32 = 0x157;
const START_AUTH_SESSION: u32 = 0x176;

struct World {
    sim: Swtpm,
    proxy: Option<TpmProxy>,
    dir: TempDir,
    /// The askpass of the agents' ssh-add -s (calls counted in `apdir`).
    ap: PathBuf,
    apdir: PathBuf,
    /// The askpass of the ssh -I logins.
    ap_i: PathBuf,
}

impl World {
    fn new(unix: bool) -> World {
        let sim = if unix {
            Swtpm::start_unix()
        } else {
            Swtpm::start()
        };
        let proxy = (!unix).then(|| TpmProxy::start(sim.data_port()));
        let dir = TempDir::new("sharing");
        let apdir = dir.path().join("ap");
        std::fs::create_dir_all(&apdir).unwrap();
        let ap = askpass(&apdir, "1234");
        let idir = dir.path().join("ap-i");
        std::fs::create_dir_all(&idir).unwrap();
        let ap_i = askpass(&idir, "1234");
        World {
            sim,
            proxy,
            dir,
            ap,
            apdir,
            ap_i,
        }
    }

    /// What every process uses: the counting proxy on TCP, the socket on unix.
    fn tcti(&self) -> String {
        match &self.proxy {
            Some(p) => p.tcti(),
            None => self.sim.tcti(),
        }
    }

    fn store(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tk(&self, store: &str, args: &[&str]) -> String {
        let (ok, out, err) = common::run_tpmkey_in(&self.tcti(), &self.store(store), args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    }

    /// A store with a PIN token and a P-256 key.
    fn make_store(&self, store: &str, token: &str, key: &str) {
        self.tk(store, &["init"]);
        self.tk(
            store,
            &[
                "token",
                "add",
                "--label",
                token,
                "--userpin",
                "1234",
                "--sopin",
                "5678",
            ],
        );
        self.tk(
            store,
            &[
                "key",
                "add",
                "--token",
                token,
                "--label",
                key,
                "--algorithm",
                "ecc256",
                "--userpin",
                "1234",
            ],
        );
    }

    fn agent(&self, store: &str) -> Agent {
        let (tcti, st, ap) = (self.tcti(), self.store(store), self.ap.clone());
        let m = module_path();
        let agent = Agent::start(&m, |c| with_tpm(c, &tcti, &st, &ap));
        let mut add = Command::new("ssh-add");
        add.arg("-s").arg(&m).env("SSH_AUTH_SOCK", agent.sock());
        with_tpm(&mut add, &self.tcti(), &self.store(store), &self.ap);
        let out = add
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ssh-add -s");
        assert!(out.status.success(), "ssh-add -s failed: {}", stderr(&out));
        agent
    }

    /// The TPM commands (code, response code) sent while `f` ran (TCP only).
    fn commands_during(&self, f: impl FnOnce()) -> Option<Vec<(u32, u32)>> {
        let before = self.proxy.as_ref().map(TpmProxy::command_count);
        f();
        let p = self.proxy.as_ref()?;
        Some(
            p.exchanges()[before.unwrap_or(0)..]
                .iter()
                .map(|x| (x.cc(), x.rc()))
                .collect(),
        )
    }

    /// Failed authorizations the TPM counted (TPM_PT_LOCKOUT_COUNTER).
    fn lockout_counter(&self) -> u32 {
        let mut tpm = tpmkey::Tpm::open(&self.sim.tcti().parse().unwrap()).unwrap();
        tpmkey::info::gather(&mut tpm).unwrap().da.failed_tries
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// A login through `agent` (no -I, no PIN prompt allowed).
fn agent_login(sshd: &Sshd, agent: &Agent, what: &str) -> Duration {
    let (out, took) = timed(|| {
        sshd.ssh(&[], Some(agent.sock()))
            .env("SSH_ASKPASS_REQUIRE", "never")
            .output()
            .expect("ssh")
    });
    assert!(
        logged_in(&out),
        "{what}: login through the agent failed after {took:?}: {}\nsshd: {}",
        stderr(&out),
        sshd.log()
    );
    assert!(took < BOUND, "{what}: {took:?}");
    took
}

fn stats(what: &str, times: &[Duration]) {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{what}: {} ok, median {:.0} ms, max {:.0} ms",
        ms.len(),
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}

/// Flushes every transient object and session in the TPM, as a program that knows
/// nothing of tpmkey would (no flush epoch).
fn flush_everything(direct: &str) -> usize {
    let handles = common::loaded_handles(direct);
    let mut tpm = tpmkey::Tpm::open(&direct.parse().unwrap()).unwrap();
    for h in &handles {
        tpm.run(&FlushContext {
            flush_handle: TpmHandle(*h),
        })
        .unwrap();
    }
    handles.len()
}

/// Flushes one handle, as a program that knows nothing of tpmkey would.
fn flush_handle(direct: &str, h: u32) {
    let mut tpm = tpmkey::Tpm::open(&direct.parse().unwrap()).unwrap();
    tpm.run(&FlushContext {
        flush_handle: TpmHandle(h),
    })
    .unwrap();
}

/// Fills the TPM's free object slots with primaries nobody will flush, the way a
/// crashed process leaves them. Returns how many.
fn fill_object_slots(direct: &str) -> usize {
    let tcti: Tcti = direct.parse().unwrap();
    let mut t = tcti.open().unwrap();
    let cp = CreatePrimary {
        primary_handle: TpmHandle::RH_OWNER,
        in_sensitive: tpm_commands::structures::Tpm2bSensitiveCreate::new(Default::default()),
        in_public: tpm_commands::structures::Tpm2bPublic::new(srk_template(SrkKind::Ecc)),
        outside_info: Default::default(),
        creation_pcr: Default::default(),
    };
    let pw = tpm_commands::frame::TpmsAuthCommand {
        session_handle: TpmHandle::RS_PW,
        session_attributes: tpm_commands::attributes::TpmaSession::CONTINUE_SESSION,
        ..Default::default()
    };
    let frame = tpm_commands::frame::build_command(
        CreatePrimary::CC,
        &cp.handles(),
        &[pw],
        &cp.params_bytes().unwrap(),
    )
    .unwrap();
    let mut n = 0;
    loop {
        let rsp = t.transact(&frame).unwrap();
        if rsp[6..10] != [0, 0, 0, 0] {
            break;
        }
        n += 1;
        assert!(n < 10);
    }
    n
}

fn scenario(unix: bool) {
    let w = World::new(unix);
    let direct = w.sim.tcti();
    w.make_store("a", "ssh", "laptop");
    w.make_store("b", "two", "other");
    let keys_of = |store: &str| {
        let mut c = Command::new("ssh-keygen");
        c.arg("-D").arg(module_path());
        with_tpm(&mut c, &w.tcti(), &w.store(store), &w.ap);
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    let sshd = Sshd::start(&format!("{}{}", keys_of("a"), keys_of("b")));

    // The first agent logs in at ssh-add -s and keeps the module loaded.
    let agent = w.agent("a");
    agent_login(&sshd, &agent, "agent, first login");
    assert_eq!(
        askpass_calls(&w.apdir).len(),
        1,
        "one PIN prompt for ssh-add"
    );

    // While it is idle: 10 ssh -I logins.
    let m = module_path();
    let mut times = Vec::new();
    for i in 0..10 {
        let (out, took) = timed(|| {
            let mut c = sshd.ssh(&["-I", &m.to_string_lossy()], None);
            with_tpm(&mut c, &w.tcti(), &w.store("a"), &w.ap_i);
            c.output().expect("ssh -I")
        });
        assert!(
            logged_in(&out),
            "ssh -I login {i} with the agent idle failed after {took:?}: {}",
            stderr(&out)
        );
        assert!(took < BOUND, "ssh -I login {i}: {took:?}");
        times.push(took);
    }
    stats(
        "ssh -I logins with an idle agent holding the module",
        &times,
    );

    // 10 tpmkey sign runs.
    let msg = w.dir.path().join("msg");
    std::fs::write(&msg, b"signed while an agent holds the module").unwrap();
    let msg = msg.to_string_lossy().into_owned();
    let mut times = Vec::new();
    for i in 0..10 {
        let (_, took) = timed(|| {
            w.tk(
                "a",
                &[
                    "sign",
                    "--token",
                    "ssh",
                    "--label",
                    "laptop",
                    "--userpin",
                    "1234",
                    "--in",
                    &msg,
                ],
            )
        });
        assert!(took < BOUND, "tpmkey sign {i}: {took:?}");
        times.push(took);
    }
    stats(
        "tpmkey sign runs with an idle agent holding the module",
        &times,
    );

    // A second module user, long-lived too: another agent with its own store.
    let agent2 = w.agent("b");
    agent_login(&sshd, &agent2, "second agent");

    // The first agent still signs, with TPM2_Sign alone.
    let cmds = w.commands_during(|| {
        agent_login(&sshd, &agent, "agent after the others");
    });
    if let Some(cmds) = cmds {
        println!("agent login in the steady state: {cmds:x?}");
        assert_eq!(cmds, vec![(SIGN, 0)], "one TPM command per signature");
    }

    // Another program flushes everything, without a word.
    let flushed = flush_everything(&direct);
    assert!(flushed >= 4, "both agents' keys and sessions: {flushed}");
    let cmds = w.commands_during(|| {
        agent_login(&sshd, &agent, "agent after a foreign flush");
    });
    if let Some(cmds) = cmds {
        println!("agent login after a foreign flush: {cmds:x?}");
        assert_eq!(cmds.last(), Some(&(SIGN, 0)), "{cmds:x?}");
        assert!(
            cmds.contains(&(LOAD, 0)) && cmds.contains(&(START_AUTH_SESSION, 0)),
            "key loaded and session started again: {cmds:x?}"
        );
        assert!(
            !cmds
                .iter()
                .any(|(_, rc)| rc & 0xbf == 0x8e || rc & 0xbf == 0xa2),
            "no refused authorization: {cmds:x?}"
        );
    }
    // The first agent's key is the only object loaded now: its handle.
    let transient = |h: &u32| h >> 24 == 0x80;
    let first_key: Vec<u32> = common::loaded_handles(&direct)
        .into_iter()
        .filter(transient)
        .collect();
    assert_eq!(first_key.len(), 1, "{first_key:x?}");
    let first_key = first_key[0];
    // The first agent bumped the flush epoch when it found its handles gone: the
    // second does not try its own old handle numbers (one of them may hold the
    // first agent's key by now), it makes everything again.
    let cmds = w.commands_during(|| {
        agent_login(&sshd, &agent2, "second agent after a foreign flush");
    });
    if let Some(cmds) = cmds {
        println!("second agent login after a foreign flush: {cmds:x?}");
        assert_eq!(
            cmds,
            vec![(START_AUTH_SESSION, 0), (LOAD, 0), (SIGN, 0)],
            "the second agent tried a handle kept from before"
        );
    }

    // The TPM fills up; tpmkey's own recovery flushes what it did not load, which
    // includes both agents' keys and sessions, and bumps the flush epoch.
    // The epoch of the TPM as every process here names it (the proxy on TCP).
    let epoch = w
        .tcti()
        .parse::<Tcti>()
        .unwrap()
        .flush_epoch()
        .expect("epoch file");
    let before = epoch.read();
    println!("TPM holds before: {:x?}", common::loaded_handles(&direct));
    let leaked = fill_object_slots(&direct);
    println!("TPM filled with {leaked} more objects");
    w.tk(
        "a",
        &[
            "sign",
            "--token",
            "ssh",
            "--label",
            "laptop",
            "--userpin",
            "1234",
            "--in",
            &msg,
        ],
    );
    println!(
        "after the stale flush: TPM holds {:x?}",
        common::loaded_handles(&direct)
    );
    assert_ne!(
        epoch.read(),
        before,
        "the stale flush did not bump the epoch"
    );
    // The second agent loads its key first, at the handle number the first
    // agent's key had: every other object slot is taken for the moment, but the
    // lowest, which the persistent SRK occupies while TPM2_Load uses it (libtpms
    // loads a persistent object into a free slot for the command).
    let mut filler = Vec::new();
    fill_object_slots(&direct);
    for h in common::loaded_handles(&direct)
        .into_iter()
        .filter(transient)
    {
        if h == first_key || h == 0x8000_0000 {
            flush_handle(&direct, h);
        } else {
            filler.push(h);
        }
    }
    agent_login(&sshd, &agent2, "second agent after a stale flush");
    for h in filler {
        flush_handle(&direct, h);
    }
    assert_eq!(
        common::loaded_handles(&direct)
            .into_iter()
            .filter(transient)
            .collect::<Vec<_>>(),
        vec![first_key],
        "the second agent's key should now be at {first_key:#x}"
    );
    // The first agent must not try that handle: it sees the new epoch and makes
    // everything again.
    let cmds = w.commands_during(|| {
        agent_login(&sshd, &agent, "agent after a stale flush");
    });
    if let Some(cmds) = cmds {
        println!("agent login after a stale flush: {cmds:x?}");
        assert_eq!(
            cmds,
            vec![(START_AUTH_SESSION, 0), (LOAD, 0), (SIGN, 0)],
            "everything made again, no handle kept from before tried"
        );
    }
    assert_eq!(
        w.lockout_counter(),
        0,
        "the TPM counted a failed authorization"
    );
    assert_eq!(
        askpass_calls(&w.apdir).len(),
        2,
        "PINs asked only at ssh-add -s"
    );
    drop(agent2);
    drop(agent);
}

#[test]
fn an_idle_agent_shares_swtpm_over_tcp() {
    scenario(false);
}

#[test]
fn an_idle_agent_shares_swtpm_over_a_unix_socket() {
    scenario(true);
}

/// The holder's side on a unix socket, through the library calls the module makes
/// (`Connected`): between operations it lets go of swtpm, so another process gets
/// through at once; each signature is then one TPM command (TPM2_Sign), counted by
/// the holder's own connection.
#[test]
fn a_released_holder_signs_with_one_command_and_lets_others_in() {
    let w = World::new(true);
    w.make_store("a", "ssh", "laptop");
    let app = tpmkey::app::App::open(Some(w.store("a")), w.tcti().parse().unwrap()).unwrap();
    let mut c = app.connect_pinned().unwrap();
    let secret = app.token_secret(&mut c, "ssh", b"1234").unwrap();
    let (keys, _) = app.store.read_keys("ssh").unwrap();
    let k = &keys[0];
    let wrapped = tpmkey::app::unwrap_record(&k.blob, &w.store("a")).unwrap();
    let id = tpmkey::store::from_hex(&k.id, &w.store("a")).unwrap();
    let auth = tpmkey::token::key_auth(&secret, &id);
    let digest = [0x5a; 32];
    let (ecdsa, sha256) = (
        tpm_commands::constants::TpmAlgId::ECDSA,
        tpm_commands::constants::TpmAlgId::SHA256,
    );
    c.sign(&wrapped, &auth, &digest, ecdsa, sha256).unwrap();
    for i in 0..10 {
        c.release();
        let (ok, _, err) = common::run_tpmkey_in(&w.tcti(), &w.store("a"), &["random", "8"]);
        assert!(ok, "another process while the holder is idle ({i}): {err}");
        let before = c.tpm.commands_sent();
        c.sign(&wrapped, &auth, &digest, ecdsa, sha256).unwrap();
        assert_eq!(c.tpm.commands_sent() - before, 1, "signature {i}");
    }
    c.close();
    assert!(common::loaded_handles(&w.sim.tcti()).is_empty());
}
