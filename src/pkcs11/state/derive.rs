//! C_DeriveKey with CKM_ECDH1_DERIVE (PKCS#11 2.40 Base §5.14, Current
//! Mechanisms §2.3.16): the shared secret from one TPM2_ECDH_ZGen (the peer's
//! point and the shared point encrypted on the bus), the KDF on the host, and
//! the result a CKO_SECRET_KEY session object of the calling session.

use super::verify::key_handle;
use super::{Kind, Module, Object, Rv};
use crate::keys::decrypt::ecdh_zgen;
use crate::pkcs11::ecdh::{self, EcdhParams};
use crate::pkcs11::mechanisms::Family;
use crate::pkcs11::objects::Class;
use crate::pkcs11::secret::{SecretKey, SecretSpec};
use crate::pkcs11::template::Template;
use cryptoki_sys::*;

impl Module {
    /// C_DeriveKey: returns the new secret key's handle.
    ///
    /// # Errors
    /// CKR_KEY_HANDLE_INVALID, CKR_MECHANISM_INVALID, CKR_KEY_TYPE_INCONSISTENT
    /// (not an EC private key), CKR_KEY_FUNCTION_NOT_PERMITTED (CKA_DERIVE false),
    /// CKR_MECHANISM_PARAM_INVALID (KDF, shared data, a point off the curve),
    /// template errors, CKR_USER_NOT_LOGGED_IN, TPM errors.
    pub fn derive_key(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        params: Option<EcdhParams>,
        base: CK_OBJECT_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        self.session(h)?;
        let o = self.object(h, base).map_err(key_handle)?;
        let k = o.key().ok_or(CKR_KEY_TYPE_INCONSISTENT)?;
        if mech != CKM_ECDH1_DERIVE {
            return Err(CKR_MECHANISM_INVALID);
        }
        if k.class != Class::Private || crate::pkcs11::mechanisms::family(k.view.alg) != Family::Ec
        {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        if !k.view.usage().decrypt {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        let (slot, private) = (o.slot, o.is_private());
        let base_generated = !k.view.imported;
        let plan = ecdh::plan(params, k.view.alg)?;
        let field_len = plan.x.len();
        let private_default = !self.slots[slot].token.no_pin;
        let spec = SecretSpec::parse(&Template::new(template)?, private_default)?;
        let len = spec.value_len.unwrap_or(plan.default_len());
        plan.check_len(len)?;
        if private && !self.user_logged_in(slot) {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let auth = self.object_auth(h, base)?;
        let wrapped = self.wrapped(base)?;
        let r = self.conn()?.use_key(&wrapped, |tpm, key, session| {
            ecdh_zgen(tpm, key, session, &auth, &plan.x, &plan.y, field_len)
        });
        let z = r.map_err(|e| self.fail(&e))?;
        let value = plan.derive(&z, len);
        // The base key never left the TPM: always sensitive, never extractable
        // when the TPM made it.
        let secret = SecretKey::derived(spec, value, base_generated, base_generated);
        self.objects.push(Some(Object {
            slot,
            session: Some(h),
            kind: Kind::Secret(Box::new(secret)),
        }));
        Ok(self.objects.len() as CK_OBJECT_HANDLE)
    }
}
