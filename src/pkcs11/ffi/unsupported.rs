//! The functions the module does not offer. Each still checks, in the order of
//! PKCS#11 2.40 Base §5 (initialization, the session or slot handle, then its
//! pointer arguments), before answering CKR_FUNCTION_NOT_SUPPORTED; the legacy
//! parallel-function calls answer CKR_FUNCTION_NOT_PARALLEL (§5.16), and
//! C_WaitForSlotEvent with CKF_DONT_BLOCK answers CKR_NO_EVENT (§5.5: token
//! insertion and removal are store changes, never events).

use std::os::raw::c_void;

use super::{bytes, out, template, with_module};
use cryptoki_sys::*;

/// CKR_ARGUMENTS_BAD for a null pointer that must not be null.
fn non_null<T>(p: *const T) -> Result<(), CK_RV> {
    if p.is_null() {
        Err(CKR_ARGUMENTS_BAD)
    } else {
        Ok(())
    }
}

/// Checks a `len`-byte input buffer (null only when empty).
///
/// # Safety
/// A non-null `p` points to `len` readable bytes.
unsafe fn input(p: *const u8, len: CK_ULONG) -> Result<(), CK_RV> {
    // SAFETY: as promised.
    unsafe { bytes(p, len) }.map(|_| ())
}

#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    with_module(|m| {
        m.check_slot(slot)?;
        // SAFETY: checked in `input`.
        unsafe { input(pin, pin_len) }?;
        non_null(label)?;
        // Tokens are made with `tpmkey token add`.
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetOperationState(
    h: CK_SESSION_HANDLE,
    _state: *mut CK_BYTE,
    len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        non_null(len)?;
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetOperationState(
    h: CK_SESSION_HANDLE,
    state: *mut CK_BYTE,
    len: CK_ULONG,
    _enc_key: CK_OBJECT_HANDLE,
    _auth_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        non_null(state)?;
        // SAFETY: checked in `input`.
        unsafe { input(state, len) }?;
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    })
}

/// C_SignRecoverInit and C_VerifyRecoverInit: no mechanism with message recovery.
macro_rules! recover_init {
    ($($name:ident),*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            h: CK_SESSION_HANDLE,
            mech: *mut CK_MECHANISM,
            _key: CK_OBJECT_HANDLE,
        ) -> CK_RV {
            with_module(|m| {
                m.check_session(h)?;
                non_null(mech)?;
                Err(CKR_FUNCTION_NOT_SUPPORTED)
            })
        }
    )*};
}
recover_init!(C_SignRecoverInit, C_VerifyRecoverInit);

/// Functions of the shape (session, input, input length, output, output
/// length): the recovery operations and the dual-function updates (§5.12,
/// §5.13, §5.15), which need multi-part RSA or recovery mechanisms.
macro_rules! in_out {
    ($($name:ident),*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            h: CK_SESSION_HANDLE,
            data: *mut CK_BYTE,
            data_len: CK_ULONG,
            _out: *mut CK_BYTE,
            out_len: *mut CK_ULONG,
        ) -> CK_RV {
            with_module(|m| {
                m.check_session(h)?;
                // SAFETY: checked in `input`.
                unsafe { input(data, data_len) }?;
                non_null(out_len)?;
                Err(CKR_FUNCTION_NOT_SUPPORTED)
            })
        }
    )*};
}
in_out!(
    C_SignRecover,
    C_VerifyRecover,
    C_DigestEncryptUpdate,
    C_DecryptDigestUpdate,
    C_SignEncryptUpdate,
    C_DecryptVerifyUpdate
);

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    attrs: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        non_null(mech)?;
        // SAFETY: checked in `template`.
        unsafe { template(attrs, n) }?;
        // SAFETY: checked for null by `out`.
        unsafe { out(key) }?;
        // Secret keys are derived (C_DeriveKey), not generated.
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _wrapping: CK_OBJECT_HANDLE,
    _key: CK_OBJECT_HANDLE,
    _wrapped: *mut CK_BYTE,
    wrapped_len: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        non_null(mech)?;
        non_null(wrapped_len)?;
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _unwrapping: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: CK_ULONG,
    attrs: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        non_null(mech)?;
        // SAFETY: checked in `input` and `template`.
        unsafe {
            input(wrapped, wrapped_len)?;
            template(attrs, n)?;
        }
        // SAFETY: checked for null by `out`.
        unsafe { out(key) }?;
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    })
}

/// §5.16: legacy functions of parallel sessions, which no session is.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionStatus(h: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        Err(CKR_FUNCTION_NOT_PARALLEL)
    })
}

/// §5.16, as [`C_GetFunctionStatus`].
#[no_mangle]
pub unsafe extern "C" fn C_CancelFunction(h: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        Err(CKR_FUNCTION_NOT_PARALLEL)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    slot: *mut CK_SLOT_ID,
    reserved: *mut c_void,
) -> CK_RV {
    with_module(|_| {
        if !reserved.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        non_null(slot)?;
        if flags & CKF_DONT_BLOCK != 0 {
            return Err(CKR_NO_EVENT);
        }
        // Waiting would block forever: no slot event ever comes.
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    })
}
