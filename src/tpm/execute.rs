//! [`Tpm::execute`]: one command with its sessions, in named steps (Part 1 §18
//! frames, §19.6 authorization HMACs, §21 parameter encryption):
//!
//! 1. [`check_call`]: the names and sessions fit the command;
//! 2. [`Call::roll_nonces`]: a fresh nonceCaller for every session;
//! 3. [`Call::new`] finds the decrypt and encrypt sessions;
//! 4. [`Call::encrypt_command`]: the first command parameter, before cpHash;
//! 5. [`Call::authorization_area`]: cpHash and each session's HMAC;
//! 6. [`Tpm::send_command`]: frame, send (with retries), parse, response code;
//! 7. [`Call::verify_response`]: every session's response HMAC, in constant time,
//!    before any response parameter is used;
//! 8. [`Call::decrypt_response`]: the first response parameter;
//! 9. unmarshal, then [`Tpm::track_handles`].
//!
//! Only the first and last step know the command's type; the rest is one copy for
//! all commands.

use rand_core::{OsRng, RngCore};
use tpm_commands::attributes::TpmaSession;
use tpm_commands::codec::Reader;
use tpm_commands::commands::{Command, FlushContext, Response};
use tpm_commands::constants::{TpmCc, TpmHandle, TpmSt};
use tpm_commands::frame::{self, TpmsAuthCommand};
use tpm_commands::rc::ResponseCode;
use zeroize::Zeroizing;

use super::{new_handles, Auth, Tpm};
use crate::crypto::session as sc;
use crate::error::{Error, Result};
use crate::session::AuthSession;

/// What `execute` needs to know about a command type, as plain values.
struct Spec {
    cc: TpmCc,
    name: &'static str,
    auth_count: usize,
    decryptable: bool,
    encryptable: bool,
    response_handles: usize,
}

/// A response whose sessions verified, its first parameter decrypted.
struct Verified {
    handles: Vec<u8>,
    params: Zeroizing<Vec<u8>>,
    /// Objects and sessions the response names that were not tracked yet.
    created: Vec<TpmHandle>,
}

impl Tpm {
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
        let spec = Spec {
            cc: C::CC,
            name: C::NAME,
            auth_count: C::auth_count(),
            decryptable: C::DECRYPTABLE,
            encryptable: <C::Response as Response>::ENCRYPTABLE,
            response_handles: <C::Response as Response>::HANDLE_COUNT,
        };
        let handles = cmd.handles();
        let params = Zeroizing::new(cmd.params_bytes()?);
        // TPM2_FlushContext names its handle in a parameter.
        let flushed = (spec.cc == TpmCc::FLUSH_CONTEXT)
            .then(|| <[u8; 4]>::try_from(params.as_slice()).ok())
            .flatten()
            .map(|b| TpmHandle(u32::from_be_bytes(b)));
        let reply = self.exchange(&spec, &handles, names, auths, params)?;
        let mut hr = Reader::new(&reply.handles);
        let mut pr = Reader::new(&reply.params);
        match <C::Response as Response>::unmarshal_areas(&mut hr, &mut pr) {
            Ok(out) => {
                self.track_handles(&reply, flushed, auths);
                Ok(out)
            }
            Err(source) => {
                self.flush_untracked(&reply.created);
                Err(Error::Malformed {
                    cc: spec.cc,
                    source,
                })
            }
        }
    }

    /// Steps 1 to 8 for any command.
    #[inline(never)]
    fn exchange(
        &mut self,
        spec: &Spec,
        handles: &[TpmHandle],
        names: &[&[u8]],
        auths: &mut [Auth<'_>],
        mut params: Zeroizing<Vec<u8>>,
    ) -> Result<Verified> {
        check_call(spec, handles, names, auths)?;
        let mut call = Call::new(spec, names, auths)?;
        call.roll_nonces();
        call.encrypt_command(&mut params);
        let area = call.authorization_area(&params)?;
        let response = self.send_command(spec, handles, &area, &params)?;
        let parsed = frame::parse_response(&response, spec.response_handles).map_err(|source| {
            Error::Malformed {
                cc: spec.cc,
                source,
            }
        })?;
        if parsed.rc != 0 {
            return Err(Error::Tpm {
                cc: spec.cc,
                rc: ResponseCode(parsed.rc),
            });
        }
        // The TPM carried the command out: the objects and sessions the response
        // names exist now. Should the response fail its checks, flush them at once,
        // or they would hold a slot of a TPM with no resource manager for good.
        let created = self.untracked(parsed.handles);
        let checked = call
            .verify_response(&parsed)
            .map(|()| call.decrypt_response(parsed.params));
        match checked {
            Ok(params) => Ok(Verified {
                handles: parsed.handles.to_vec(),
                params,
                created,
            }),
            Err(e) => {
                self.flush_untracked(&created);
                Err(e)
            }
        }
    }

    /// Step 6: builds the frame, sends it (with the retries of
    /// [`Tpm::transact`]) and returns the response.
    fn send_command(
        &mut self,
        spec: &Spec,
        handles: &[TpmHandle],
        area: &[TpmsAuthCommand],
        params: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let command = Zeroizing::new(frame::build_command(spec.cc, handles, area, params)?);
        Ok(Zeroizing::new(self.transact(&command)?))
    }

    /// The objects and sessions in a response's handle area not tracked yet.
    fn untracked(&self, rhandles: &[u8]) -> Vec<TpmHandle> {
        new_handles(rhandles)
            .filter(|h| !self.owned.contains(h))
            .collect()
    }

    /// Flushes handles that are not tracked, ignoring errors.
    fn flush_untracked(&mut self, handles: &[TpmHandle]) {
        for h in handles {
            let _ = self.run(&FlushContext { flush_handle: *h });
        }
    }

    /// Step 9: keeps the list of transient objects and sessions to flush up to
    /// date (new ones from the response; a flushed one; sessions the TPM closed).
    fn track_handles(&mut self, reply: &Verified, flushed: Option<TpmHandle>, auths: &[Auth<'_>]) {
        for h in &reply.created {
            if !self.owned.contains(h) {
                self.owned.push(*h);
            }
        }
        if let Some(h) = flushed {
            self.owned.retain(|o| *o != h);
        }
        for a in auths {
            if let Some(s) = session_ref(a) {
                if !s.is_open() {
                    self.owned.retain(|o| *o != s.handle());
                }
            }
        }
    }
}

/// Step 1: one Name per handle, one authorization per authorized handle, at most
/// three sessions, none out of step with the TPM.
fn check_call(
    spec: &Spec,
    handles: &[TpmHandle],
    names: &[&[u8]],
    auths: &[Auth<'_>],
) -> Result<()> {
    if names.len() != handles.len() {
        return Err(Error::Usage(format!(
            "{}: {} handle names given, {} needed",
            spec.name,
            names.len(),
            handles.len()
        )));
    }
    let authorizing = auths
        .iter()
        .take_while(|a| !matches!(a, Auth::Extra(_)))
        .count();
    if authorizing != spec.auth_count || auths.len() > frame::MAX_SESSIONS {
        return Err(Error::Usage(format!(
            "{}: {} authorizations given, {} needed (then at most {} extra sessions)",
            spec.name,
            authorizing,
            spec.auth_count,
            frame::MAX_SESSIONS.saturating_sub(spec.auth_count)
        )));
    }
    if auths
        .iter()
        .any(|a| session_ref(a).is_some_and(AuthSession::is_broken))
    {
        return Err(Error::Usage(format!(
            "{}: a session given failed an integrity check earlier and is out of step with the TPM; start a new session",
            spec.name
        )));
    }
    Ok(())
}

/// The entity (Name, authValue) a session authorizes, copied out so the session
/// itself can be borrowed mutably while it is used.
type Entity = (Vec<u8>, Zeroizing<Vec<u8>>);

/// One command's sessions while it runs.
struct Call<'s, 'a> {
    cc: TpmCc,
    names: &'s [&'s [u8]],
    auths: &'s mut [Auth<'a>],
    auth_count: usize,
    /// Per session: the entity it authorizes (None for extra sessions).
    entities: Vec<Option<Entity>>,
    decrypt: Option<usize>,
    encrypt: Option<usize>,
}

impl<'s, 'a> Call<'s, 'a> {
    /// Step 3: the entities, and the sessions carrying decrypt and encrypt (at most
    /// one each, Part 1 §21.1; only for commands whose first parameter is a TPM2B).
    fn new(spec: &Spec, names: &'s [&'s [u8]], auths: &'s mut [Auth<'a>]) -> Result<Self> {
        let entities = (0..auths.len())
            .map(|i| match (auths.get(i), names.get(i)) {
                (Some(Auth::Session(_, auth)), Some(name)) if i < spec.auth_count => {
                    Some((name.to_vec(), Zeroizing::new(auth.to_vec())))
                }
                _ => None,
            })
            .collect();
        let decrypt = find_attr(auths, TpmaSession::DECRYPT, spec.name)?;
        let encrypt = find_attr(auths, TpmaSession::ENCRYPT, spec.name)?;
        if decrypt.is_some() && !spec.decryptable {
            return Err(Error::Usage(format!(
                "{}: its first parameter is not a TPM2B; it cannot be encrypted",
                spec.name
            )));
        }
        if encrypt.is_some() && !spec.encryptable {
            return Err(Error::Usage(format!(
                "{}: its first response parameter is not a TPM2B; it cannot be encrypted",
                spec.name
            )));
        }
        Ok(Call {
            cc: spec.cc,
            names,
            auths,
            auth_count: spec.auth_count,
            entities,
            decrypt,
            encrypt,
        })
    }

    fn entity(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.entities
            .get(i)
            .and_then(Option::as_ref)
            .map(|(n, a)| (n.as_slice(), a.as_slice()))
    }

    /// Step 2: fresh nonces for every session (Part 1 §19.6.5 nonce rolling).
    fn roll_nonces(&mut self) {
        for a in self.auths.iter_mut() {
            if let Some(s) = session_of(a) {
                let mut nonce = vec![0u8; s.hash().digest_size()];
                OsRng.fill_bytes(&mut nonce);
                s.roll_caller_nonce(nonce);
            }
        }
    }

    /// Step 4: encrypts the first command parameter with the decrypt session's
    /// key, before cpHash is computed over it (Part 1 §21.1).
    fn encrypt_command(&self, params: &mut [u8]) {
        let Some(i) = self.decrypt else { return };
        let Some(s) = self.auths.get(i).and_then(session_ref) else {
            return;
        };
        if let Some(payload) = first_tpm2b_payload(params) {
            s.encrypt_command_param(self.entity(i), payload);
        }
    }

    /// Step 5: the authorization area: a password entry, or cpHash and the HMAC of
    /// each session (with the nonces of separate decrypt/encrypt sessions in the
    /// first one's HMAC, Part 1 §19.6.5).
    fn authorization_area(&self, params: &[u8]) -> Result<Vec<TpmsAuthCommand>> {
        let decrypt_nonce = self.extra_nonce(self.decrypt);
        let encrypt_nonce = if self.encrypt == self.decrypt {
            None
        } else {
            self.extra_nonce(self.encrypt)
        };
        let mut area = Vec::with_capacity(self.auths.len());
        for (i, a) in self.auths.iter().enumerate() {
            match a {
                Auth::EmptyPassword => area.push(TpmsAuthCommand {
                    session_handle: TpmHandle::RS_PW,
                    session_attributes: TpmaSession::CONTINUE_SESSION,
                    ..Default::default()
                }),
                Auth::Session(s, _) | Auth::Extra(s) => {
                    let cp = sc::cp_hash(s.hash(), self.cc.0, self.names, params);
                    let (dn, en) = if i == 0 && i < self.auth_count {
                        (decrypt_nonce.as_deref(), encrypt_nonce.as_deref())
                    } else {
                        (None, None)
                    };
                    area.push(s.command_auth(self.entity(i), &cp, dn, en)?);
                }
            }
        }
        Ok(area)
    }

    /// nonceTPM of the decrypt/encrypt session when it is not the first session.
    fn extra_nonce(&self, idx: Option<usize>) -> Option<Vec<u8>> {
        match idx {
            Some(i) if i > 0 => self
                .auths
                .get(i)
                .and_then(session_ref)
                .map(|s| s.nonce_tpm().to_vec()),
            _ => None,
        }
    }

    /// Step 7: the session area has one entry per session; a password entry is
    /// empty; every HMAC session's response HMAC verifies (and its nonce rolls). A
    /// session whose response does not verify is marked broken.
    fn verify_response(&mut self, parsed: &frame::ResponseFrame<'_>) -> Result<()> {
        let cc = self.cc;
        let integrity = |what| Error::Integrity { cc, what };
        if self.auths.is_empty() {
            if parsed.tag != TpmSt::NO_SESSIONS {
                return Err(integrity("sessions in the response to a command with none"));
            }
        } else if parsed.tag != TpmSt::SESSIONS || parsed.sessions.len() != self.auths.len() {
            return Err(integrity(
                "response session area missing or of the wrong length",
            ));
        }
        for (i, reply) in parsed.sessions.iter().enumerate() {
            let entity = self
                .entities
                .get(i)
                .and_then(Option::as_ref)
                .map(|(n, a)| (n.as_slice(), a.as_slice()));
            match self.auths.get_mut(i) {
                Some(Auth::EmptyPassword) if !reply.nonce.is_empty() || !reply.hmac.is_empty() => {
                    return Err(integrity("password session answered with a nonce or HMAC"));
                }
                Some(Auth::EmptyPassword) | None => {}
                Some(Auth::Session(s, _)) | Some(Auth::Extra(s)) => {
                    let rp = sc::rp_hash(s.hash(), 0, cc.0, parsed.params);
                    let sent = s.attributes();
                    let same = |a| reply.session_attributes.contains(a) == sent.contains(a);
                    if !same(TpmaSession::DECRYPT)
                        || !same(TpmaSession::ENCRYPT)
                        || !s.accept_response(entity, &rp, reply)
                    {
                        s.mark_broken();
                        return Err(integrity("response HMAC does not verify"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Step 8: decrypts the first response parameter (after its HMAC verified).
    fn decrypt_response(&self, params: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(params.to_vec());
        if let Some(i) = self.encrypt {
            if let Some(s) = self.auths.get(i).and_then(session_ref) {
                if let Some(payload) = first_tpm2b_payload(&mut out) {
                    s.decrypt_response_param(self.entity(i), payload);
                }
            }
        }
        out
    }
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

/// The payload bytes of the leading TPM2B of a parameter area (its size stays clear).
fn first_tpm2b_payload(params: &mut [u8]) -> Option<&mut [u8]> {
    let (size, rest) = params.split_first_chunk_mut::<2>()?;
    let n = usize::from(u16::from_be_bytes(*size));
    rest.get_mut(..n)
}
