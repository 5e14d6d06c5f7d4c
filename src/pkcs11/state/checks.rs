//! The checks every function makes before its work: the session handle and the
//! slot (PKCS#11 2.40 Base §5.1: initialization, then the handles, then the
//! arguments), also for the functions the module does not offer, which answer
//! CKR_FUNCTION_NOT_SUPPORTED only after them.

use super::{Module, Rv};
use cryptoki_sys::*;

impl Module {
    /// CKR_SESSION_HANDLE_INVALID unless `h` is an open session.
    ///
    /// # Errors
    /// CKR_SESSION_HANDLE_INVALID.
    pub fn check_session(&self, h: CK_SESSION_HANDLE) -> Result<(), Rv> {
        self.sessions
            .get(&h)
            .map(|_| ())
            .ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    /// CKR_SLOT_ID_INVALID or CKR_TOKEN_NOT_PRESENT unless `id` is a slot with
    /// its token.
    ///
    /// # Errors
    /// As said.
    pub fn check_slot(&self, id: CK_SLOT_ID) -> Result<(), Rv> {
        self.slot_index(id).map(|_| ())
    }

    /// C_DigestKey: not offered (a key's value never leaves the TPM, and secret
    /// keys can be read with C_GetAttributeValue when extractable). As any
    /// failed C_DigestKey, it ends the digest operation (§5.10).
    ///
    /// # Errors
    /// CKR_SESSION_HANDLE_INVALID, CKR_OPERATION_NOT_INITIALIZED,
    /// CKR_FUNCTION_NOT_SUPPORTED.
    pub fn digest_key(&mut self, h: CK_SESSION_HANDLE, _key: CK_OBJECT_HANDLE) -> Result<(), Rv> {
        let s = self.session(h)?;
        if s.ops.digest.take().is_none() {
            return Err(CKR_OPERATION_NOT_INITIALIZED);
        }
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    }
}
