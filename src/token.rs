//! Tokens and PINs (issue 4's design, ../design.md "token"): a random 32-byte token
//! secret sealed twice under the SRK, once with authValue = H(user PIN) and once
//! with H(SO PIN); each key's authValue = HMAC(token secret, key id).
//!
//! - The TPM checks every PIN (the seals are dictionary-attack protected: no noDA),
//!   so guesses count against its lockout and nothing on disk can check a PIN.
//! - Login unseals the secret through a salted session with response encryption.
//! - Changing the user PIN is TPM2_ObjectChangeAuth on the user seal: no key is
//!   re-created. The SO PIN unseals the secret to seal it again under a new user PIN.
//! - A no-PIN token seals the secret with an empty authValue (noDA): no login.

use zeroize::Zeroizing;

use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::keys::ops::{change_auth, load_key, seal, unseal, WrappedKey};
use crate::keys::srk::Srk;
use crate::session::AuthSession;
use crate::tpm::Tpm;

/// Size of the token secret.
pub const SECRET_LEN: usize = 32;

/// The authValue a PIN becomes: SHA-256("tpmkey PIN\0" || PIN), so PINs of any
/// length fit the SRK nameAlg's digest size. Empty PIN → empty authValue.
pub fn pin_auth(pin: &[u8]) -> Zeroizing<Vec<u8>> {
    if pin.is_empty() {
        return Zeroizing::new(Vec::new());
    }
    Zeroizing::new(HashAlg::Sha256.hash(&[b"tpmkey PIN\0", pin]))
}

/// A key's authValue: HMAC-SHA256(token secret, "tpmkey key\0" || key id).
pub fn key_auth(secret: &[u8], key_id: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(HashAlg::Sha256.hmac(secret, &[b"tpmkey key\0", key_id]))
}

/// The sealed objects of a new token.
#[derive(Clone)]
pub struct NewToken {
    /// Sealed under the user PIN (or the empty auth for a no-PIN token).
    pub user_seal: WrappedKey,
    /// Sealed under the SO PIN (absent for a no-PIN token).
    pub so_seal: Option<WrappedKey>,
    /// The token secret, for making keys right away.
    pub secret: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NewToken")
            .field("user_seal", &self.user_seal)
            .field("so_seal", &self.so_seal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Makes a token secret and seals it. The secret comes from the host RNG: fetched
/// with a plain TPM2_GetRandom it would cross the bus in clear. `pins` = (user, SO), or
/// None for a no-PIN token.
///
/// # Errors
/// Transport or TPM errors.
pub fn create_token(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    pins: Option<(&[u8], &[u8])>,
) -> Result<NewToken> {
    let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
    match pins {
        Some((user, so)) => {
            if user.is_empty() || so.is_empty() {
                return Err(Error::Usage(
                    "a token with PINs needs a non-empty user PIN and SO PIN (or use --no-pin)"
                        .into(),
                ));
            }
            let user_seal = seal(tpm, srk, session, &secret, &pin_auth(user), None)?;
            let so_seal = seal(tpm, srk, session, &secret, &pin_auth(so), None)?;
            Ok(NewToken {
                user_seal,
                so_seal: Some(so_seal),
                secret,
            })
        }
        None => {
            let user_seal = seal(tpm, srk, session, &secret, &[], None)?;
            Ok(NewToken {
                user_seal,
                so_seal: None,
                secret,
            })
        }
    }
}

/// Unseals the token secret with a PIN (empty for a no-PIN token).
///
/// # Errors
/// [`Error::Tpm`] with TPM_RC_AUTH_FAIL for a wrong PIN, TPM_RC_LOCKOUT when the TPM
/// is locked out; transport errors.
pub fn login(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    seal_blob: &WrappedKey,
    pin: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let obj = load_key(tpm, srk, session, seal_blob)?;
    let r = unseal_secret(tpm, &obj, session, pin);
    let flushed = tpm.flush(obj.handle);
    let secret = r?;
    flushed?;
    Ok(secret)
}

/// Unseals the token secret from a seal in the TPM and checks its size.
fn unseal_secret(
    tpm: &mut Tpm,
    seal: &crate::keys::ops::LoadedKey,
    session: &mut AuthSession,
    pin: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let secret = unseal(tpm, seal, session, &pin_auth(pin))?;
    if secret.len() != SECRET_LEN {
        return Err(Error::Integrity {
            cc: tpm_commands::constants::TpmCc::UNSEAL,
            what: "token secret of the wrong size",
        });
    }
    Ok(secret)
}

/// Unseals the token secret from the persistent copy of `seal_blob` at `handle` (no
/// TPM2_Load, no TPM2_FlushContext). A handle that holds another object fails the
/// session HMAC (the Name in cpHash is `seal_blob`'s): the caller tells that from a
/// wrong PIN with [`crate::keys::persist::holds`].
///
/// # Errors
/// As [`login`].
pub fn login_persistent(
    tpm: &mut Tpm,
    handle: tpm_commands::constants::TpmHandle,
    session: &mut AuthSession,
    seal_blob: &WrappedKey,
    pin: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let obj = crate::keys::ops::LoadedKey {
        handle,
        name: crate::keys::public::object_name(&seal_blob.public)?,
        public: seal_blob.public.clone(),
    };
    unseal_secret(tpm, &obj, session, pin)
}

/// Changes the user PIN: ObjectChangeAuth on the user seal (the old PIN proven by
/// HMAC, the new one sent encrypted). Returns the new user seal; keys are unchanged.
///
/// # Errors
/// TPM_RC_AUTH_FAIL for a wrong old PIN; transport errors.
pub fn change_pin(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    seal_blob: &WrappedKey,
    old: &[u8],
    new: &[u8],
) -> Result<WrappedKey> {
    if new.is_empty() {
        return Err(Error::Usage("the new PIN is empty".into()));
    }
    let obj = load_key(tpm, srk, session, seal_blob)?;
    let r = change_auth(tpm, srk, &obj, session, &pin_auth(old), &pin_auth(new));
    let flushed = tpm.flush(obj.handle);
    let out = r?;
    flushed?;
    Ok(out)
}

/// Sets a new user PIN with the SO PIN: unseals the secret from the SO seal and
/// seals it again under the new user PIN. Returns the new user seal.
///
/// # Errors
/// TPM_RC_AUTH_FAIL for a wrong SO PIN; transport errors.
pub fn reset_pin(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    so_seal: &WrappedKey,
    so_pin: &[u8],
    new_user_pin: &[u8],
) -> Result<WrappedKey> {
    if new_user_pin.is_empty() {
        return Err(Error::Usage("the new user PIN is empty".into()));
    }
    let secret = login(tpm, srk, session, so_seal, so_pin)?;
    seal(tpm, srk, session, &secret, &pin_auth(new_user_pin), None)
}
