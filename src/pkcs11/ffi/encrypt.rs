//! Encryption with public keys (PKCS#11 2.40 Base §5.8).

use super::params::{capacity, crypt_mechanism, put};
use super::{bytes, out, with_module};
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `crypt_mechanism`.
        let (mech, oaep) = unsafe { crypt_mechanism(mech) }?;
        m.encrypt_init(h, mech, oaep, key)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Encrypt(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    enc: *mut CK_BYTE,
    enc_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: pointers checked by the helpers.
        let (data, cap) = unsafe { (bytes(data, data_len)?, capacity(enc, enc_len)?) };
        let o = m.encrypt(h, data, cap)?;
        // SAFETY: as given by the caller; the module checked the capacity.
        unsafe { put(o, enc, enc_len) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    enc: *mut CK_BYTE,
    enc_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: pointers checked by the helpers.
        unsafe {
            bytes(data, data_len)?;
            capacity(enc, enc_len)?;
        }
        m.encrypt_multipart(h)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    h: CK_SESSION_HANDLE,
    enc: *mut CK_BYTE,
    enc_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked for null by `out`.
        unsafe { out(enc_len) }?;
        let _ = enc;
        m.encrypt_multipart(h)
    })
}
