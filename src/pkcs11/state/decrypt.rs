//! C_DecryptInit, C_Decrypt (PKCS#11 2.40 Base §5.9): RSA PKCS #1 v1.5 and OAEP
//! in the TPM (one TPM2_RSA_Decrypt once the key is loaded), the ciphertext and
//! the plaintext encrypted on the bus. A plaintext that does not fit the
//! caller's buffer is kept for the call that brings a bigger one, so that no
//! ciphertext is sent to the TPM twice. RSA is single-part only: C_DecryptUpdate
//! and C_DecryptFinal find no multi-part operation, as for encryption.

use super::{Module, OpOutput, Rv};
use crate::error::Error;
use crate::keys::decrypt::rsa_decrypt;
use crate::pkcs11::crypt::{OaepParams, RsaCrypt};
use crate::pkcs11::objects::Class;
use cryptoki_sys::*;
use zeroize::Zeroizing;

/// A decryption in progress.
pub(super) struct DecryptOp {
    key: CK_OBJECT_HANDLE,
    crypt: RsaCrypt,
    /// Modulus bytes: the ciphertext's size.
    k: usize,
    /// A plaintext too big for the caller's last buffer, with its ciphertext.
    pending: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
}

impl Module {
    /// C_DecryptInit.
    ///
    /// # Errors
    /// CKR_OPERATION_ACTIVE, CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT
    /// (an EC key), CKR_KEY_FUNCTION_NOT_PERMITTED (a public key, or a key made
    /// without `decrypt`), CKR_USER_NOT_LOGGED_IN, CKR_MECHANISM_INVALID,
    /// CKR_MECHANISM_PARAM_INVALID.
    pub fn decrypt_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        oaep: Option<OaepParams>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        if self.session(h)?.ops.decrypt.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let (crypt, size, _) = self.rsa_crypt_key(h, key, mech, oaep, Class::Private)?;
        self.session(h)?.ops.decrypt = Some(DecryptOp {
            key,
            crypt,
            k: size,
            pending: None,
        });
        Ok(())
    }

    /// C_Decrypt. `capacity` is the caller's buffer size, None for a length
    /// query (answered with the longest possible plaintext, no TPM command). A
    /// length query or a buffer too small keeps the operation; anything else
    /// ends it.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, CKR_ENCRYPTED_DATA_LEN_RANGE (not the
    /// modulus size), CKR_ENCRYPTED_DATA_INVALID (wrong padding or label), TPM
    /// errors.
    pub fn decrypt(
        &mut self,
        h: CK_SESSION_HANDLE,
        data: &[u8],
        capacity: Option<usize>,
    ) -> Result<OpOutput, Rv> {
        let (key, crypt, k, capacity, pending) = {
            let s = self.session(h)?;
            let op = s
                .ops
                .decrypt
                .as_mut()
                .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
            if data.len() != op.k {
                s.ops.decrypt = None;
                return Err(CKR_ENCRYPTED_DATA_LEN_RANGE);
            }
            let pending = op.pending.take().filter(|(c, _)| c == data);
            let Some(capacity) = capacity else {
                let bound = pending
                    .as_ref()
                    .map(|(_, p)| p.len())
                    .or(op.crypt.max_message(op.k))
                    .unwrap_or(op.k);
                op.pending = pending;
                return Ok(OpOutput::Length(bound));
            };
            (op.key, op.crypt.clone(), op.k, capacity, pending)
        };
        let plain = match pending {
            Some((_, p)) => p,
            None => match self.tpm_decrypt(h, key, &crypt, data, k) {
                Ok(p) => p,
                Err(rv) => {
                    self.end_decrypt(h);
                    return Err(rv);
                }
            },
        };
        if plain.len() > capacity {
            let len = plain.len();
            if let Some(op) = self.session(h)?.ops.decrypt.as_mut() {
                op.pending = Some((data.to_vec(), plain));
            }
            return Ok(OpOutput::Length(len));
        }
        self.end_decrypt(h);
        Ok(OpOutput::Bytes(plain))
    }

    fn end_decrypt(&mut self, h: CK_SESSION_HANDLE) {
        if let Ok(s) = self.session(h) {
            s.ops.decrypt = None;
        }
    }

    /// One TPM2_RSA_Decrypt (after the key is loaded), and the OAEP decoding
    /// when the TPM could not take the label.
    fn tpm_decrypt(
        &mut self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        crypt: &RsaCrypt,
        data: &[u8],
        k: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Rv> {
        let auth = self.object_auth(h, oh)?;
        let wrapped = self.wrapped(oh)?;
        let (padding, label) = crypt.tpm_padding();
        let r = self.conn()?.use_key(&wrapped, |tpm, key, session| {
            rsa_decrypt(tpm, key, session, &auth, data, padding, label)
        });
        let raw = r.map_err(|e| match &e {
            // Padding, label or a ciphertext above the modulus: TPM_RC_VALUE or
            // TPM_RC_SIZE (Part 3 §14.3); libtpms (swtpm) answers TPM_RC_FAILURE
            // when its OpenSSL refuses the padding, without entering failure mode.
            Error::Tpm { rc, .. }
                if matches!(
                    rc.base(),
                    tpm_commands::rc::ResponseCode::VALUE
                        | tpm_commands::rc::ResponseCode::SIZE
                        | tpm_commands::rc::ResponseCode::FAILURE
                ) =>
            {
                CKR_ENCRYPTED_DATA_INVALID
            }
            _ => self.fail(&e),
        })?;
        crypt.unpad(raw, k).ok_or(CKR_ENCRYPTED_DATA_INVALID)
    }

    /// C_DecryptUpdate and C_DecryptFinal: no multi-part RSA.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, always.
    pub fn decrypt_multipart(&mut self, h: CK_SESSION_HANDLE) -> Result<(), Rv> {
        self.session(h)?;
        Err(CKR_OPERATION_NOT_INITIALIZED)
    }
}
