//! Starting sessions (Part 3 §11.1 TPM2_StartAuthSession; Part 1 §19.6.8–19.6.12):
//! unsalted or salted to a loaded key (ECC: ephemeral ECDH + KDFe "SECRET"; RSA:
//! OAEP with label "SECRET\0"), bound or unbound, HMAC or policy.
//!
//! Pure: [`SessionRequest::new`] makes the command and the salt,
//! [`SessionRequest::finish`] makes the session from the TPM's answer;
//! [`crate::tpm::Tpm::start_session`] sends the command in between.

use rand_core::{OsRng, RngCore};
use tpm_commands::attributes::TpmaSession;
use tpm_commands::buffers::{Tpm2bEncryptedSecret, Tpm2bNonce};
use tpm_commands::commands::StartAuthSession;
use tpm_commands::constants::{TpmHandle, TpmSe};
use tpm_commands::structures::TpmtSymDef;
use zeroize::Zeroizing;

use super::salt::SaltKey;
use super::{AuthSession, Binding, PolicyAuth, SessionKind};
use crate::crypto::hash::HashAlg;
use crate::crypto::{secret, session as sc};
use crate::error::{Error, Result};

/// The entity a session is bound to: its handle, Name and authValue.
pub struct BindTo<'a> {
    /// The loaded entity.
    pub handle: TpmHandle,
    /// Its Name.
    pub name: &'a [u8],
    /// Its authValue.
    pub auth: &'a [u8],
}

/// How to start a session.
pub struct SessionParams<'a> {
    /// HMAC or policy.
    pub kind: SessionKind,
    /// The session hash (authHash).
    pub hash: HashAlg,
    /// Salt the session key to this loaded decrypt key (whose public area the
    /// caller has checked against a pinned Name).
    pub salt_key: Option<&'a SaltKey>,
    /// Bind the session to this entity.
    pub bind: Option<BindTo<'a>>,
    /// AES-CFB key size for parameter encryption (128 in tpmkey); None for no
    /// parameter encryption.
    pub aes_bits: Option<u16>,
}

impl SessionParams<'_> {
    /// A salted HMAC session with AES-128-CFB, SHA-256: what every secret-bearing
    /// command of tpmkey runs in.
    pub fn salted_hmac(salt_key: &SaltKey) -> SessionParams<'_> {
        SessionParams {
            kind: SessionKind::Hmac,
            hash: HashAlg::Sha256,
            salt_key: Some(salt_key),
            bind: None,
            aes_bits: Some(128),
        }
    }
}

/// A TPM2_StartAuthSession made ready: the command, the Names of its two handles
/// (for cpHash), and what the session needs to become usable once the TPM
/// answers. [`crate::tpm::Tpm::start_session`] sends it.
pub struct SessionRequest {
    /// The command.
    pub command: StartAuthSession,
    /// Names of tpmKey and bind (their handles for TPM_RH_NULL).
    pub names: [Vec<u8>; 2],
    kind: SessionKind,
    hash: HashAlg,
    nonce_caller: Vec<u8>,
    salt: Zeroizing<Vec<u8>>,
    binding: Option<Binding>,
    salted: bool,
    aes_bits: Option<u16>,
}

impl SessionRequest {
    /// A fresh nonceCaller, and the salt made and encrypted to `p.salt_key`
    /// (Part 1 §19.6.8-19.6.12).
    ///
    /// # Errors
    /// A salt key the host cannot encrypt to; buffers over their spec maxima.
    pub fn new(p: &SessionParams<'_>) -> Result<SessionRequest> {
        let mut nonce_caller = vec![0u8; p.hash.digest_size()];
        OsRng.fill_bytes(&mut nonce_caller);

        let (salt, encrypted_salt, salt_handle, salt_name) = match p.salt_key {
            None => (
                Zeroizing::new(Vec::new()),
                Vec::new(),
                TpmHandle::RH_NULL,
                TpmHandle::RH_NULL.0.to_be_bytes().to_vec(),
            ),
            Some(k) => {
                let (salt, enc) = encrypt_salt(k)?;
                (salt, enc, k.handle(), k.name().to_vec())
            }
        };
        let (bind_handle, bind_name, binding) = match &p.bind {
            None => (
                TpmHandle::RH_NULL,
                TpmHandle::RH_NULL.0.to_be_bytes().to_vec(),
                None,
            ),
            Some(b) => (
                b.handle,
                b.name.to_vec(),
                Some(Binding {
                    name: b.name.to_vec(),
                    auth: Zeroizing::new(b.auth.to_vec()),
                }),
            ),
        };
        let symmetric = match p.aes_bits {
            Some(bits) => TpmtSymDef::aes_cfb(bits),
            None => TpmtSymDef::Null,
        };
        let command = StartAuthSession {
            tpm_key: salt_handle,
            bind: bind_handle,
            nonce_caller: Tpm2bNonce::new(nonce_caller.clone())?,
            encrypted_salt: Tpm2bEncryptedSecret::new(encrypted_salt)?,
            session_type: match p.kind {
                SessionKind::Hmac => TpmSe::HMAC,
                SessionKind::Policy => TpmSe::POLICY,
                SessionKind::Trial => TpmSe::TRIAL,
            },
            symmetric,
            auth_hash: p.hash.alg_id().into(),
        };
        Ok(SessionRequest {
            command,
            names: [salt_name, bind_name],
            kind: p.kind,
            hash: p.hash,
            nonce_caller,
            salt,
            binding,
            salted: p.salt_key.is_some(),
            aes_bits: p.aes_bits,
        })
    }

    /// The session the TPM started at `handle` with `nonce_tpm`: its key is
    /// KDFa(authHash, bind.authValue || salt, "ATH", nonceTPM, nonceCaller)
    /// (Part 1 §19.6.8). It has continueSession set and no decrypt/encrypt
    /// attributes; set those per command.
    ///
    /// # Errors
    /// [`Error::Integrity`] for a nonceTPM of another size than nonceCaller (the
    /// caller flushes the session).
    pub fn finish(self, handle: TpmHandle, nonce_tpm: &[u8]) -> Result<AuthSession> {
        if nonce_tpm.len() != self.nonce_caller.len() {
            return Err(Error::Integrity {
                cc: tpm_commands::constants::TpmCc::START_AUTH_SESSION,
                what: "nonceTPM of the wrong size",
            });
        }
        let empty = Zeroizing::new(Vec::new());
        let bind_auth = self.binding.as_ref().map_or(&empty, |b| &b.auth);
        let session_key = sc::session_key(
            self.hash,
            bind_auth,
            &self.salt,
            nonce_tpm,
            &self.nonce_caller,
        );
        Ok(AuthSession {
            handle,
            kind: self.kind,
            hash: self.hash,
            session_key,
            nonce_tpm: nonce_tpm.to_vec(),
            nonce_caller: self.nonce_caller,
            binding: self.binding,
            salted: self.salted,
            symmetric_bits: self.aes_bits,
            attributes: TpmaSession::CONTINUE_SESSION,
            policy_auth: PolicyAuth::None,
            open: true,
            broken: false,
        })
    }
}

/// Makes a fresh salt and encrypts it to `key` (Part 1 Annex B/C secret sharing).
fn encrypt_salt(key: &SaltKey) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    let crypto_err = |e: crate::crypto::CryptoError| Error::Crypto(e.to_string());
    match key {
        SaltKey::Ecc {
            curve,
            x,
            y,
            name_alg,
            ..
        } => {
            let (salt, ex, ey) =
                secret::ecc_encapsulate(*curve, x, y, *name_alg, b"SECRET", &mut OsRng)
                    .map_err(crypto_err)?;
            Ok((salt, secret::ecc_point_bytes(&ex, &ey)))
        }
        SaltKey::Rsa {
            modulus,
            exponent,
            name_alg,
            ..
        } => {
            let mut salt = Zeroizing::new(vec![0u8; name_alg.digest_size()]);
            OsRng.fill_bytes(&mut salt);
            let enc = secret::rsa_encapsulate(
                modulus,
                *exponent,
                *name_alg,
                b"SECRET\0",
                &salt,
                &mut OsRng,
            )
            .map_err(crypto_err)?;
            Ok((salt, enc))
        }
    }
}
