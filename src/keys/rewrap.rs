//! A copy of a key with another authValue, under the same parent, made in the TPM:
//! TPM2_Load (Part 3 §12.3), TPM2_ObjectChangeAuth (§12.8), TPM2_FlushContext.
//! The key never leaves the TPM, and the public area — so the public key and
//! every form of it — stays exactly the same. The old private blob keeps working
//! with the old authValue.

use super::ops::{change_auth, load_key_with, WrappedKey};
use super::srk::Srk;
use crate::error::Result;
use crate::session::AuthSession;
use crate::tpm::{Auth, Tpm};

/// Loads `key` under the SRK (empty SRK authValue: nothing secret is sent), proves
/// `old_auth` by HMAC in `session` (salted, so neither value can be computed from
/// the wire), sets `new_auth` as an encrypted parameter (`decrypt`), flushes the
/// key, and returns the new private blob with the same public area.
///
/// # Errors
/// Transport or TPM errors, with the command that failed: TPM2_Load (a blob of
/// another TPM or parent: TPM_RC_INTEGRITY and kin) or TPM2_ObjectChangeAuth
/// (a wrong `old_auth`: TPM_RC_AUTH_FAIL; TPM_RC_LOCKOUT).
pub fn rewrap(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    key: &WrappedKey,
    old_auth: &[u8],
    new_auth: &[u8],
) -> Result<WrappedKey> {
    let loaded = load_key_with(tpm, srk, Auth::EmptyPassword, key)?;
    let copy = change_auth(tpm, srk, &loaded, session, old_auth, new_auth);
    let flushed = tpm.flush(loaded.handle);
    let copy = copy?;
    flushed?;
    Ok(copy)
}
