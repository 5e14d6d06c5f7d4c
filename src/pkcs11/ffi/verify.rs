//! Verifying signatures (PKCS#11 2.40 Base §5.13).

use super::{bytes, mechanism, with_module};
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `mechanism`.
        let (mech, pss) = unsafe { mechanism(mech) }?;
        m.verify_init(h, mech, pss, key)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `bytes`.
        let (data, sig) = unsafe { (bytes(data, data_len)?, bytes(sig, sig_len)?) };
        m.verify(h, Some(data), sig)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `bytes`.
        let data = unsafe { bytes(data, len) }?;
        m.verify_update(h, data)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    h: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `bytes`.
        let sig = unsafe { bytes(sig, sig_len) }?;
        m.verify(h, None, sig)
    })
}
