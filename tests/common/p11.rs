//! The built `libtpmkey.so` loaded with dlopen and called through its
//! CK_FUNCTION_LIST, the way OpenSSH, p11-kit and OpenSSL's engine load it: the
//! loader, one lock per test (the module's state is per process), and small
//! wrappers for the calls most tests make.
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks, dead_code)]

use std::path::Path;
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard};

use cryptoki_sys::*;

use super::ssh::module_path;

static TURN: Mutex<()> = Mutex::new(());

/// A test's turn with the module; the module is finalized when it ends, so that
/// one failure does not cascade.
pub struct Turn(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = unsafe { (functions().C_Finalize.expect("C_Finalize"))(null_mut()) };
    }
}

/// Takes this test's turn.
pub fn turn() -> Turn {
    Turn(TURN.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The module's function list (the library stays loaded for the whole process).
pub fn functions() -> &'static CK_FUNCTION_LIST {
    static LIST: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let p = *LIST.get_or_init(|| {
        let lib = unsafe { libloading::Library::new(module_path()) }.expect("dlopen libtpmkey.so");
        let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
            unsafe { lib.get(b"C_GetFunctionList\0") }.expect("C_GetFunctionList exported");
        let mut list = null_mut();
        assert_eq!(unsafe { get(&mut list) }, CKR_OK);
        assert!(!list.is_null());
        std::mem::forget(lib);
        list as usize
    });
    unsafe { &*(p as *const CK_FUNCTION_LIST) }
}

/// Calls a function of the list: `ck!(C_Foo(a, b))`. (The arguments are raw
/// pointers the tests pass on purpose, null ones included.)
/// Test files that use it say `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! ck {
    ($f:ident($($a:expr),* $(,)?)) => {
        unsafe { ($crate::common::p11::functions().$f.expect(stringify!($f)))($($a),*) }
    };
}

/// Points the module (read at C_Initialize) at a TPM and a store.
pub fn environment(tcti: &str, store: &Path) {
    std::env::set_var("TPMKEY_TCTI", tcti);
    std::env::set_var("TPMKEY_STORE", store);
    std::env::set_var("TPMKEY_PKCS11_QUIET", "1");
    std::env::remove_var("TPM2TOOLS_TCTI");
}

/// `tpmkey args…`, which must succeed; its stdout.
pub fn tk(tcti: &str, store: &Path, args: &[&str]) -> String {
    let (ok, out, err) = super::run_tpmkey_in(tcti, store, args);
    assert!(ok, "tpmkey {args:?}: {err}");
    out
}

/// C_Initialize with no arguments.
pub fn init() {
    assert_eq!(ck!(C_Initialize(null_mut())), CKR_OK);
}

/// C_Finalize.
pub fn finalize() {
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_OK);
}

/// The slots with a token.
pub fn slots() -> Vec<CK_SLOT_ID> {
    let mut n: CK_ULONG = 0;
    assert_eq!(ck!(C_GetSlotList(CK_TRUE, null_mut(), &mut n)), CKR_OK);
    let mut v = vec![0; n as usize];
    assert_eq!(ck!(C_GetSlotList(CK_TRUE, v.as_mut_ptr(), &mut n)), CKR_OK);
    v.truncate(n as usize);
    v
}

/// A serial session, read/write when `rw`.
pub fn open(slot: CK_SLOT_ID, rw: bool) -> CK_SESSION_HANDLE {
    let mut h = 0;
    let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
    assert_eq!(
        ck!(C_OpenSession(slot, flags, null_mut(), None, &mut h)),
        CKR_OK
    );
    h
}

/// C_Login.
pub fn login(h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> CK_RV {
    ck!(C_Login(
        h,
        user,
        pin.as_ptr() as *mut u8,
        pin.len() as CK_ULONG
    ))
}

/// A CK_ULONG attribute (the value must outlive the call).
pub fn ulong_attr(t: CK_ATTRIBUTE_TYPE, v: &CK_ULONG) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: v as *const CK_ULONG as *mut _,
        ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
    }
}

/// A byte-string attribute (the value must outlive the call).
pub fn bytes_attr(t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: v.as_ptr() as *mut _,
        ulValueLen: v.len() as CK_ULONG,
    }
}

/// CK_TRUE and CK_FALSE as attribute values.
pub static TRUE: CK_BBOOL = CK_TRUE;
/// See [`TRUE`].
pub static FALSE: CK_BBOOL = CK_FALSE;

/// A CK_BBOOL attribute.
pub fn bool_attr(t: CK_ATTRIBUTE_TYPE, v: bool) -> CK_ATTRIBUTE {
    bytes_attr(t, std::slice::from_ref(if v { &TRUE } else { &FALSE }))
}

/// Objects matching `template` in session `h`.
pub fn find_with(h: CK_SESSION_HANDLE, template: &mut [CK_ATTRIBUTE]) -> Vec<CK_OBJECT_HANDLE> {
    assert_eq!(
        ck!(C_FindObjectsInit(
            h,
            template.as_mut_ptr(),
            template.len() as CK_ULONG
        )),
        CKR_OK
    );
    let mut out = Vec::new();
    loop {
        let mut buf = [0 as CK_OBJECT_HANDLE; 4];
        let mut n = 0;
        assert_eq!(ck!(C_FindObjects(h, buf.as_mut_ptr(), 4, &mut n)), CKR_OK);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    assert_eq!(ck!(C_FindObjectsFinal(h)), CKR_OK);
    out
}

/// The one object of `class` labelled `label`.
pub fn find_one(h: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS, label: &str) -> CK_OBJECT_HANDLE {
    let mut t = [
        ulong_attr(CKA_CLASS, &class),
        bytes_attr(CKA_LABEL, label.as_bytes()),
    ];
    let found = find_with(h, &mut t);
    assert_eq!(found.len(), 1, "objects of class {class} labelled {label}");
    found[0]
}

/// One attribute's value, or the return value of C_GetAttributeValue.
pub fn try_attr(
    h: CK_SESSION_HANDLE,
    o: CK_OBJECT_HANDLE,
    t: CK_ATTRIBUTE_TYPE,
) -> Result<Vec<u8>, CK_RV> {
    let mut a = CK_ATTRIBUTE {
        type_: t,
        pValue: null_mut(),
        ulValueLen: 0,
    };
    let rv = ck!(C_GetAttributeValue(h, o, &mut a, 1));
    if rv != CKR_OK {
        return Err(rv);
    }
    let mut v = vec![0u8; a.ulValueLen as usize];
    a.pValue = v.as_mut_ptr() as *mut _;
    let rv = ck!(C_GetAttributeValue(h, o, &mut a, 1));
    if rv != CKR_OK {
        return Err(rv);
    }
    v.truncate(a.ulValueLen as usize);
    Ok(v)
}

/// One attribute's value, which must be readable.
pub fn attr(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    try_attr(h, o, t).unwrap_or_else(|rv| panic!("attribute {t:#x} of {o}: {rv:#x}"))
}

/// A mechanism with a parameter struct (which must outlive the call).
pub fn mech_with<T>(mechanism: CK_MECHANISM_TYPE, param: &mut T) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism,
        pParameter: param as *mut T as *mut _,
        ulParameterLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

/// A mechanism without parameters.
pub fn mech(mechanism: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

/// The raw uncompressed point inside CKA_EC_POINT (a DER OCTET STRING).
pub fn ec_point(der: &[u8]) -> &[u8] {
    assert_eq!(der[0], 0x04, "an OCTET STRING");
    if der[1] < 0x80 {
        &der[2..]
    } else {
        &der[3..]
    }
}

/// C_GetTokenInfo's flags.
pub fn token_flags(slot: CK_SLOT_ID) -> CK_FLAGS {
    let mut ti: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(ck!(C_GetTokenInfo(slot, &mut ti)), CKR_OK);
    ti.flags
}
