//! Authorization sessions (Part 1 §19): state of HMAC and policy sessions (nonces,
//! session key, binding, parameter encryption) and the per-command work a session
//! does — command HMAC, response HMAC check, parameter encryption both ways.
//!
//! The cryptography itself is in [`crate::crypto`]; this module holds the rules of
//! which key, which nonces and which authValue go where. It is pure state: it sends
//! nothing. [`crate::tpm::Tpm`] drives it — starts sessions
//! ([`crate::tpm::Tpm::start_session`]), runs policy commands on them, and calls the
//! per-command steps below from `Tpm::execute`.

pub mod policy;
pub mod salt;
pub mod start;

use tpm_commands::attributes::TpmaSession;
use tpm_commands::buffers::{Tpm2bAuth, Tpm2bNonce};
use tpm_commands::constants::TpmHandle;
use tpm_commands::frame::{TpmsAuthCommand, TpmsAuthResponse};
use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::crypto::{param, session as sc};

/// HMAC or policy (Part 2 §6.11 TPM_SE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// An HMAC session.
    Hmac,
    /// A policy session.
    Policy,
    /// A trial policy session: computes a digest, authorizes nothing.
    Trial,
}

/// How a policy session uses the entity's authValue (Part 3 §23.18, §23.17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PolicyAuth {
    /// Neither TPM2_PolicyAuthValue nor TPM2_PolicyPassword was run.
    #[default]
    None,
    /// After TPM2_PolicyAuthValue: the authValue enters the HMAC key.
    AuthValue,
    /// After TPM2_PolicyPassword: the authValue is sent in clear in the hmac field.
    Password,
}

/// The entity a session was bound to at StartAuthSession (Part 1 §19.6.10).
struct Binding {
    name: Vec<u8>,
    auth: Zeroizing<Vec<u8>>,
}

/// A started HMAC or policy session.
pub struct AuthSession {
    handle: TpmHandle,
    kind: SessionKind,
    hash: HashAlg,
    session_key: Zeroizing<Vec<u8>>,
    nonce_tpm: Vec<u8>,
    nonce_caller: Vec<u8>,
    binding: Option<Binding>,
    salted: bool,
    symmetric_bits: Option<u16>,
    attributes: TpmaSession,
    policy_auth: PolicyAuth,
    open: bool,
    /// Set when a response failed its check: the TPM may have rolled its nonce,
    /// so this session can no longer authorize anything.
    broken: bool,
}

impl core::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuthSession")
            .field("handle", &self.handle)
            .field("kind", &self.kind)
            .field("hash", &self.hash)
            .field("salted", &self.salted)
            .field("bound", &self.binding.is_some())
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

impl AuthSession {
    /// The session handle.
    pub fn handle(&self) -> TpmHandle {
        self.handle
    }

    /// HMAC or policy.
    pub fn kind(&self) -> SessionKind {
        self.kind
    }

    /// The session's hash (authHash).
    pub fn hash(&self) -> HashAlg {
        self.hash
    }

    /// True when the session key came from a salt (a passive observer of the bus
    /// cannot derive it).
    pub fn is_salted(&self) -> bool {
        self.salted
    }

    /// True after a response on this session failed its integrity check.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// True while the TPM still holds the session.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The attributes sent with the next command.
    pub fn attributes(&self) -> TpmaSession {
        self.attributes
    }

    /// Sets the attributes sent with the next commands (continueSession, decrypt,
    /// encrypt, audit).
    pub fn set_attributes(&mut self, attributes: TpmaSession) {
        self.attributes = attributes;
    }

    /// Records that TPM2_PolicyAuthValue or TPM2_PolicyPassword ran on this session.
    pub fn set_policy_auth(&mut self, policy_auth: PolicyAuth) {
        self.policy_auth = policy_auth;
    }

    /// The TPM's last nonce on this session.
    pub(crate) fn nonce_tpm(&self) -> &[u8] {
        &self.nonce_tpm
    }

    /// Symmetric key size for parameter encryption, if the session has one.
    pub fn symmetric_bits(&self) -> Option<u16> {
        self.symmetric_bits
    }

    /// Marks the session as flushed (after TPM2_FlushContext or a command that ran
    /// with continueSession clear).
    pub(crate) fn mark_closed(&mut self) {
        self.open = false;
    }

    /// True when `entity` (Name and authValue) is the one this session is bound to
    /// (ms-tpm IsSessionBindEntity: same Name and same authValue as at start).
    fn is_bound_to(&self, entity_name: &[u8], auth: &[u8]) -> bool {
        match &self.binding {
            Some(b) => {
                b.name == entity_name
                    && sc::strip_trailing_zeros(&b.auth) == sc::strip_trailing_zeros(auth)
            }
            None => false,
        }
    }

    /// The HMAC key for authorizing `entity` (Part 1 §19.6.5): sessionKey ||
    /// authValue, with the authValue left out for the bind entity of a bound HMAC
    /// session, and for policy sessions without TPM2_PolicyAuthValue.
    fn hmac_key(&self, entity: Option<(&[u8], &[u8])>) -> Zeroizing<Vec<u8>> {
        let mut key = Zeroizing::new(self.session_key.to_vec());
        if let Some((name, auth)) = entity {
            let include = match self.kind {
                SessionKind::Hmac => !self.is_bound_to(name, auth),
                SessionKind::Policy | SessionKind::Trial => {
                    self.policy_auth == PolicyAuth::AuthValue
                }
            };
            if include {
                key.extend_from_slice(sc::strip_trailing_zeros(auth));
            }
        }
        key
    }

    /// The key for parameter encryption (Part 1 §21.1): sessionKey || authValue of
    /// the entity this session authorizes, bound or not.
    fn encryption_key(&self, entity: Option<(&[u8], &[u8])>) -> Zeroizing<Vec<u8>> {
        let mut key = Zeroizing::new(self.session_key.to_vec());
        if let Some((_, auth)) = entity {
            key.extend_from_slice(sc::strip_trailing_zeros(auth));
        }
        key
    }

    /// Picks a fresh nonceCaller for the next command.
    pub(crate) fn roll_caller_nonce(&mut self, fresh: Vec<u8>) {
        self.nonce_caller = fresh;
    }

    /// Encrypts a command's first parameter (Part 1 §21.3): nonceNewer = nonceCaller,
    /// nonceOlder = nonceTPM.
    pub(crate) fn encrypt_command_param(&self, entity: Option<(&[u8], &[u8])>, data: &mut [u8]) {
        let key = self.encryption_key(entity);
        let bits = self.symmetric_bits.unwrap_or(128);
        param::cfb_encrypt(
            self.hash,
            &key,
            &self.nonce_caller,
            &self.nonce_tpm,
            bits,
            data,
        );
    }

    /// Decrypts a response's first parameter (Part 1 §21.3): nonceNewer = the new
    /// nonceTPM, nonceOlder = nonceCaller. Call after [`Self::accept_response`].
    pub(crate) fn decrypt_response_param(&self, entity: Option<(&[u8], &[u8])>, data: &mut [u8]) {
        let key = self.encryption_key(entity);
        let bits = self.symmetric_bits.unwrap_or(128);
        param::cfb_decrypt(
            self.hash,
            &key,
            &self.nonce_tpm,
            &self.nonce_caller,
            bits,
            data,
        );
    }

    /// The TPMS_AUTH_COMMAND for this session (Part 1 §19.6.5).
    ///
    /// `cp_hash` must be computed with this session's hash over the parameters as
    /// sent (already encrypted). `extra_nonces` are nonceTPM of separate
    /// decrypt/encrypt sessions, added to the first session's HMAC only.
    pub(crate) fn command_auth(
        &self,
        entity: Option<(&[u8], &[u8])>,
        cp_hash: &[u8],
        decrypt_nonce: Option<&[u8]>,
        encrypt_nonce: Option<&[u8]>,
    ) -> Result<TpmsAuthCommand, tpm_commands::codec::MarshalError> {
        let hmac = if self.kind != SessionKind::Hmac && self.policy_auth == PolicyAuth::Password {
            entity
                .map(|(_, auth)| sc::strip_trailing_zeros(auth).to_vec())
                .unwrap_or_default()
        } else {
            let key = self.hmac_key(entity);
            sc::command_hmac(
                self.hash,
                &key,
                cp_hash,
                &self.nonce_caller,
                &self.nonce_tpm,
                decrypt_nonce,
                encrypt_nonce,
                self.attributes.bits(),
            )
        };
        Ok(TpmsAuthCommand {
            session_handle: self.handle,
            nonce: Tpm2bNonce::new(self.nonce_caller.clone())?,
            session_attributes: self.attributes,
            hmac: Tpm2bAuth::new(hmac)?,
        })
    }

    /// Checks a response's session entry and rolls the nonce (Part 1 §19.6.5).
    /// Returns false when the HMAC does not verify; the session state is then left
    /// unchanged.
    pub(crate) fn accept_response(
        &mut self,
        entity: Option<(&[u8], &[u8])>,
        rp_hash: &[u8],
        response: &TpmsAuthResponse,
    ) -> bool {
        let policy_password =
            self.kind != SessionKind::Hmac && self.policy_auth == PolicyAuth::Password;
        let ok = if policy_password {
            response.hmac.is_empty()
        } else {
            let key = self.hmac_key(entity);
            !response.hmac.is_empty()
                && sc::verify_response_hmac(
                    self.hash,
                    &key,
                    rp_hash,
                    response.nonce.as_bytes(),
                    &self.nonce_caller,
                    response.session_attributes.bits(),
                    response.hmac.as_bytes(),
                )
        };
        if !ok {
            return false;
        }
        self.nonce_tpm = response.nonce.as_bytes().to_vec();
        if !response
            .session_attributes
            .contains(TpmaSession::CONTINUE_SESSION)
        {
            self.open = false;
        }
        true
    }
}
