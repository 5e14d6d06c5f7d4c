//! The functions the module does not offer: each answers
//! CKR_FUNCTION_NOT_SUPPORTED.

use std::os::raw::c_void;

use cryptoki_sys::*;

macro_rules! unsupported {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
                CKR_FUNCTION_NOT_SUPPORTED
            }
        )*
    };
}

unsupported! {
    C_InitToken(_a1: CK_SLOT_ID, _a2: *mut CK_UTF8CHAR, _a3: CK_ULONG, _a4: *mut CK_UTF8CHAR);
    C_GetOperationState(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: *mut CK_ULONG);
    C_SetOperationState(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: CK_OBJECT_HANDLE, _a5: CK_OBJECT_HANDLE);
    C_EncryptInit(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: CK_OBJECT_HANDLE);
    C_Encrypt(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_EncryptUpdate(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_EncryptFinal(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: *mut CK_ULONG);
    C_DecryptInit(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: CK_OBJECT_HANDLE);
    C_Decrypt(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_DecryptUpdate(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_DecryptFinal(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: *mut CK_ULONG);
    C_DigestInit(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM);
    C_Digest(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_DigestUpdate(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG);
    C_DigestKey(_a1: CK_SESSION_HANDLE, _a2: CK_OBJECT_HANDLE);
    C_DigestFinal(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: *mut CK_ULONG);
    C_SignRecoverInit(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: CK_OBJECT_HANDLE);
    C_SignRecover(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_VerifyInit(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: CK_OBJECT_HANDLE);
    C_Verify(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: CK_ULONG);
    C_VerifyUpdate(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG);
    C_VerifyFinal(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG);
    C_VerifyRecoverInit(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: CK_OBJECT_HANDLE);
    C_VerifyRecover(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_DigestEncryptUpdate(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_DecryptDigestUpdate(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_SignEncryptUpdate(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_DecryptVerifyUpdate(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG, _a4: *mut CK_BYTE, _a5: *mut CK_ULONG);
    C_GenerateKey(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: *mut CK_ATTRIBUTE, _a4: CK_ULONG, _a5: *mut CK_OBJECT_HANDLE);
    C_WrapKey(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: CK_OBJECT_HANDLE, _a4: CK_OBJECT_HANDLE, _a5: *mut CK_BYTE, _a6: *mut CK_ULONG);
    C_UnwrapKey(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: CK_OBJECT_HANDLE, _a4: *mut CK_BYTE, _a5: CK_ULONG, _a6: *mut CK_ATTRIBUTE, _a7: CK_ULONG, _a8: *mut CK_OBJECT_HANDLE);
    C_DeriveKey(_a1: CK_SESSION_HANDLE, _a2: *mut CK_MECHANISM, _a3: CK_OBJECT_HANDLE, _a4: *mut CK_ATTRIBUTE, _a5: CK_ULONG, _a6: *mut CK_OBJECT_HANDLE);
    C_SeedRandom(_a1: CK_SESSION_HANDLE, _a2: *mut CK_BYTE, _a3: CK_ULONG);
    C_GetFunctionStatus(_a1: CK_SESSION_HANDLE);
    C_CancelFunction(_a1: CK_SESSION_HANDLE);
    C_WaitForSlotEvent(_a1: CK_FLAGS, _a2: *mut CK_SLOT_ID, _a3: *mut c_void);
}
