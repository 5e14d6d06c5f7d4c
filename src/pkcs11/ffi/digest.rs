//! Message digesting (PKCS#11 2.40 Base §5.10).

use super::params::{capacity, digest_mechanism, put};
use super::{bytes, with_module};
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(h: CK_SESSION_HANDLE, mech: *mut CK_MECHANISM) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `digest_mechanism`.
        let (mech, has_params) = unsafe { digest_mechanism(mech) }?;
        m.digest_init(h, mech, has_params)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: pointers checked by the helpers.
        let (data, cap) = unsafe { (bytes(data, data_len)?, capacity(digest, digest_len)?) };
        let o = m.digest(h, Some(data), cap)?;
        // SAFETY: as given by the caller; the module checked the capacity.
        unsafe { put(o, digest, digest_len) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `bytes`.
        let data = unsafe { bytes(data, len) }?;
        m.digest_update(h, data)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    with_module(|m| m.digest_key(h, key))
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    h: CK_SESSION_HANDLE,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `capacity`.
        let cap = unsafe { capacity(digest, digest_len) }?;
        let o = m.digest(h, None, cap)?;
        // SAFETY: as given by the caller; the module checked the capacity.
        unsafe { put(o, digest, digest_len) }
    })
}
