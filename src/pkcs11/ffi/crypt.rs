//! Encryption with public keys (PKCS#11 2.40 Base §5.8, in software) and
//! decryption with private keys in the TPM (§5.9): one set of entry points,
//! made twice by [`crypt_entry_points!`], since the two differ only in the
//! [`Module`](crate::pkcs11::state::Module) methods they call.

use super::params::{capacity, crypt_mechanism, put};
use super::{bytes, out, with_module};
use cryptoki_sys::*;

/// C_xInit, C_x, C_xUpdate and C_xFinal for one direction: `init`, `single`
/// and `multipart` name the Module methods behind them (RSA is single-part
/// only, so Update and Final go to `multipart`, which says so).
macro_rules! crypt_entry_points {
    ($init_fn:ident, $single_fn:ident, $update_fn:ident, $final_fn:ident =>
     $init:ident, $single:ident, $multipart:ident) => {
        #[no_mangle]
        pub unsafe extern "C" fn $init_fn(
            h: CK_SESSION_HANDLE,
            mech: *mut CK_MECHANISM,
            key: CK_OBJECT_HANDLE,
        ) -> CK_RV {
            with_module(|m| {
                m.check_session(h)?;
                // SAFETY: checked in `crypt_mechanism`.
                let (mech, oaep) = unsafe { crypt_mechanism(mech) }?;
                m.$init(h, mech, oaep, key)
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $single_fn(
            h: CK_SESSION_HANDLE,
            input: *mut CK_BYTE,
            input_len: CK_ULONG,
            output: *mut CK_BYTE,
            output_len: *mut CK_ULONG,
        ) -> CK_RV {
            with_module(|m| {
                m.check_session(h)?;
                // SAFETY: pointers checked by the helpers.
                let (input, cap) =
                    unsafe { (bytes(input, input_len)?, capacity(output, output_len)?) };
                let o = m.$single(h, input, cap)?;
                // SAFETY: as given by the caller; the module checked the capacity.
                unsafe { put(o, output, output_len) }
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $update_fn(
            h: CK_SESSION_HANDLE,
            input: *mut CK_BYTE,
            input_len: CK_ULONG,
            output: *mut CK_BYTE,
            output_len: *mut CK_ULONG,
        ) -> CK_RV {
            with_module(|m| {
                m.check_session(h)?;
                // SAFETY: pointers checked by the helpers.
                unsafe {
                    bytes(input, input_len)?;
                    capacity(output, output_len)?;
                }
                m.$multipart(h)
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $final_fn(
            h: CK_SESSION_HANDLE,
            _output: *mut CK_BYTE,
            output_len: *mut CK_ULONG,
        ) -> CK_RV {
            with_module(|m| {
                m.check_session(h)?;
                // SAFETY: checked for null by `out`.
                unsafe { out(output_len) }?;
                m.$multipart(h)
            })
        }
    };
}

crypt_entry_points!(C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal =>
    encrypt_init, encrypt, encrypt_multipart);
crypt_entry_points!(C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal =>
    decrypt_init, decrypt, decrypt_multipart);
