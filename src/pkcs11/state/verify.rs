//! C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal (PKCS#11 2.40 Base
//! §5.13): signatures checked against a public key object in software, for every
//! signing mechanism; no TPM command and no login (public keys are public).

use tpm_commands::structures::TpmtPublic;

use super::{Module, Rv};
use crate::pkcs11::mechanisms::mech_rv_of;
use crate::pkcs11::mechanisms::{self, Input, PssParams, SignPlan};
use crate::pkcs11::objects::Class;
use crate::pkcs11::verify::check;
use cryptoki_sys::*;

/// A verification in progress.
pub(super) struct VerifyOp {
    public: TpmtPublic,
    plan: SignPlan,
    input: Input,
}

impl Module {
    /// C_VerifyInit.
    ///
    /// # Errors
    /// CKR_OPERATION_ACTIVE, CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT,
    /// CKR_KEY_FUNCTION_NOT_PERMITTED (a private key, or a key whose CKA_VERIFY
    /// is false), mechanism errors.
    pub fn verify_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        pss: Option<PssParams>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        if self.session(h)?.ops.verify.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let o = self.object(h, key).map_err(key_handle)?;
        let k = o.key().ok_or(CKR_KEY_TYPE_INCONSISTENT)?;
        let plan =
            mechanisms::plan(mech, pss, k.view.alg, k.view.modulus_len()).map_err(mech_rv_of)?;
        if k.class != Class::Public || !k.view.usage().sign {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        let op = VerifyOp {
            public: k.view.public.clone(),
            input: Input::new(&plan),
            plan,
        };
        self.session(h)?.ops.verify = Some(op);
        Ok(())
    }

    /// C_VerifyUpdate; an error ends the operation.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, CKR_DATA_LEN_RANGE.
    pub fn verify_update(&mut self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<(), Rv> {
        let s = self.session(h)?;
        let op = s.ops.verify.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if let Err(e) = op.input.update(data) {
            s.ops.verify = None;
            return Err(mech_rv_of(e));
        }
        Ok(())
    }

    /// C_Verify (`data` given) or C_VerifyFinal: always ends the operation.
    ///
    /// # Errors
    /// CKR_OPERATION_NOT_INITIALIZED, CKR_SIGNATURE_INVALID,
    /// CKR_SIGNATURE_LEN_RANGE, CKR_DATA_LEN_RANGE, CKR_DATA_INVALID.
    pub fn verify(
        &mut self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        signature: &[u8],
    ) -> Result<(), Rv> {
        let mut op = self
            .session(h)?
            .ops
            .verify
            .take()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if let Some(d) = data {
            op.input.update(d).map_err(mech_rv_of)?;
        }
        check(&op.public, &op.plan, op.input, signature)
    }
}

/// An object handle given as a key: CKR_KEY_HANDLE_INVALID when it is none.
pub(super) fn key_handle(rv: Rv) -> Rv {
    if rv == CKR_OBJECT_HANDLE_INVALID {
        CKR_KEY_HANDLE_INVALID
    } else {
        rv
    }
}
