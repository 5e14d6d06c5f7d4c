//! The Cryptoki C ABI (PKCS#11 2.40 Base §5; C_GetInterface of 3.0 §5.4): the only
//! place in tpmkey with `unsafe`. Each entry point checks its pointers, converts
//! to Rust values, calls [`Module`] under one lock, writes results back, and
//! catches panics so that none unwinds into the host (OpenSSH, p11-kit, …).
#![allow(unsafe_code)]
// The entry points are the spec's functions, documented there; their safety
// contract is the spec's too (valid pointers and lengths, or null where allowed).
#![allow(non_snake_case, missing_docs, clippy::missing_safety_doc)]

use std::os::raw::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use cryptoki_sys::*;

use super::mechanisms::PssParams;
use super::state::{Module, Rv};

mod crypt;
mod derive;
mod digest;
mod keygen;
mod objects;
mod params;
mod session;
mod sign;
mod token;
mod unsupported;
mod verify;

use crypt::*;
use derive::*;
use digest::*;
use keygen::*;
use objects::*;
use session::*;
use sign::*;
use token::*;
use unsupported::*;
use verify::*;

/// The module state; None between C_Finalize and C_Initialize.
static STATE: Mutex<Option<Module>> = Mutex::new(None);

const VERSION_240: CK_VERSION = CK_VERSION {
    major: 2,
    minor: 40,
};

/// The library's own version (the crate's major.minor).
fn library_version() -> CK_VERSION {
    CK_VERSION {
        major: env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
        minor: env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
    }
}

fn lock() -> MutexGuard<'static, Option<Module>> {
    // A panic while the lock was held is caught below; the state it left is
    // still consistent at the Rust level, so keep serving.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f`, turning a panic into CKR_GENERAL_ERROR.
fn guard(f: impl FnOnce() -> Rv) -> Rv {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(CKR_GENERAL_ERROR)
}

/// Runs `f` on the initialized module. A forked child sees the module as not
/// initialized (PKCS#11 Base §5.4) and drops the parent's state without touching
/// the parent's TPM handles.
fn with_module(f: impl FnOnce(&mut Module) -> Result<(), Rv>) -> Rv {
    guard(|| {
        let mut g = lock();
        if g.as_ref().is_some_and(|m| m.pid() != std::process::id()) {
            if let Some(m) = g.take() {
                m.abandon();
            }
        }
        match g.as_mut() {
            None => CKR_CRYPTOKI_NOT_INITIALIZED,
            Some(m) => {
                let r = f(m);
                // Every call is one operation: a TPM without a resource manager
                // is let go of until the next one (what is loaded stays).
                m.release();
                match r {
                    Ok(()) => CKR_OK,
                    Err(rv) => rv,
                }
            }
        }
    })
}

/// `len` bytes at `p`; a null `p` is allowed only for an empty slice.
unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8], Rv> {
    let len = usize::try_from(len).map_err(|_| CKR_ARGUMENTS_BAD)?;
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() || len > isize::MAX as usize {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: the caller promises `len` readable bytes at non-null `p` (checked).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A writable out-parameter.
unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T, Rv> {
    // SAFETY: non-null pointers from the caller point to a writable T.
    unsafe { p.as_mut() }.ok_or(CKR_ARGUMENTS_BAD)
}

/// A template as (type, value) pairs.
unsafe fn template(
    p: *const CK_ATTRIBUTE,
    n: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>, Rv> {
    let n = usize::try_from(n).map_err(|_| CKR_ARGUMENTS_BAD)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() || n > 4096 {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: the caller passes `n` attributes at non-null `p`.
    let attrs = unsafe { std::slice::from_raw_parts(p, n) };
    attrs
        .iter()
        .map(|a| {
            // SAFETY: each attribute's pValue holds ulValueLen bytes.
            let v = unsafe { bytes(a.pValue as *const u8, a.ulValueLen) }?;
            Ok((a.type_, v.to_vec()))
        })
        .collect()
}

/// Writes `list` the PKCS#11 way: a null buffer asks for the count; a short one
/// gets CKR_BUFFER_TOO_SMALL and the count.
unsafe fn write_list(list: &[CK_ULONG], p: *mut CK_ULONG, count: *mut CK_ULONG) -> Result<(), Rv> {
    // SAFETY: checked for null by `out`.
    let count = unsafe { out(count) }?;
    let n = list.len() as CK_ULONG;
    if p.is_null() {
        *count = n;
        return Ok(());
    }
    if *count < n {
        *count = n;
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    // SAFETY: the caller's buffer holds *count >= n elements.
    unsafe { std::ptr::copy_nonoverlapping(list.as_ptr(), p, list.len()) };
    *count = n;
    Ok(())
}

/// Blank-padded fixed-size text (CK_INFO, CK_TOKEN_INFO fields), cut at a char
/// boundary.
fn pad(dst: &mut [u8], s: &str) {
    dst.fill(b' ');
    let mut end = s.len().min(dst.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    dst[..end].copy_from_slice(&s.as_bytes()[..end]);
}

// ---- general purpose ----

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    guard(|| {
        if !args.is_null() {
            // SAFETY: a non-null argument is a CK_C_INITIALIZE_ARGS.
            let a = unsafe { &*(args as *const CK_C_INITIALIZE_ARGS) };
            if !a.pReserved.is_null() {
                return CKR_ARGUMENTS_BAD;
            }
            let given = [
                a.CreateMutex.is_some(),
                a.DestroyMutex.is_some(),
                a.LockMutex.is_some(),
                a.UnlockMutex.is_some(),
            ];
            if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
                return CKR_ARGUMENTS_BAD;
            }
            // We lock with the OS's primitives; an application that insists on
            // its own (functions given, CKF_OS_LOCKING_OK clear) cannot have that.
            if given[0] && a.flags & CKF_OS_LOCKING_OK == 0 {
                return CKR_CANT_LOCK;
            }
        }
        let mut g = lock();
        match g.as_ref() {
            Some(m) if m.pid() == std::process::id() => return CKR_CRYPTOKI_ALREADY_INITIALIZED,
            Some(_) => {
                if let Some(m) = g.take() {
                    m.abandon();
                }
            }
            None => {}
        }
        *g = Some(Module::new());
        CKR_OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard(|| {
        let mut g = lock();
        match g.take() {
            None => CKR_CRYPTOKI_NOT_INITIALIZED,
            Some(m) if m.pid() != std::process::id() => {
                m.abandon();
                CKR_CRYPTOKI_NOT_INITIALIZED
            }
            // Initialization first, then the argument (§5.4).
            Some(m) if !reserved.is_null() => {
                *g = Some(m);
                CKR_ARGUMENTS_BAD
            }
            // Dropping the module flushes its loaded keys and session.
            Some(m) => {
                drop(m);
                CKR_OK
            }
        }
    })
}

/// Flushes what this process loaded when it exits without C_Finalize (OpenSSH's
/// ssh, for one): on a TPM with no resource manager those slots would otherwise
/// stay taken. Runs from the ELF destructors, at exit() or dlclose().
extern "C" fn at_unload() {
    let _ = catch_unwind(|| {
        if let Ok(mut g) = STATE.try_lock() {
            if let Some(m) = g.take() {
                if m.pid() == std::process::id() {
                    drop(m);
                } else {
                    m.abandon();
                }
            }
        }
    });
}

#[used]
#[link_section = ".fini_array"]
static AT_UNLOAD: extern "C" fn() = at_unload;

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    with_module(|_| {
        // SAFETY: checked for null by `out`.
        let info = unsafe { out(info) }?;
        info.cryptokiVersion = VERSION_240;
        pad(&mut info.manufacturerID, "tpmkey");
        info.flags = 0;
        pad(
            &mut info.libraryDescription,
            "tpmkey TPM 2.0 PKCS#11 module",
        );
        info.libraryVersion = library_version();
        Ok(())
    })
}

struct FunctionList(CK_FUNCTION_LIST);
// SAFETY: the list holds only function pointers and is never written.
unsafe impl Sync for FunctionList {}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| {
        if list.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        // SAFETY: non-null, writable (the caller's out-parameter).
        unsafe { *list = &FUNCTIONS.0 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST };
        CKR_OK
    })
}

struct Interface(CK_INTERFACE);
// SAFETY: points to static, never-written data.
unsafe impl Sync for Interface {}

static INTERFACE_NAME: &[u8] = b"PKCS 11\0";
static INTERFACE: Interface = Interface(CK_INTERFACE {
    pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_CHAR,
    pFunctionList: &FUNCTIONS.0 as *const CK_FUNCTION_LIST as *mut c_void,
    flags: 0,
});

/// PKCS#11 3.0 §5.4: the one interface, "PKCS 11" version 2.40.
#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    list: *mut CK_INTERFACE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: checked for null by `out`.
        let count = match unsafe { out(count) } {
            Ok(c) => c,
            Err(rv) => return rv,
        };
        if list.is_null() {
            *count = 1;
            return CKR_OK;
        }
        if *count < 1 {
            *count = 1;
            return CKR_BUFFER_TOO_SMALL;
        }
        // SAFETY: room for one CK_INTERFACE (checked above).
        unsafe {
            *list = CK_INTERFACE {
                pInterfaceName: INTERFACE.0.pInterfaceName,
                pFunctionList: INTERFACE.0.pFunctionList,
                flags: 0,
            }
        };
        *count = 1;
        CKR_OK
    })
}

/// PKCS#11 3.0 §5.4.
#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    iface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    guard(|| {
        if iface.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        if !name.is_null() {
            // SAFETY: a non-null name is NUL-terminated.
            let n = unsafe { std::ffi::CStr::from_ptr(name as *const std::os::raw::c_char) };
            if n.to_bytes_with_nul() != INTERFACE_NAME {
                return CKR_ARGUMENTS_BAD;
            }
        }
        // SAFETY: a non-null version points to a CK_VERSION.
        if let Some(v) = unsafe { version.as_ref() } {
            if (v.major, v.minor) != (2, 40) {
                return CKR_ARGUMENTS_BAD;
            }
        }
        if flags & !INTERFACE.0.flags != 0 {
            return CKR_ARGUMENTS_BAD;
        }
        // SAFETY: non-null out-parameter.
        unsafe { *iface = &INTERFACE.0 as *const CK_INTERFACE as *mut CK_INTERFACE };
        CKR_OK
    })
}

/// The mechanism and, for PSS, its parameters.
unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<(CK_MECHANISM_TYPE, Option<PssParams>), Rv> {
    // SAFETY: a non-null mechanism pointer points to a CK_MECHANISM.
    let mech = unsafe { p.as_ref() }.ok_or(CKR_ARGUMENTS_BAD)?;
    if mech.pParameter.is_null() || mech.ulParameterLen == 0 {
        return Ok((mech.mechanism, None));
    }
    if mech.ulParameterLen as usize != std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>() {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    // SAFETY: a parameter of the size of CK_RSA_PKCS_PSS_PARAMS; read unaligned
    // since the caller's buffer may not be aligned.
    let p = unsafe { std::ptr::read_unaligned(mech.pParameter as *const CK_RSA_PKCS_PSS_PARAMS) };
    Ok((
        mech.mechanism,
        Some(PssParams {
            hash: p.hashAlg,
            mgf: p.mgf,
            salt_len: p.sLen,
        }),
    ))
}

/// The 2.40 function list (§5.1 CK_FUNCTION_LIST order).
static FUNCTIONS: FunctionList = FunctionList(CK_FUNCTION_LIST {
    version: VERSION_240,
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
});
