//! Signing (PKCS#11 2.40 Base §5.11): C_SignInit, C_Sign, C_SignUpdate and
//! C_SignFinal, each signature one TPM2_Sign once the key is loaded.

use zeroize::Zeroizing;

use std::sync::Arc;

use super::{diagnose, Login, Module, Rv, SignOp, SignOutput};
use crate::error::Error;
use crate::keys::ops::WrappedKey;
use crate::pkcs11::mechanisms::mech_rv_of;
use crate::pkcs11::mechanisms::{self, Input, PssParams, SignPlan};
use crate::pkcs11::objects::Class;
use crate::store::{from_hex, KeyRecord};
use cryptoki_sys::*;

impl Module {
    // ---- signing ----

    /// C_SignInit.
    ///
    /// # Errors
    /// CKR_OPERATION_ACTIVE, CKR_KEY_HANDLE_INVALID, CKR_KEY_FUNCTION_NOT_PERMITTED,
    /// CKR_USER_NOT_LOGGED_IN, mechanism errors.
    pub fn sign_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        pss: Option<PssParams>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        if self.session(h)?.sign.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let o = self.object(h, key).map_err(super::verify::key_handle)?;
        // A derived secret is a key, of a type no signing mechanism takes.
        let k = o.key().ok_or(CKR_KEY_TYPE_INCONSISTENT)?;
        if k.class != Class::Private || !k.view.usage().sign {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        if o.is_private() && !self.user_logged_in(o.slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let plan =
            mechanisms::plan(mech, pss, k.view.alg, k.view.modulus_len()).map_err(mech_rv_of)?;
        let input = Input::new(&plan);
        self.session(h)?.sign = Some(SignOp { key, plan, input });
        Ok(())
    }

    pub(super) fn end_sign<T>(&mut self, h: CK_SESSION_HANDLE, r: Result<T, Rv>) -> Result<T, Rv> {
        if r.is_err() {
            if let Ok(s) = self.session(h) {
                s.sign = None;
            }
        }
        r
    }

    /// C_SignUpdate.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, CKR_DATA_LEN_RANGE (ends the operation).
    pub fn sign_update(&mut self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<(), Rv> {
        let op = self
            .session(h)?
            .sign
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let r = op.input.update(data).map_err(mech_rv_of);
        self.end_sign(h, r)
    }

    /// C_Sign (with `data`) or C_SignFinal (`data` None). `capacity` is the
    /// caller's buffer size, None for a length query; the operation stays active
    /// after a length query or a too-small buffer (§5.2).
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, data, mechanism and TPM errors (which end
    /// the operation).
    pub fn sign(
        &mut self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<SignOutput, Rv> {
        let sig_len = self
            .session(h)?
            .sign
            .as_ref()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?
            .plan
            .sig_len;
        if capacity.is_none_or(|c| c < sig_len) {
            return Ok(SignOutput::Length(sig_len));
        }
        let Some(mut op) = self.session(h)?.sign.take() else {
            return Err(CKR_OPERATION_NOT_INITIALIZED);
        };
        if let Some(d) = data {
            op.input.update(d).map_err(mech_rv_of)?;
        }
        let (hash, digest) = op.input.finish(&op.plan).map_err(mech_rv_of)?;
        let sig = self.tpm_sign(h, op.key, &op.plan, hash, &digest)?;
        Ok(SignOutput::Signature(sig))
    }

    /// The key's authValue: empty, or HMAC(token secret, id) with the secret from
    /// the login (unsealed now for an older key of a no-PIN token).
    pub(super) fn key_auth(
        &mut self,
        slot: usize,
        record: &KeyRecord,
    ) -> Result<Zeroizing<Vec<u8>>, Rv> {
        if record.empty_auth {
            return Ok(Zeroizing::new(Vec::new()));
        }
        let id = from_hex(&record.id, std::path::Path::new(&record.id))
            .map_err(|_| CKR_GENERAL_ERROR)?;
        if let Some(Login::User(Some(secret))) = &self.slots[slot].login {
            return Ok(crate::token::key_auth(secret, &id));
        }
        if !self.slots[slot].token.no_pin {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let label = self.slots[slot].label.clone();
        let secret = self.with_connected(|app, c| app.unseal_token(c, &label, b"", false))?;
        let auth = crate::token::key_auth(&secret, &id);
        self.slots[slot].login = Some(Login::User(Some(secret)));
        Ok(auth)
    }

    /// The authValue of key object `oh` as seen from session `h`: a session
    /// key's own, or a token key's from [`Module::key_auth`].
    pub(super) fn object_auth(
        &mut self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
    ) -> Result<Zeroizing<Vec<u8>>, Rv> {
        let (slot, record, own) = {
            let o = self.object(h, oh)?;
            let k = o.key().ok_or(CKR_KEY_HANDLE_INVALID)?;
            (o.slot, k.record.clone(), k.auth.clone())
        };
        match own {
            Some(a) => Ok(Zeroizing::new(a.to_vec())),
            None => self.key_auth(slot, &record),
        }
    }

    /// The TPM blob behind key object `oh`.
    pub(super) fn wrapped(&self, oh: CK_OBJECT_HANDLE) -> Result<Arc<WrappedKey>, Rv> {
        self.objects
            .get((oh as usize).wrapping_sub(1))
            .and_then(|o| o.as_ref())
            .and_then(|o| o.key())
            .map(|k| k.wrapped.clone())
            .ok_or(CKR_KEY_HANDLE_INVALID)
    }

    /// Flushes the key of object `oh` if it is loaded (before the object goes).
    pub(super) fn unload(&mut self, oh: CK_OBJECT_HANDLE) {
        if let (Ok(w), Some(c)) = (self.wrapped(oh), self.conn.as_mut()) {
            c.unload(&w);
        }
    }

    /// One TPM2_Sign once the key is loaded, through the salted session (also for
    /// a key with no authValue: the session binds the key's Name, see
    /// [`crate::connection`]).
    pub(super) fn tpm_sign(
        &mut self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        plan: &SignPlan,
        hash: crate::crypto::hash::HashAlg,
        digest: &[u8],
    ) -> Result<Vec<u8>, Rv> {
        let auth = self.object_auth(h, oh)?;
        let wrapped = self.wrapped(oh)?;
        let hash_id = tpm_commands::constants::TpmAlgId(hash.alg_id());
        let r = self
            .conn()?
            .sign(&wrapped, &auth, digest, plan.scheme, hash_id);
        let sig = r.map_err(|e| self.fail(&e))?;
        mechanisms::format_signature(&sig, plan).map_err(|what| {
            diagnose(&Error::Integrity {
                cc: tpm_commands::constants::TpmCc::SIGN,
                what,
            });
            CKR_DEVICE_ERROR
        })
    }
}
