//! Decryption with private keys in the TPM (PKCS#11 2.40 Base §5.9).

use super::params::{capacity, crypt_mechanism, put};
use super::{bytes, out, with_module};
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `crypt_mechanism`.
        let (mech, oaep) = unsafe { crypt_mechanism(mech) }?;
        m.decrypt_init(h, mech, oaep, key)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Decrypt(
    h: CK_SESSION_HANDLE,
    cipher: *mut CK_BYTE,
    cipher_len: CK_ULONG,
    plain: *mut CK_BYTE,
    plain_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: pointers checked by the helpers.
        let (cipher, cap) = unsafe { (bytes(cipher, cipher_len)?, capacity(plain, plain_len)?) };
        let o = m.decrypt(h, cipher, cap)?;
        // SAFETY: as given by the caller; the module checked the capacity.
        unsafe { put(o, plain, plain_len) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    h: CK_SESSION_HANDLE,
    cipher: *mut CK_BYTE,
    cipher_len: CK_ULONG,
    plain: *mut CK_BYTE,
    plain_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: pointers checked by the helpers.
        unsafe {
            bytes(cipher, cipher_len)?;
            capacity(plain, plain_len)?;
        }
        m.decrypt_multipart(h)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    h: CK_SESSION_HANDLE,
    plain: *mut CK_BYTE,
    plain_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked for null by `out`.
        unsafe { out(plain_len) }?;
        let _ = plain;
        m.decrypt_multipart(h)
    })
}
