//! Signing (PKCS#11 2.40 Base §5.11).

use super::{bytes, mechanism, out, with_module};
use crate::pkcs11::state::Rv;
use crate::pkcs11::state::{Module, SignOutput};
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `mechanism`.
        let (mech, pss) = unsafe { mechanism(mech) }?;
        m.sign_init(h, mech, pss, key)
    })
}

/// C_Sign and C_SignFinal: the length query and the too-small buffer keep the
/// operation going (§5.2); anything else ends it.
unsafe fn sign_out(
    m: &mut Module,
    h: CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    sig: *mut u8,
    len: *mut CK_ULONG,
) -> Result<(), Rv> {
    // SAFETY: checked for null by `out`.
    let len = unsafe { out(len) }?;
    let capacity = if sig.is_null() {
        None
    } else {
        Some(*len as usize)
    };
    match m.sign(h, data, capacity)? {
        SignOutput::Length(n) => {
            *len = n as CK_ULONG;
            if sig.is_null() {
                Ok(())
            } else {
                Err(CKR_BUFFER_TOO_SMALL)
            }
        }
        SignOutput::Signature(s) => {
            // SAFETY: capacity >= s.len() (checked by Module::sign).
            unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), sig, s.len()) };
            *len = s.len() as CK_ULONG;
            Ok(())
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `bytes`.
        let data = unsafe { bytes(data, data_len) }?;
        // SAFETY: checked in `sign_out`.
        unsafe { sign_out(m, h, Some(data), sig, sig_len) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `bytes`.
        let data = unsafe { bytes(data, len) }?;
        m.sign_update(h, data)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    h: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `sign_out`.
        unsafe { sign_out(m, h, None, sig, sig_len) }
    })
}
