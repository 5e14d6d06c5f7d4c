//! C_EncryptInit, C_Encrypt (PKCS#11 2.40 Base §5.8): RSA PKCS #1 v1.5 and OAEP
//! with a public key object, in software; no TPM command and no login. RSA is
//! single-part only (Current Mechanisms §2.1, Table 1 footnote 2): C_EncryptUpdate
//! and C_EncryptFinal find no multi-part operation (CKR_OPERATION_NOT_INITIALIZED,
//! as NSS's softoken answers) and leave the single-part one active.

use tpm_commands::structures::TpmtPublic;

use super::verify::key_handle;
use super::{Module, OpOutput, Rv};
use crate::pkcs11::crypt::{rsa_crypt, OaepParams, RsaCrypt};
use crate::pkcs11::mechanisms::Family;
use crate::pkcs11::objects::Class;
use cryptoki_sys::*;
use zeroize::Zeroizing;

/// An encryption in progress.
pub(super) struct EncryptOp {
    public: TpmtPublic,
    crypt: RsaCrypt,
    k: usize,
}

impl Module {
    /// The RSA key half `key` of `class` that C_EncryptInit (public) or
    /// C_DecryptInit (private) is given, checked the same way for both (§5.8,
    /// §5.9): its crypt plan for `mech`, its modulus size and its public area.
    ///
    /// # Errors
    /// CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT (not an RSA key),
    /// CKR_KEY_FUNCTION_NOT_PERMITTED (the other half, or a key made without
    /// `decrypt`), CKR_USER_NOT_LOGGED_IN (a private object), CKR_KEY_SIZE_RANGE,
    /// mechanism errors.
    pub(super) fn rsa_crypt_key(
        &self,
        h: CK_SESSION_HANDLE,
        key: CK_OBJECT_HANDLE,
        mech: CK_MECHANISM_TYPE,
        oaep: Option<OaepParams>,
        class: Class,
    ) -> Result<(RsaCrypt, usize, TpmtPublic), Rv> {
        let o = self.object(h, key).map_err(key_handle)?;
        let k = o.key().ok_or(CKR_KEY_TYPE_INCONSISTENT)?;
        let crypt = rsa_crypt(mech, oaep)?;
        if crate::pkcs11::mechanisms::family(k.view.alg) != Family::Rsa {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        if k.class != class || !k.view.usage().decrypt {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        let size = k.view.modulus_len();
        if o.is_private() && !self.user_logged_in(o.slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        if crypt.max_message(size).is_none() {
            return Err(CKR_KEY_SIZE_RANGE);
        }
        Ok((crypt, size, k.view.public.clone()))
    }

    /// C_EncryptInit.
    ///
    /// # Errors
    /// CKR_OPERATION_ACTIVE, CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT
    /// (an EC key), CKR_KEY_FUNCTION_NOT_PERMITTED (a private key, or CKA_ENCRYPT
    /// false), CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID.
    pub fn encrypt_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        oaep: Option<OaepParams>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        if self.session(h)?.ops.encrypt.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let (crypt, size, public) = self.rsa_crypt_key(h, key, mech, oaep, Class::Public)?;
        let op = EncryptOp {
            public,
            crypt,
            k: size,
        };
        self.session(h)?.ops.encrypt = Some(op);
        Ok(())
    }

    /// C_Encrypt: the ciphertext is the modulus size, so a length query or a
    /// buffer too small keeps the operation; anything else ends it.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, CKR_DATA_LEN_RANGE.
    pub fn encrypt(
        &mut self,
        h: CK_SESSION_HANDLE,
        data: &[u8],
        capacity: Option<usize>,
    ) -> Result<OpOutput, Rv> {
        let s = self.session(h)?;
        let op = s
            .ops
            .encrypt
            .as_ref()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if capacity.is_none_or(|c| c < op.k) {
            return Ok(OpOutput::Length(op.k));
        }
        let Some(op) = s.ops.encrypt.take() else {
            return Err(CKR_OPERATION_NOT_INITIALIZED);
        };
        let c = op.crypt.encrypt(&op.public, data)?;
        Ok(OpOutput::Bytes(Zeroizing::new(c)))
    }

    /// C_EncryptUpdate and C_EncryptFinal: no multi-part RSA.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, always.
    pub fn encrypt_multipart(&mut self, h: CK_SESSION_HANDLE) -> Result<(), Rv> {
        self.session(h)?;
        Err(CKR_OPERATION_NOT_INITIALIZED)
    }
}
