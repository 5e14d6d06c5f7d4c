//! C_DigestInit, C_Digest, C_DigestUpdate, C_DigestFinal (PKCS#11 2.40 Base
//! §5.10): software hashes, in any session, with or without login.

use super::{Module, OpOutput, Rv};
use crate::pkcs11::digest::Hasher;
use cryptoki_sys::*;
use zeroize::Zeroizing;

/// A digest in progress.
pub(super) struct DigestOp {
    hasher: Hasher,
}

impl Module {
    /// C_DigestInit.
    ///
    /// # Errors
    /// CKR_OPERATION_ACTIVE, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID.
    pub fn digest_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        has_params: bool,
    ) -> Result<(), Rv> {
        let s = self.session(h)?;
        if s.ops.digest.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        s.ops.digest = Some(DigestOp {
            hasher: Hasher::new(mech, has_params)?,
        });
        Ok(())
    }

    /// C_DigestUpdate.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED.
    pub fn digest_update(&mut self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<(), Rv> {
        let op = self
            .session(h)?
            .ops
            .digest
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        op.hasher.update(data);
        Ok(())
    }

    /// C_Digest (`data` given) or C_DigestFinal. `capacity` is the caller's
    /// buffer size, None for a length query; a length query or a buffer too
    /// small keeps the operation (and leaves `data` unhashed, §5.2), anything
    /// else ends it.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED.
    pub fn digest(
        &mut self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<OpOutput, Rv> {
        let s = self.session(h)?;
        let op = s.ops.digest.as_ref().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let len = op.hasher.len();
        if capacity.is_none_or(|c| c < len) {
            return Ok(OpOutput::Length(len));
        }
        let Some(mut op) = s.ops.digest.take() else {
            return Err(CKR_OPERATION_NOT_INITIALIZED);
        };
        if let Some(d) = data {
            op.hasher.update(d);
        }
        Ok(OpOutput::Bytes(Zeroizing::new(op.hasher.finish())))
    }
}
