//! A copy of a key with another authValue, under the same parent, made in the TPM:
//! TPM2_Load (Part 3 §12.3), TPM2_ObjectChangeAuth (§12.8), TPM2_FlushContext.
//! The key never leaves the TPM, and the public area — so the public key and
//! every form of it — stays exactly the same. The old private blob keeps working
//! with the old authValue. Also a duplicate wrapped to the SRK made loadable
//! (TPM2_Import, §13.3), for importable TSS2 key files.

use tpm_commands::buffers::{Tpm2bData, Tpm2bEncryptedSecret, Tpm2bPrivate};
use tpm_commands::codec::Unmarshal;
use tpm_commands::commands::Import;
use tpm_commands::structures::{Tpm2bPublic, TpmtPublic, TpmtSymDef};

use super::ops::{change_auth, load_key_with, WrappedKey};
use super::srk::Srk;
use crate::error::{Error, Result};
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

/// Makes a duplicate loadable under the SRK with TPM2_Import: `duplicate` has an
/// outer wrapper only (symmetricAlg NULL), whose seed is `in_sym_seed`, a marshalled
/// TPM2B_ENCRYPTED_SECRET encrypted to the SRK. Nothing secret is sent: the seed
/// is encrypted to the SRK, the sensitive area inside the wrapper.
///
/// # Errors
/// A seed that does not parse; TPM errors from TPM2_Import (a duplicate wrapped
/// for another parent: TPM_RC_INTEGRITY, TPM_RC_VALUE, TPM_RC_ECC_POINT and kin).
pub fn import_duplicate(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    public: &TpmtPublic,
    duplicate: &Tpm2bPrivate,
    in_sym_seed: &[u8],
) -> Result<WrappedKey> {
    let seed = Tpm2bEncryptedSecret::from_bytes(in_sym_seed).map_err(|e| {
        Error::Usage(format!(
            "the importable key's secret is not a TPM2B_ENCRYPTED_SECRET: {e}"
        ))
    })?;
    let cmd = Import {
        parent_handle: srk.handle,
        encryption_key: Tpm2bData::empty(),
        object_public: Tpm2bPublic::new(public.clone()),
        duplicate: duplicate.clone(),
        in_sym_seed: seed,
        symmetric_alg: TpmtSymDef::Null,
    };
    let rsp = tpm.execute(&cmd, &[&srk.name], &mut [Auth::Session(session, &[])])?;
    Ok(WrappedKey {
        private: rsp.out_private,
        public: public.clone(),
    })
}
