//! [`Tpm`]: the one place where commands are framed, sessions applied, bytes sent,
//! retries done and responses verified and parsed ([`Tpm::execute`], in
//! `execute.rs`); sessions are started and policy commands run here too
//! (`sessions.rs`, `policy.rs`), on session state that [`crate::session`] keeps.
//!
//! # Sharing a TPM that has no resource manager
//!
//! swtpm, the Microsoft simulator and `/dev/tpm0` serve one client at a time. A
//! long-lived user (the PKCS#11 module in ssh-agent) calls [`Tpm::release`] when
//! an operation is over: the connection (or the device) is closed, and the next
//! command opens it again ([`Tpm::acquire`], waiting within
//! [`crate::transport::Limits::busy`] for a device another process holds). What
//! it left loaded stays in the TPM and stays its own, except when another process
//! flushed it:
//!
//! - tpmkey flushes what it did not load only when the TPM is full (the stale
//!   handles of dead processes, see [`Tpm::transact`]), and bumps the TPM's
//!   [`FlushEpoch`] first. On coming back, a process that sees a new epoch forgets
//!   all it left loaded, without flushing it, and [`Tpm::generation`] changes:
//!   its users load keys and start sessions again (no PIN is needed for either).
//! - Another program may flush handles without a word. A command naming such a
//!   handle then fails: an object gone is TPM_RC_REFERENCE_H0 (libtpms:
//!   TPM_RC_VALUE or TPM_RC_HANDLE on that handle), a session gone
//!   TPM_RC_REFERENCE_S0. [`handle_gone`] tells these apart; the caller then calls
//!   [`Tpm::flushed_by_another`] — which forgets all it loaded and bumps the epoch
//!   for the other tpmkey processes, whose handles went the same way — loads again
//!   and retries. A handle that was flushed and given to another object is refused
//!   for every authorized use: its Name is in cpHash and its authValue in the HMAC
//!   key (Part 1 §18.7, §19.6.5), so a signature with a key whose Name is not the
//!   one loaded is never made.
//!
//! While one process is the only user, none of this costs a TPM command.

mod execute;
mod policy;
mod sessions;

use std::time::Duration;

use tpm_commands::commands::{Command, FlushContext};
use tpm_commands::constants::{ht, TpmCc, TpmHandle, TpmSu};
use tpm_commands::frame;
use tpm_commands::rc::{RcIndex, ResponseCode};

use crate::error::{Error, Result};
use crate::session::AuthSession;
use crate::tcti::Tcti;
use crate::transport::{FlushEpoch, Transport};

/// How many times a command answered with TPM_RC_RETRY, TPM_RC_YIELDED or
/// TPM_RC_TESTING is resent unchanged before giving up.
const MAX_RETRIES: u32 = 12;

/// What authorizes one handle of a command, or rides along for encryption.
pub enum Auth<'a> {
    /// TPM_RS_PW: the authValue travels in clear. Only for empty authValues (the
    /// owner hierarchy of an unconfigured TPM, a no-PIN object); anything secret goes
    /// through [`Auth::Session`].
    EmptyPassword,
    /// An HMAC or policy session authorizing the handle, with the entity's authValue.
    Session(&'a mut AuthSession, &'a [u8]),
    /// A session that authorizes no handle: parameter encryption or audit only.
    /// Must come after the sessions that authorize handles.
    Extra(&'a mut AuthSession),
}

/// A connection to one TPM.
pub struct Tpm {
    transport: Box<dyn Transport>,
    tcti: Option<Tcti>,
    /// Transient objects and sessions this process created and has not flushed;
    /// flushed on drop, so that a TPM with no resource manager is not left full.
    owned: Vec<TpmHandle>,
    commands_sent: u64,
    /// No resource manager: what is loaded and not ours belongs to a process that
    /// died or is idle, and may be flushed when the TPM is full (after the epoch
    /// is bumped).
    raw: bool,
    /// The flush epoch shared with the other users of a raw TPM.
    epoch: Option<FlushEpoch>,
    /// Its value when this connection last came to the TPM.
    seen_epoch: u64,
    /// The transport was released: the next command opens it again.
    released: bool,
    /// Changes whenever what this connection left loaded may be gone.
    generation: u64,
}

impl core::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tpm")
            .field("tcti", &self.tcti)
            .field("owned", &self.owned)
            .field("released", &self.released)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// True when `e` says that a handle of the command (`handle` = its index, 1 for the
/// first) or its session `session` (1 for the first) is not loaded: flushed by
/// another process. The forms TPMs use: TPM_RC_REFERENCE_H0+n / _S0+n (Part 2
/// §6.6.3), and TPM_RC_HANDLE or TPM_RC_VALUE on that handle (libtpms answers a
/// transient handle that is not loaded with TPM_RC_VALUE).
pub fn handle_gone(e: &Error, handle: Option<u8>, session: Option<u8>) -> bool {
    let Some(rc) = e.response_code() else {
        return false;
    };
    let warn = rc.0 & 0xFFF;
    if let Some(h) = handle {
        if warn == ResponseCode::REFERENCE_H0.0 + u32::from(h.saturating_sub(1)) {
            return true;
        }
        if matches!(rc.base(), ResponseCode::HANDLE | ResponseCode::VALUE)
            && rc.index() == RcIndex::Handle(h)
        {
            return true;
        }
    }
    if let Some(s) = session {
        if warn == ResponseCode::REFERENCE_S0.0 + u32::from(s.saturating_sub(1)) {
            return true;
        }
    }
    false
}

impl Tpm {
    /// Connects to the TPM the environment names (`TPMKEY_TCTI`, then
    /// `TPM2TOOLS_TCTI`, then `device:/dev/tpmrm0`).
    ///
    /// # Errors
    /// A bad TCTI string, or the TPM cannot be reached.
    pub fn from_env() -> Result<Tpm> {
        let tcti = Tcti::from_env().map_err(|e| Error::Usage(e.to_string()))?;
        Tpm::open(&tcti)
    }

    /// Connects through `tcti`, with the bounds of `TPMKEY_TIMEOUT` and
    /// `TPMKEY_BUSY_TIMEOUT`.
    ///
    /// # Errors
    /// The TPM cannot be reached, or is busy past the bound.
    pub fn open(tcti: &Tcti) -> Result<Tpm> {
        let transport = tcti.open()?;
        let epoch = tcti.flush_epoch();
        let seen_epoch = epoch.as_ref().map_or(0, FlushEpoch::read);
        Ok(Tpm {
            transport,
            tcti: Some(tcti.clone()),
            owned: Vec::new(),
            commands_sent: 0,
            raw: !tcti.has_resource_manager(),
            epoch,
            seen_epoch,
            released: false,
            generation: 0,
        })
    }

    /// Wraps an already open transport.
    pub fn with_transport(transport: Box<dyn Transport>) -> Tpm {
        Tpm {
            transport,
            tcti: None,
            owned: Vec::new(),
            commands_sent: 0,
            raw: false,
            epoch: None,
            seen_epoch: 0,
            released: false,
            generation: 0,
        }
    }

    /// The TCTI this connection was opened with.
    pub fn tcti(&self) -> Option<&Tcti> {
        self.tcti.as_ref()
    }

    /// True when the TPM is shared through a resource manager (`/dev/tpmrm0`), or
    /// the transport was given ready-made; false for a raw TPM (`/dev/tpm0`, swtpm,
    /// the simulator), whose few object slots every process shares.
    pub fn has_resource_manager(&self) -> bool {
        !self.raw
    }

    /// Number of command frames sent so far (retries included).
    pub fn commands_sent(&self) -> u64 {
        self.commands_sent
    }

    /// Lets other processes at a TPM that serves one client at a time (swtpm, the
    /// simulator, `/dev/tpm0`) until the next command: the connection or device is
    /// closed; what was loaded stays. Nothing happens through a resource manager.
    pub fn release(&mut self) {
        if self.transport.release() {
            self.released = true;
        }
    }

    /// Comes back to the TPM after [`Tpm::release`] (or a transport failure): opens
    /// the connection again and reads the flush epoch; when another process bumped
    /// it, everything this connection left loaded is forgotten (not flushed) and
    /// [`Tpm::generation`] changes. Every command does this first; callers that keep
    /// handles across operations call it before deciding whether to use them.
    ///
    /// # Errors
    /// The TPM cannot be reached, or is busy past the bound.
    pub fn acquire(&mut self) -> Result<()> {
        if !self.released {
            return Ok(());
        }
        self.transport.acquire()?;
        self.released = false;
        if let Some(e) = &self.epoch {
            let now = e.read();
            if now != self.seen_epoch {
                self.seen_epoch = now;
                self.lose_handles();
            }
        }
        Ok(())
    }

    /// Forgets every transient object and session this connection loaded: another
    /// process may have flushed them, and their handles may name its objects now.
    pub fn lose_handles(&mut self) {
        self.owned.clear();
        self.generation += 1;
    }

    /// Records that another process flushed what this connection loaded (a handle
    /// it kept is gone, or names another object): everything it loaded is
    /// forgotten ([`Tpm::lose_handles`]), and the flush epoch is bumped, so that
    /// the other users of the TPM, whose handles went the same way, load theirs
    /// again too instead of trying handle numbers that may be someone else's by
    /// then.
    pub fn flushed_by_another(&mut self) {
        if let Some(n) = self.epoch.as_ref().and_then(FlushEpoch::bump) {
            self.seen_epoch = n;
        }
        self.lose_handles();
    }

    /// A number that changes whenever the objects and sessions this connection left
    /// loaded may be gone ([`Tpm::acquire`] saw a new flush epoch, or
    /// [`Tpm::lose_handles`] was called). Keep it with a handle kept across
    /// operations, and load again when it differs.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Sends one frame, resending it unchanged on TPM_RC_RETRY, TPM_RC_YIELDED and
    /// TPM_RC_TESTING (Part 1 §18.4; the TPM did not consume the session), and
    /// starting the TPM once if it answers TPM_RC_INITIALIZE. On a TPM without a
    /// resource manager that answers TPM_RC_OBJECT_MEMORY or TPM_RC_SESSION_MEMORY,
    /// flushes the handles it does not own once and resends.
    ///
    /// # Errors
    /// Transport failures. TPM error codes are returned in the frame, not as errors.
    pub fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        let mut delay = Duration::from_millis(1);
        let mut started = false;
        let mut flushed_stale = false;
        let mut tries = 0;
        // Shown once the TPM has kept us waiting for more than a blink.
        let mut busy: Option<crate::progress::Step> = None;
        loop {
            let response = self.send(command)?;
            let rc = frame::Header::parse(&response)
                .map(|h| ResponseCode(h.code))
                .ok();
            let cc = frame::Header::parse(command).map(|h| TpmCc(h.code)).ok();
            match rc {
                Some(rc) if rc.is_retry() && tries < MAX_RETRIES => {
                    tries += 1;
                    if delay >= Duration::from_millis(64) && busy.is_none() {
                        busy = Some(crate::progress::step(|| {
                            format!("the TPM is busy ({rc}); waiting for it")
                        }));
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Some(rc)
                    if rc == ResponseCode::INITIALIZE && !started && cc != Some(TpmCc::STARTUP) =>
                {
                    started = true;
                    self.startup()?;
                }
                Some(rc)
                    if (rc == ResponseCode::OBJECT_MEMORY
                        || rc == ResponseCode::SESSION_MEMORY)
                        && !flushed_stale
                        && self.raw =>
                {
                    flushed_stale = true;
                    if self.flush_stale()? == 0 {
                        return Ok(response);
                    }
                }
                _ => return Ok(response),
            }
        }
    }

    /// One frame to the TPM and its response back, coming back to the TPM first
    /// when it was released. A transport failure counts as a release: the next
    /// command connects again and reads the epoch.
    fn send(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        self.acquire()?;
        self.commands_sent += 1;
        match self.transport.transact(command) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.released = true;
                Err(e.into())
            }
        }
    }

    /// Flushes transient objects and sessions this connection does not own, on a
    /// TPM without a resource manager that is full: what is loaded and not ours
    /// was left by a process that died, or by one that is idle and will load it
    /// again. The flush epoch is bumped first, so that idle processes know. Returns
    /// how many were flushed.
    fn flush_stale(&mut self) -> Result<usize> {
        use tpm_commands::commands::GetCapability;
        use tpm_commands::constants::TpmCap;
        use tpm_commands::structures::TpmsCapabilityData;
        let mut stale = Vec::new();
        for first in [0x8000_0000u32, 0x0200_0000, 0x0300_0000] {
            let rsp = self.run(&GetCapability {
                capability: TpmCap::HANDLES,
                property: first,
                property_count: 64,
            })?;
            if let TpmsCapabilityData::Handles(list) = rsp.capability_data {
                stale.extend(
                    list.0
                        .into_iter()
                        .filter(|h| h.0 >> 24 == first >> 24 && !self.owned.contains(h)),
                );
            }
        }
        if !stale.is_empty() {
            if let Some(n) = self.epoch.as_ref().and_then(FlushEpoch::bump) {
                self.seen_epoch = n;
            }
        }
        for h in &stale {
            self.run(&FlushContext { flush_handle: *h })?;
        }
        Ok(stale.len())
    }

    /// TPM2_Startup(CLEAR), for simulators started without it.
    fn startup(&mut self) -> Result<()> {
        let cmd = frame::build_command(TpmCc::STARTUP, &[], &[], &TpmSu::CLEAR.0.to_be_bytes())?;
        let rsp = self.send(&cmd)?;
        let rc = frame::Header::parse(&rsp)
            .map_err(|source| Error::Malformed {
                cc: TpmCc::STARTUP,
                source,
            })?
            .code;
        if rc != 0 && ResponseCode(rc) != ResponseCode::INITIALIZE {
            return Err(Error::Tpm {
                cc: TpmCc::STARTUP,
                rc: ResponseCode(rc),
            });
        }
        Ok(())
    }

    /// Runs a command with no sessions.
    ///
    /// # Errors
    /// Transport, TPM or parsing errors.
    pub fn run<C: Command>(&mut self, cmd: &C) -> Result<C::Response> {
        let names: Vec<Vec<u8>> = cmd
            .handles()
            .iter()
            .map(|h| h.0.to_be_bytes().to_vec())
            .collect();
        let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        self.execute(cmd, &names, &mut [])
    }

    /// Flushes a transient object or session (Part 3 §28.4).
    ///
    /// # Errors
    /// Transport or TPM errors.
    pub fn flush(&mut self, handle: TpmHandle) -> Result<()> {
        self.run(&FlushContext {
            flush_handle: handle,
        })?;
        self.owned.retain(|o| *o != handle);
        Ok(())
    }

    /// Flushes a session and marks it closed.
    ///
    /// # Errors
    /// Transport or TPM errors.
    pub fn flush_session(&mut self, session: &mut AuthSession) -> Result<()> {
        if session.is_open() {
            self.flush(session.handle())?;
            session.mark_closed();
        }
        Ok(())
    }

    /// Stops tracking `handle` (it was made persistent, handed to someone else, or
    /// found flushed by another process).
    pub fn forget(&mut self, handle: TpmHandle) {
        self.owned.retain(|o| *o != handle);
    }

    /// True while `handle` is one this connection loaded and still tracks.
    pub fn owns(&self, handle: TpmHandle) -> bool {
        self.owned.contains(&handle)
    }

    /// The transient objects and sessions this connection still owns.
    pub fn owned_handles(&self) -> &[TpmHandle] {
        &self.owned
    }

    /// Flushes what this connection still owns and closes it (as dropping it does);
    /// returns how many command frames it sent in all.
    pub fn close(mut self) -> u64 {
        self.flush_owned();
        self.commands_sent
    }

    fn flush_owned(&mut self) {
        // The kernel resource manager flushes everything of a connection when its
        // file closes (Linux tpm2-space.c): flushing first would only cost commands.
        if self.tcti.as_ref().is_some_and(Tcti::has_resource_manager) {
            self.owned.clear();
            return;
        }
        if self.owned.is_empty() {
            return;
        }
        // Coming back reads the epoch: what another process flushed is not ours
        // to flush any more.
        if self.acquire().is_err() {
            return;
        }
        for h in std::mem::take(&mut self.owned).into_iter().rev() {
            let _ = self.run(&FlushContext { flush_handle: h });
        }
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        self.flush_owned();
    }
}

/// The transient objects and sessions in a response's handle area.
fn new_handles(rhandles: &[u8]) -> impl Iterator<Item = TpmHandle> + '_ {
    rhandles
        .chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok())
        .map(|b| TpmHandle(u32::from_be_bytes(b)))
        .filter(|h| {
            matches!(
                h.handle_type(),
                ht::TRANSIENT | ht::HMAC_SESSION | ht::POLICY_SESSION
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpm_err(rc: u32) -> Error {
        Error::Tpm {
            cc: TpmCc::SIGN,
            rc: ResponseCode(rc),
        }
    }

    #[test]
    fn handle_gone_knows_the_forms_tpms_use() {
        // libtpms: a transient handle not loaded is TPM_RC_VALUE on handle 1.
        assert!(handle_gone(&tpm_err(0x184), Some(1), None));
        // TPM_RC_HANDLE on handle 1, TPM_RC_REFERENCE_H0.
        assert!(handle_gone(&tpm_err(0x18b), Some(1), None));
        assert!(handle_gone(&tpm_err(0x910), Some(1), None));
        // A session gone: TPM_RC_REFERENCE_S0.
        assert!(handle_gone(&tpm_err(0x918), None, Some(1)));
        assert!(!handle_gone(&tpm_err(0x918), Some(1), None));
        // A wrong authorization is not a handle gone; nor is VALUE on a parameter.
        assert!(!handle_gone(&tpm_err(0x98e), Some(1), Some(1)));
        assert!(!handle_gone(&tpm_err(0x1c4), Some(1), Some(1)));
        assert!(!handle_gone(&Error::Usage("x".into()), Some(1), Some(1)));
    }
}
