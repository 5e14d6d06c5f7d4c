//! [`Tpm`]: the one place where commands are framed, sessions applied, bytes sent,
//! retries done and responses verified and parsed.

use std::time::Duration;

use rand_core::{OsRng, RngCore};
use tpm_commands::attributes::TpmaSession;
use tpm_commands::codec::Reader;
use tpm_commands::commands::{Command, FlushContext, Response};
use tpm_commands::constants::{ht, TpmCc, TpmHandle, TpmSt, TpmSu};
use tpm_commands::frame::{self, TpmsAuthCommand};
use tpm_commands::rc::ResponseCode;
use zeroize::Zeroizing;

use crate::crypto::session as sc;
use crate::error::{Error, Result};
use crate::session::AuthSession;
use crate::tcti::Tcti;
use crate::transport::Transport;

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
    /// No resource manager and no other client: stale handles may be flushed.
    exclusive: bool,
}

impl core::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tpm")
            .field("tcti", &self.tcti)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
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

    /// Connects through `tcti`.
    ///
    /// # Errors
    /// The TPM cannot be reached.
    pub fn open(tcti: &Tcti) -> Result<Tpm> {
        let transport = tcti.open()?;
        Ok(Tpm {
            transport,
            tcti: Some(tcti.clone()),
            owned: Vec::new(),
            commands_sent: 0,
            exclusive: !tcti.has_resource_manager(),
        })
    }

    /// Wraps an already open transport.
    pub fn with_transport(transport: Box<dyn Transport>) -> Tpm {
        Tpm {
            transport,
            tcti: None,
            owned: Vec::new(),
            commands_sent: 0,
            exclusive: false,
        }
    }

    /// The TCTI this connection was opened with.
    pub fn tcti(&self) -> Option<&Tcti> {
        self.tcti.as_ref()
    }

    /// Number of command frames sent so far (retries included).
    pub fn commands_sent(&self) -> u64 {
        self.commands_sent
    }

    /// Sends one frame, resending it unchanged on TPM_RC_RETRY, TPM_RC_YIELDED and
    /// TPM_RC_TESTING (Part 1 §18.4; the TPM did not consume the session), and
    /// starting the TPM once if it answers TPM_RC_INITIALIZE.
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
            self.commands_sent += 1;
            let response = self.transport.transact(command)?;
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
                        && self.exclusive =>
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

    /// Flushes transient objects and sessions this connection does not own. Only
    /// used where nobody else can be using the TPM at the same time (`/dev/tpm0`
    /// is exclusive, a simulator socket serves one client): whatever is loaded and
    /// not ours was left by a process that died. Returns how many were flushed.
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
        for h in &stale {
            self.run(&FlushContext { flush_handle: *h })?;
        }
        Ok(stale.len())
    }

    /// TPM2_Startup(CLEAR), for simulators started without it.
    fn startup(&mut self) -> Result<()> {
        let cmd = frame::build_command(TpmCc::STARTUP, &[], &[], &TpmSu::CLEAR.0.to_be_bytes())?;
        self.commands_sent += 1;
        let rsp = self.transport.transact(&cmd)?;
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

    /// Runs a command with sessions (Part 1 §18, §19.6, §21).
    ///
    /// `names` are the Names of every handle of the handle area, in order (for
    /// cpHash; permanent handles are their own Name). `auths` hold one entry per
    /// handle that needs an authorization, in order, then any [`Auth::Extra`]
    /// sessions. The response HMAC of every session is verified, in constant time,
    /// before any response parameter is decrypted or parsed.
    ///
    /// # Errors
    /// [`Error::Usage`] when names or auths do not fit the command; [`Error::Tpm`]
    /// with the decoded response code; [`Error::Integrity`] when a response HMAC does
    /// not verify or sessions are missing; [`Error::Malformed`].
    pub fn execute<C: Command>(
        &mut self,
        cmd: &C,
        names: &[&[u8]],
        auths: &mut [Auth<'_>],
    ) -> Result<C::Response> {
        let handles = cmd.handles();
        if names.len() != handles.len() {
            return Err(Error::Usage(format!(
                "{}: {} handle names given, {} needed",
                C::NAME,
                names.len(),
                handles.len()
            )));
        }
        let auth_count = C::auth_count();
        let authorizing = auths
            .iter()
            .take_while(|a| !matches!(a, Auth::Extra(_)))
            .count();
        if authorizing != auth_count || auths.len() > frame::MAX_SESSIONS {
            return Err(Error::Usage(format!(
                "{}: {} authorizations given, {} needed (then at most {} extra sessions)",
                C::NAME,
                authorizing,
                auth_count,
                frame::MAX_SESSIONS - auth_count
            )));
        }
        if auths
            .iter()
            .any(|a| session_ref(a).is_some_and(AuthSession::is_broken))
        {
            return Err(Error::Usage(format!(
                "{}: a session given failed an integrity check earlier and is out of step with the TPM; start a new session",
                C::NAME
            )));
        }
        // The entity (Name, authValue) each session authorizes; None for extras.
        let entity_names: Vec<Option<&[u8]>> = (0..auths.len())
            .map(|i| {
                if i < auth_count {
                    names.get(i).copied()
                } else {
                    None
                }
            })
            .collect();

        let mut params = Zeroizing::new(cmd.params_bytes()?);

        // Fresh nonces for every session.
        for a in auths.iter_mut() {
            if let Some(s) = session_of(a) {
                let mut nonce = vec![0u8; s.hash().digest_size()];
                OsRng.fill_bytes(&mut nonce);
                s.roll_caller_nonce(nonce);
            }
        }

        let decrypt_idx = find_attr(auths, TpmaSession::DECRYPT, C::NAME)?;
        let encrypt_idx = find_attr(auths, TpmaSession::ENCRYPT, C::NAME)?;
        if decrypt_idx.is_some() && !C::DECRYPTABLE {
            return Err(Error::Usage(format!(
                "{}: its first parameter is not a TPM2B; it cannot be encrypted",
                C::NAME
            )));
        }
        if encrypt_idx.is_some() && !<C::Response as Response>::ENCRYPTABLE {
            return Err(Error::Usage(format!(
                "{}: its first response parameter is not a TPM2B; it cannot be encrypted",
                C::NAME
            )));
        }

        // Command parameter encryption, before cpHash (Part 1 §21.1).
        if let Some(i) = decrypt_idx {
            let entity = entity_of(auths, &entity_names, i);
            if let Some(s) = auths.get(i).and_then(session_ref) {
                if let Some(payload) = first_tpm2b_payload(&mut params) {
                    s.encrypt_command_param(as_ref(&entity), payload);
                }
            }
        }

        // Authorization area.
        let decrypt_nonce = extra_nonce(auths, decrypt_idx);
        let encrypt_nonce = if encrypt_idx == decrypt_idx {
            None
        } else {
            extra_nonce(auths, encrypt_idx)
        };
        let mut area = Vec::with_capacity(auths.len());
        for (i, a) in auths.iter().enumerate() {
            match a {
                Auth::EmptyPassword => area.push(TpmsAuthCommand {
                    session_handle: TpmHandle::RS_PW,
                    session_attributes: TpmaSession::CONTINUE_SESSION,
                    ..Default::default()
                }),
                Auth::Session(s, _) | Auth::Extra(s) => {
                    let cp = sc::cp_hash(s.hash(), C::CC.0, names, &params);
                    let (dn, en) = if i == 0 && i < auth_count {
                        (decrypt_nonce.as_deref(), encrypt_nonce.as_deref())
                    } else {
                        (None, None)
                    };
                    let entity = entity_of(auths, &entity_names, i);
                    area.push(s.command_auth(as_ref(&entity), &cp, dn, en)?);
                }
            }
        }

        let command = Zeroizing::new(frame::build_command(C::CC, &handles, &area, &params)?);
        let response = self.transact(&command)?;
        let parsed = frame::parse_response(&response, <C::Response as Response>::HANDLE_COUNT)
            .map_err(|source| Error::Malformed { cc: C::CC, source })?;
        if parsed.rc != 0 {
            return Err(Error::Tpm {
                cc: C::CC,
                rc: ResponseCode(parsed.rc),
            });
        }

        // The TPM carried the command out: the objects and sessions the response
        // names exist now. Should the response fail its checks below, flush them at
        // once, or they would hold a slot of a TPM with no resource manager for
        // good (they were never tracked).
        let created = self.untracked(parsed.handles);
        let checked = (|| {
            // Verify every session's response HMAC before touching the parameters.
            if auths.is_empty() {
                if parsed.tag != TpmSt::NO_SESSIONS {
                    return Err(Error::Integrity {
                        cc: C::CC,
                        what: "sessions in the response to a command with none",
                    });
                }
            } else if parsed.tag != TpmSt::SESSIONS || parsed.sessions.len() != auths.len() {
                return Err(Error::Integrity {
                    cc: C::CC,
                    what: "response session area missing or of the wrong length",
                });
            }
            for (i, reply) in parsed.sessions.iter().enumerate() {
                let entity = entity_of(auths, &entity_names, i);
                match auths.get_mut(i) {
                    Some(Auth::EmptyPassword)
                        if !reply.nonce.is_empty() || !reply.hmac.is_empty() =>
                    {
                        return Err(Error::Integrity {
                            cc: C::CC,
                            what: "password session answered with a nonce or HMAC",
                        });
                    }
                    Some(Auth::EmptyPassword) => {}
                    Some(Auth::Session(s, _)) | Some(Auth::Extra(s)) => {
                        let rp = sc::rp_hash(s.hash(), 0, C::CC.0, parsed.params);
                        let sent = s.attributes();
                        if reply.session_attributes.contains(TpmaSession::DECRYPT)
                            != sent.contains(TpmaSession::DECRYPT)
                            || reply.session_attributes.contains(TpmaSession::ENCRYPT)
                                != sent.contains(TpmaSession::ENCRYPT)
                            || !s.accept_response(as_ref(&entity), &rp, reply)
                        {
                            s.mark_broken();
                            return Err(Error::Integrity {
                                cc: C::CC,
                                what: "response HMAC does not verify",
                            });
                        }
                    }
                    None => {}
                }
            }

            let mut rparams = Zeroizing::new(parsed.params.to_vec());
            if let Some(i) = encrypt_idx {
                let entity = entity_of(auths, &entity_names, i);
                if let Some(s) = auths.get(i).and_then(session_ref) {
                    if let Some(payload) = first_tpm2b_payload(&mut rparams) {
                        s.decrypt_response_param(as_ref(&entity), payload);
                    }
                }
            }
            let mut hr = Reader::new(parsed.handles);
            let mut pr = Reader::new(&rparams);
            let out = <C::Response as Response>::unmarshal_areas(&mut hr, &mut pr)
                .map_err(|source| Error::Malformed { cc: C::CC, source })?;

            Ok(out)
        })();
        let out = match checked {
            Ok(out) => out,
            Err(e) => {
                self.flush_untracked(&created);
                return Err(e);
            }
        };
        self.track_handles(C::CC, cmd, parsed.handles, auths);
        Ok(out)
    }

    /// The objects and sessions in a response's handle area not tracked yet.
    /// (This and the next are not generic: one copy, not one per command type.)
    #[inline(never)]
    fn untracked(&self, rhandles: &[u8]) -> Vec<TpmHandle> {
        new_handles(rhandles)
            .filter(|h| !self.owned.contains(h))
            .collect()
    }

    /// Flushes handles that are not tracked, ignoring errors.
    #[inline(never)]
    fn flush_untracked(&mut self, handles: &[TpmHandle]) {
        for h in handles {
            let _ = self.run(&FlushContext { flush_handle: *h });
        }
    }

    /// Keeps the list of transient objects and sessions to flush up to date.
    fn track_handles<C: Command>(
        &mut self,
        cc: TpmCc,
        cmd: &C,
        rhandles: &[u8],
        auths: &[Auth<'_>],
    ) {
        for h in new_handles(rhandles) {
            if !self.owned.contains(&h) {
                self.owned.push(h);
            }
        }
        if cc == TpmCc::FLUSH_CONTEXT {
            if let Ok(p) = cmd.params_bytes() {
                if let Ok(b) = <[u8; 4]>::try_from(p.as_slice()) {
                    let h = TpmHandle(u32::from_be_bytes(b));
                    self.owned.retain(|o| *o != h);
                }
            }
        }
        for a in auths {
            if let Some(s) = session_ref(a) {
                if !s.is_open() {
                    self.owned.retain(|o| *o != s.handle());
                }
            }
        }
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

    /// Stops tracking `handle` (it was made persistent or handed to someone else).
    pub fn forget(&mut self, handle: TpmHandle) {
        self.owned.retain(|o| *o != handle);
    }

    /// The transient objects and sessions this connection still owns.
    pub fn owned_handles(&self) -> &[TpmHandle] {
        &self.owned
    }
}

impl Tpm {
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

fn session_of<'s>(a: &'s mut Auth<'_>) -> Option<&'s mut AuthSession> {
    match a {
        Auth::Session(s, _) | Auth::Extra(s) => Some(s),
        Auth::EmptyPassword => None,
    }
}

fn session_ref<'s>(a: &'s Auth<'_>) -> Option<&'s AuthSession> {
    match a {
        Auth::Session(s, _) | Auth::Extra(s) => Some(s),
        Auth::EmptyPassword => None,
    }
}

/// The (Name, authValue) of the entity session `i` authorizes, copied out so the
/// session itself can be borrowed mutably afterwards.
fn entity_of(auths: &[Auth<'_>], names: &[Option<&[u8]>], i: usize) -> Option<Entity> {
    match (auths.get(i), names.get(i).copied().flatten()) {
        (Some(Auth::Session(_, auth)), Some(name)) => {
            Some((name.to_vec(), Zeroizing::new(auth.to_vec())))
        }
        _ => None,
    }
}

type Entity = (Vec<u8>, Zeroizing<Vec<u8>>);

fn as_ref(e: &Option<Entity>) -> Option<(&[u8], &[u8])> {
    e.as_ref().map(|(n, a)| (n.as_slice(), a.as_slice()))
}

/// The index of the session carrying `attr`; more than one is an error (Part 1 §21.1).
fn find_attr(auths: &[Auth<'_>], attr: TpmaSession, cmd: &str) -> Result<Option<usize>> {
    let mut found = None;
    for (i, a) in auths.iter().enumerate() {
        if session_ref(a).is_some_and(|s| s.attributes().contains(attr)) {
            if found.is_some() {
                return Err(Error::Usage(format!(
                    "{cmd}: more than one session with {attr:?}"
                )));
            }
            found = Some(i);
        }
    }
    Ok(found)
}

/// nonceTPM of the decrypt/encrypt session when it is not the first session (Part 1 §19.6.5).
fn extra_nonce(auths: &[Auth<'_>], idx: Option<usize>) -> Option<Vec<u8>> {
    match idx {
        Some(i) if i > 0 => auths
            .get(i)
            .and_then(session_ref)
            .map(|s| s.nonce_tpm().to_vec()),
        _ => None,
    }
}

/// The payload bytes of the leading TPM2B of a parameter area (its size stays clear).
fn first_tpm2b_payload(params: &mut [u8]) -> Option<&mut [u8]> {
    let (size, rest) = params.split_first_chunk_mut::<2>()?;
    let n = usize::from(u16::from_be_bytes(*size));
    rest.get_mut(..n)
}
