//! Every function of CK_FUNCTION_LIST through the C ABI of the built module
//! (loaded with dlopen): its not-initialized, bad-handle and bad-argument answers
//! in the order PKCS#11 2.40 Base §5 checks them, then decryption (RSA OAEP and
//! PKCS #1 v1.5 in the TPM), ECDH derivation, digests, verification, encryption,
//! random seeding, session key pairs, PIN status flags and mechanism info, with
//! every return code the module promises for them, how each failed operation ends
//! (or goes on), how many TPM commands each takes, and a wire audit: what
//! TPM2_RSA_Decrypt and TPM2_ECDH_ZGen return never crosses the bus in clear.
//!
//! C_CreateObject, C_CopyObject, C_GetObjectSize and C_SetAttributeValue belong
//! to the certificates and data objects work and are tested there.
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod common;

use std::ptr::null_mut;

use common::p11::*;
use common::proxy::TpmProxy;
use common::{Swtpm, TempDir};
use cryptoki_sys::*;
use sha2::Digest;

/// A swtpm with a PIN token "t" holding the keys `keys` (label, algorithm, usage).
struct Setup {
    sim: Swtpm,
    dir: TempDir,
}

impl Setup {
    fn new(keys: &[(&str, &str, &str)]) -> Setup {
        let s = Setup {
            sim: Swtpm::start(),
            dir: TempDir::new("p11fn"),
        };
        let (t, st) = (s.sim.tcti(), s.store());
        tk(&t, &st, &["init"]);
        tk(
            &t,
            &st,
            &[
                "token",
                "add",
                "--label",
                "t",
                "--userpin",
                "1234",
                "--sopin",
                "5678",
            ],
        );
        for (label, alg, usage) in keys {
            tk(
                &t,
                &st,
                &[
                    "key",
                    "add",
                    "--token",
                    "t",
                    "--label",
                    label,
                    "--algorithm",
                    alg,
                    "--usage",
                    usage,
                    "--userpin",
                    "1234",
                ],
            );
        }
        s
    }

    fn store(&self) -> std::path::PathBuf {
        self.dir.path().join("store")
    }
}

const BAD: CK_ULONG = 0xdead;

/// What a function's handle argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handle {
    Session,
    Slot,
    None,
}

/// One function of the list, called with handle `h` and either good pointers or
/// a null where one is required (`bad`).
struct Fun {
    name: &'static str,
    handle: Handle,
    /// It takes a pointer that must not be null.
    pointers: bool,
    call: fn(CK_ULONG, bool) -> CK_RV,
}

fn p<T>(bad: bool, v: &mut T) -> *mut T {
    if bad {
        null_mut()
    } else {
        v
    }
}

/// Every function of the 2.40 CK_FUNCTION_LIST but C_Initialize (whose argument
/// rules tests/pkcs11_abi.rs covers) and the four object functions named above.
fn every_function() -> Vec<Fun> {
    use Handle::*;
    macro_rules! fun {
        ($name:literal, $h:expr, $ptr:expr, $call:expr) => {
            Fun {
                name: $name,
                handle: $h,
                pointers: $ptr,
                call: $call,
            }
        };
    }
    fn m() -> CK_MECHANISM {
        mech(CKM_SHA256)
    }
    let mut buf = [0u8; 512];
    let _ = &mut buf;
    vec![
        fun!("C_Finalize", None, true, |_, bad| {
            let mut x = 0u8;
            ck!(C_Finalize(if bad {
                &mut x as *mut u8 as *mut _
            } else {
                null_mut()
            }))
        }),
        fun!("C_GetInfo", None, true, |_, bad| {
            let mut i: CK_INFO = unsafe { std::mem::zeroed() };
            ck!(C_GetInfo(p(bad, &mut i)))
        }),
        fun!("C_GetSlotList", None, true, |_, bad| {
            let mut n: CK_ULONG = 0;
            ck!(C_GetSlotList(CK_TRUE, null_mut(), p(bad, &mut n)))
        }),
        fun!("C_GetSlotInfo", Slot, true, |h, bad| {
            let mut i: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
            ck!(C_GetSlotInfo(h, p(bad, &mut i)))
        }),
        fun!("C_GetTokenInfo", Slot, true, |h, bad| {
            let mut i: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            ck!(C_GetTokenInfo(h, p(bad, &mut i)))
        }),
        fun!("C_GetMechanismList", Slot, true, |h, bad| {
            let mut n: CK_ULONG = 0;
            ck!(C_GetMechanismList(h, null_mut(), p(bad, &mut n)))
        }),
        fun!("C_GetMechanismInfo", Slot, true, |h, bad| {
            let mut i: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
            ck!(C_GetMechanismInfo(h, CKM_ECDSA, p(bad, &mut i)))
        }),
        fun!("C_InitToken", Slot, true, |h, bad| {
            let mut label = [b' '; 32];
            ck!(C_InitToken(
                h,
                b"5678".as_ptr() as *mut u8,
                4,
                p(bad, &mut label[0])
            ))
        }),
        fun!("C_InitPIN", Session, true, |h, bad| {
            let mut pin = *b"9999";
            ck!(C_InitPIN(h, p(bad, &mut pin[0]), 4))
        }),
        fun!("C_SetPIN", Session, true, |h, bad| {
            let (mut old, mut new) = (*b"0000", *b"9999");
            ck!(C_SetPIN(h, p(bad, &mut old[0]), 4, &mut new[0], 4))
        }),
        fun!("C_OpenSession", Slot, true, |h, bad| {
            let mut s = 0;
            ck!(C_OpenSession(
                h,
                CKF_SERIAL_SESSION,
                null_mut(),
                Option::None,
                p(bad, &mut s)
            ))
        }),
        fun!("C_CloseSession", Session, false, |h, _| ck!(
            C_CloseSession(h)
        )),
        fun!("C_CloseAllSessions", Slot, false, |h, _| ck!(
            C_CloseAllSessions(h)
        )),
        fun!("C_GetSessionInfo", Session, true, |h, bad| {
            let mut i: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
            ck!(C_GetSessionInfo(h, p(bad, &mut i)))
        }),
        fun!("C_GetOperationState", Session, true, |h, bad| {
            let mut n: CK_ULONG = 0;
            ck!(C_GetOperationState(h, null_mut(), p(bad, &mut n)))
        }),
        fun!("C_SetOperationState", Session, true, |h, bad| {
            let mut st = [0u8; 8];
            ck!(C_SetOperationState(h, p(bad, &mut st[0]), 8, 0, 0))
        }),
        fun!("C_Login", Session, true, |h, bad| {
            let mut pin = *b"0000";
            ck!(C_Login(h, CKU_USER, p(bad, &mut pin[0]), 4))
        }),
        fun!("C_Logout", Session, false, |h, _| ck!(C_Logout(h))),
        fun!("C_DestroyObject", Session, false, |h, _| ck!(
            C_DestroyObject(h, 1)
        )),
        fun!("C_GetAttributeValue", Session, true, |h, bad| {
            let mut a = bytes_attr(CKA_LABEL, &[]);
            ck!(C_GetAttributeValue(h, 1, p(bad, &mut a), 1))
        }),
        fun!("C_FindObjectsInit", Session, true, |h, bad| {
            let class: CK_ULONG = CKO_PUBLIC_KEY;
            let mut a = ulong_attr(CKA_CLASS, &class);
            ck!(C_FindObjectsInit(h, p(bad, &mut a), 1))
        }),
        fun!("C_FindObjects", Session, true, |h, bad| {
            let (mut o, mut n) = (0, 0);
            ck!(C_FindObjects(h, &mut o, 1, p(bad, &mut n)))
        }),
        fun!("C_FindObjectsFinal", Session, false, |h, _| ck!(
            C_FindObjectsFinal(h)
        )),
        fun!("C_EncryptInit", Session, true, |h, bad| {
            let mut mm = mech(CKM_RSA_PKCS);
            ck!(C_EncryptInit(h, p(bad, &mut mm), 1))
        }),
        fun!("C_Encrypt", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 8], 8);
            ck!(C_Encrypt(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_EncryptUpdate", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 8], 8);
            ck!(C_EncryptUpdate(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_EncryptFinal", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 8], 8);
            ck!(C_EncryptFinal(h, &mut out[0], p(bad, &mut n)))
        }),
        fun!("C_DecryptInit", Session, true, |h, bad| {
            let mut mm = mech(CKM_RSA_PKCS);
            ck!(C_DecryptInit(h, p(bad, &mut mm), 1))
        }),
        fun!("C_Decrypt", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 8], 8);
            ck!(C_Decrypt(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_DecryptUpdate", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 8], 8);
            ck!(C_DecryptUpdate(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_DecryptFinal", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 8], 8);
            ck!(C_DecryptFinal(h, &mut out[0], p(bad, &mut n)))
        }),
        fun!("C_DigestInit", Session, true, |h, bad| {
            let mut mm = m();
            ck!(C_DigestInit(h, p(bad, &mut mm)))
        }),
        fun!("C_Digest", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_Digest(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_DigestUpdate", Session, true, |h, bad| {
            let mut d = *b"x";
            ck!(C_DigestUpdate(h, p(bad, &mut d[0]), 1))
        }),
        fun!("C_DigestKey", Session, false, |h, _| ck!(C_DigestKey(h, 1))),
        fun!("C_DigestFinal", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_DigestFinal(h, &mut out[0], p(bad, &mut n)))
        }),
        fun!("C_SignInit", Session, true, |h, bad| {
            let mut mm = mech(CKM_ECDSA);
            ck!(C_SignInit(h, p(bad, &mut mm), 1))
        }),
        fun!("C_Sign", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_Sign(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_SignUpdate", Session, true, |h, bad| {
            let mut d = *b"x";
            ck!(C_SignUpdate(h, p(bad, &mut d[0]), 1))
        }),
        fun!("C_SignFinal", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_SignFinal(h, &mut out[0], p(bad, &mut n)))
        }),
        fun!("C_SignRecoverInit", Session, true, |h, bad| {
            let mut mm = mech(CKM_RSA_X_509);
            ck!(C_SignRecoverInit(h, p(bad, &mut mm), 1))
        }),
        fun!("C_SignRecover", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_SignRecover(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_VerifyInit", Session, true, |h, bad| {
            let mut mm = mech(CKM_ECDSA);
            ck!(C_VerifyInit(h, p(bad, &mut mm), 1))
        }),
        fun!("C_Verify", Session, true, |h, bad| {
            let mut sig = [0u8; 64];
            ck!(C_Verify(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                p(bad, &mut sig[0]),
                64
            ))
        }),
        fun!("C_VerifyUpdate", Session, true, |h, bad| {
            let mut d = *b"x";
            ck!(C_VerifyUpdate(h, p(bad, &mut d[0]), 1))
        }),
        fun!("C_VerifyFinal", Session, true, |h, bad| {
            let mut sig = [0u8; 64];
            ck!(C_VerifyFinal(h, p(bad, &mut sig[0]), 64))
        }),
        fun!("C_VerifyRecoverInit", Session, true, |h, bad| {
            let mut mm = mech(CKM_RSA_X_509);
            ck!(C_VerifyRecoverInit(h, p(bad, &mut mm), 1))
        }),
        fun!("C_VerifyRecover", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_VerifyRecover(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_DigestEncryptUpdate", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_DigestEncryptUpdate(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_DecryptDigestUpdate", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_DecryptDigestUpdate(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_SignEncryptUpdate", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_SignEncryptUpdate(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_DecryptVerifyUpdate", Session, true, |h, bad| {
            let (mut out, mut n) = ([0u8; 64], 64);
            ck!(C_DecryptVerifyUpdate(
                h,
                b"x".as_ptr() as *mut u8,
                1,
                &mut out[0],
                p(bad, &mut n)
            ))
        }),
        fun!("C_GenerateKey", Session, true, |h, bad| {
            let (mut mm, mut k) = (mech(CKM_GENERIC_SECRET_KEY_GEN), 0);
            ck!(C_GenerateKey(h, p(bad, &mut mm), null_mut(), 0, &mut k))
        }),
        fun!("C_GenerateKeyPair", Session, true, |h, bad| {
            let (mut mm, mut pk, mut sk) = (mech(CKM_EC_KEY_PAIR_GEN), 0, 0);
            ck!(C_GenerateKeyPair(
                h,
                p(bad, &mut mm),
                null_mut(),
                0,
                null_mut(),
                0,
                &mut pk,
                &mut sk
            ))
        }),
        fun!("C_WrapKey", Session, true, |h, bad| {
            let (mut mm, mut out, mut n) = (mech(CKM_RSA_PKCS), [0u8; 8], 8);
            ck!(C_WrapKey(h, p(bad, &mut mm), 1, 2, &mut out[0], &mut n))
        }),
        fun!("C_UnwrapKey", Session, true, |h, bad| {
            let (mut mm, mut k) = (mech(CKM_RSA_PKCS), 0);
            ck!(C_UnwrapKey(
                h,
                p(bad, &mut mm),
                1,
                b"x".as_ptr() as *mut u8,
                1,
                null_mut(),
                0,
                &mut k
            ))
        }),
        fun!("C_DeriveKey", Session, true, |h, bad| {
            let (mut mm, mut k) = (mech(CKM_ECDH1_DERIVE), 0);
            ck!(C_DeriveKey(h, p(bad, &mut mm), 1, null_mut(), 0, &mut k))
        }),
        fun!("C_SeedRandom", Session, true, |h, bad| {
            let mut seed = [7u8; 16];
            ck!(C_SeedRandom(h, p(bad, &mut seed[0]), 16))
        }),
        fun!("C_GenerateRandom", Session, true, |h, bad| {
            let mut out = [0u8; 16];
            ck!(C_GenerateRandom(h, p(bad, &mut out[0]), 16))
        }),
        fun!("C_GetFunctionStatus", Session, false, |h, _| ck!(
            C_GetFunctionStatus(h)
        )),
        fun!("C_CancelFunction", Session, false, |h, _| ck!(
            C_CancelFunction(h)
        )),
        fun!("C_WaitForSlotEvent", None, true, |_, bad| {
            let mut slot = 0;
            ck!(C_WaitForSlotEvent(
                CKF_DONT_BLOCK,
                p(bad, &mut slot),
                null_mut()
            ))
        }),
    ]
}

#[test]
fn every_function_checks_initialization_handles_and_arguments_in_order() {
    let _t = turn();
    let s = Setup::new(&[("ec", "ecc256", "sign")]);
    environment(&s.sim.tcti(), &s.store());
    let funs = every_function();
    // 68 functions in the 2.40 list, less C_Initialize, C_GetFunctionList and the
    // four object functions of the certificates work.
    assert_eq!(funs.len(), 62);

    // Not initialized: every one says so first, pointers good or bad.
    for f in &funs {
        for bad in [false, true] {
            let rv = (f.call)(1, bad);
            assert_eq!(
                rv, CKR_CRYPTOKI_NOT_INITIALIZED,
                "{} (bad args: {bad})",
                f.name
            );
        }
    }
    // C_GetFunctionList needs no initialization, but its pointer.
    assert_eq!(ck!(C_GetFunctionList(null_mut())), CKR_ARGUMENTS_BAD);

    init();
    let slot = slots()[0];
    let h = open(slot, true);
    // A bogus handle comes next, whatever the pointers are.
    for f in funs.iter().filter(|f| f.handle != Handle::None) {
        let want = match f.handle {
            Handle::Session => CKR_SESSION_HANDLE_INVALID,
            _ => CKR_SLOT_ID_INVALID,
        };
        for bad in [false, true] {
            assert_eq!((f.call)(BAD, bad), want, "{} (bad args: {bad})", f.name);
        }
    }
    // Then the pointers.
    for f in funs.iter().filter(|f| f.pointers) {
        let handle = if f.handle == Handle::Slot { slot } else { h };
        assert_eq!((f.call)(handle, true), CKR_ARGUMENTS_BAD, "{}", f.name);
    }
    // C_GetFunctionStatus and C_CancelFunction (§5.16), C_WaitForSlotEvent.
    assert_eq!(ck!(C_GetFunctionStatus(h)), CKR_FUNCTION_NOT_PARALLEL);
    assert_eq!(ck!(C_CancelFunction(h)), CKR_FUNCTION_NOT_PARALLEL);
    let mut ev = 0;
    assert_eq!(
        ck!(C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut ev, null_mut())),
        CKR_NO_EVENT
    );
    assert_eq!(
        ck!(C_WaitForSlotEvent(0, &mut ev, null_mut())),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    let mut x = 0u8;
    assert_eq!(
        ck!(C_WaitForSlotEvent(
            CKF_DONT_BLOCK,
            &mut ev,
            &mut x as *mut u8 as *mut _
        )),
        CKR_ARGUMENTS_BAD
    );
    // The functions not offered, with good arguments.
    for name in [
        "C_InitToken",
        "C_GetOperationState",
        "C_SetOperationState",
        "C_SignRecoverInit",
        "C_SignRecover",
        "C_VerifyRecoverInit",
        "C_VerifyRecover",
        "C_DigestEncryptUpdate",
        "C_DecryptDigestUpdate",
        "C_SignEncryptUpdate",
        "C_DecryptVerifyUpdate",
        "C_GenerateKey",
        "C_WrapKey",
        "C_UnwrapKey",
    ] {
        let f = funs.iter().find(|f| f.name == name).expect(name);
        let handle = if f.handle == Handle::Slot { slot } else { h };
        assert_eq!(
            (f.call)(handle, false),
            CKR_FUNCTION_NOT_SUPPORTED,
            "{name}"
        );
    }
    // C_DigestKey: no digest going on, then one (which its failure ends, §5.10).
    assert_eq!(ck!(C_DigestKey(h, 1)), CKR_OPERATION_NOT_INITIALIZED);
    let mut m = mech(CKM_SHA256);
    assert_eq!(ck!(C_DigestInit(h, &mut m)), CKR_OK);
    assert_eq!(ck!(C_DigestKey(h, 1)), CKR_FUNCTION_NOT_SUPPORTED);
    assert_eq!(
        ck!(C_DigestUpdate(h, b"x".as_ptr() as *mut u8, 1)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // Session errors come before template errors: a bogus session with an RSA
    // size refused by design is a bogus session.
    let bits: CK_ULONG = 1024;
    let mut pub_t = [ulong_attr(CKA_MODULUS_BITS, &bits)];
    let mut km = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
    let (mut pk, mut sk) = (0, 0);
    assert_eq!(
        ck!(C_GenerateKeyPair(
            BAD,
            &mut km,
            pub_t.as_mut_ptr(),
            1,
            null_mut(),
            0,
            &mut pk,
            &mut sk
        )),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        ck!(C_GenerateKeyPair(
            h,
            &mut km,
            pub_t.as_mut_ptr(),
            1,
            null_mut(),
            0,
            &mut pk,
            &mut sk
        )),
        CKR_KEY_SIZE_RANGE
    );
    finalize();
}

/// The RSA public key of a public key object.
fn rsa_public(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> rsa::RsaPublicKey {
    rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&attr(h, o, CKA_MODULUS)),
        rsa::BigUint::from_bytes_be(&attr(h, o, CKA_PUBLIC_EXPONENT)),
    )
    .unwrap()
}

/// CK_RSA_PKCS_OAEP_PARAMS for `hash` with the MGF1 of the same hash.
fn oaep_params(hash: CK_MECHANISM_TYPE, label: &[u8]) -> CK_RSA_PKCS_OAEP_PARAMS {
    let mgf = match hash {
        CKM_SHA_1 => CKG_MGF1_SHA1,
        CKM_SHA256 => CKG_MGF1_SHA256,
        CKM_SHA384 => CKG_MGF1_SHA384,
        _ => CKG_MGF1_SHA512,
    };
    CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: hash,
        mgf,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: if label.is_empty() {
            null_mut()
        } else {
            label.as_ptr() as *mut _
        },
        ulSourceDataLen: label.len() as CK_ULONG,
    }
}

/// C_Decrypt with a buffer of `cap` bytes: (rv, length reported, output).
fn decrypt_into(h: CK_SESSION_HANDLE, ct: &[u8], cap: Option<usize>) -> (CK_RV, usize, Vec<u8>) {
    let mut out = vec![0u8; cap.unwrap_or(0)];
    let mut len = cap.unwrap_or(0) as CK_ULONG;
    let buf = if cap.is_some() {
        out.as_mut_ptr()
    } else {
        null_mut()
    };
    let rv = ck!(C_Decrypt(
        h,
        ct.as_ptr() as *mut u8,
        ct.len() as CK_ULONG,
        buf,
        &mut len
    ));
    out.truncate((len as usize).min(out.len()));
    (rv, len as usize, out)
}

/// C_DecryptInit + C_Decrypt with a big enough buffer.
fn decrypt(
    h: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    m: &mut CK_MECHANISM,
    ct: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let rv = ck!(C_DecryptInit(h, m, key));
    if rv != CKR_OK {
        return Err(rv);
    }
    match decrypt_into(h, ct, Some(512)) {
        (CKR_OK, _, out) => Ok(out),
        (rv, _, _) => Err(rv),
    }
}

fn cc_count(proxy: &TpmProxy, cc: u32) -> usize {
    proxy.exchanges().iter().filter(|e| e.cc() == cc).count()
}

const TPM_CC_RSA_DECRYPT: u32 = 0x159;
const TPM_CC_ECDH_ZGEN: u32 = 0x154;

#[test]
fn rsa_decryption_in_the_tpm_oaep_and_pkcs1() {
    let _t = turn();
    let s = Setup::new(&[
        ("rsa", "rsa2048", "sign,decrypt"),
        ("rsa-sign", "rsa2048", "sign"),
        ("ec", "ecc256", "sign,decrypt"),
    ]);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let slot = slots()[0];
    let h = open(slot, false);
    let pubkey = find_one(h, CKO_PUBLIC_KEY, "rsa");
    let public = rsa_public(h, pubkey);
    let mut rng = rand_core::OsRng;
    let ct = public
        .encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"before login")
        .unwrap();
    // Not logged in: the private key is not even visible.
    let mut m = mech(CKM_RSA_PKCS);
    assert_eq!(ck!(C_DecryptInit(h, &mut m, 1000)), CKR_KEY_HANDLE_INVALID);
    assert_eq!(login(h, CKU_USER, "1234"), CKR_OK);
    let key = find_one(h, CKO_PRIVATE_KEY, "rsa");
    assert_eq!(attr(h, key, CKA_DECRYPT), [1]);
    assert_eq!(attr(h, key, CKA_SIGN), [1]);
    assert_eq!(attr(h, pubkey, CKA_ENCRYPT), [1]);

    // PKCS #1 v1.5.
    assert_eq!(decrypt(h, key, &mut m, &ct).unwrap(), b"before login");
    // OAEP with each hash, with and without a label; a label that ends in a
    // zero byte goes to the TPM, any other is decoded on the host.
    let message: Vec<u8> = (0..40).map(|i| i as u8 ^ 0x5a).collect();
    for hash in [CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512] {
        for label in [&b""[..], b"ABC", b"label\0"] {
            let padding = match hash {
                CKM_SHA_1 => oaep_pad::<sha1::Sha1>(label),
                CKM_SHA256 => oaep_pad::<sha2::Sha256>(label),
                CKM_SHA384 => oaep_pad::<sha2::Sha384>(label),
                _ => oaep_pad::<sha2::Sha512>(label),
            };
            let ct = public.encrypt(&mut rng, padding, &message).unwrap();
            let mut params = oaep_params(hash, label);
            let mut m = mech_with(CKM_RSA_PKCS_OAEP, &mut params);
            let got = decrypt(h, key, &mut m, &ct)
                .unwrap_or_else(|rv| panic!("OAEP {hash:#x} label {label:?}: {rv:#x}"));
            assert_eq!(got, message, "OAEP {hash:#x} label {label:?}");
            // The wrong label (checked on the host, or by the TPM when the
            // label is empty): the padding check fails, the operation ends.
            let wrong: &[u8] = if label.is_empty() { b"XYZ" } else { b"" };
            let mut other = oaep_params(hash, wrong);
            let mut m = mech_with(CKM_RSA_PKCS_OAEP, &mut other);
            assert_eq!(
                decrypt(h, key, &mut m, &ct),
                Err(CKR_ENCRYPTED_DATA_INVALID),
                "OAEP {hash:#x}, label {label:?} against {wrong:?}"
            );
            assert_eq!(
                decrypt_into(h, &ct, Some(256)).0,
                CKR_OPERATION_NOT_INITIALIZED
            );
        }
    }

    // The length protocol: a null buffer gets the longest plaintext (k - 2h - 2)
    // with no TPM command and the operation goes on; a short buffer gets the
    // exact length, and the next call brings the plaintext without asking the
    // TPM again. Steady state: one TPM2_RSA_Decrypt.
    let ct = public
        .encrypt(&mut rng, oaep_pad::<sha2::Sha256>(b""), &message)
        .unwrap();
    let mut params = oaep_params(CKM_SHA256, b"");
    let mut m = mech_with(CKM_RSA_PKCS_OAEP, &mut params);
    assert_eq!(ck!(C_DecryptInit(h, &mut m, key)), CKR_OK);
    assert_eq!(ck!(C_DecryptInit(h, &mut m, key)), CKR_OPERATION_ACTIVE);
    proxy.clear();
    assert_eq!(decrypt_into(h, &ct, None), (CKR_OK, 256 - 66, vec![]));
    assert_eq!(proxy.command_count(), 0, "a length query asks no TPM");
    let (rv, len, _) = decrypt_into(h, &ct, Some(10));
    assert_eq!((rv, len), (CKR_BUFFER_TOO_SMALL, 40));
    assert_eq!(decrypt_into(h, &ct, None), (CKR_OK, 40, vec![]));
    assert_eq!(
        decrypt_into(h, &ct, Some(40)),
        (CKR_OK, 40, message.clone())
    );
    assert_eq!(
        cc_count(&proxy, TPM_CC_RSA_DECRYPT),
        1,
        "one TPM2_RSA_Decrypt for the three calls"
    );
    assert_eq!(
        proxy.command_count(),
        1,
        "{:?}",
        proxy.exchanges().iter().map(|e| e.cc()).collect::<Vec<_>>()
    );
    // Multi-part RSA is not a thing (Current Mechanisms Table 1 footnote 2):
    // no multi-part operation is found, the single-part one goes on.
    assert_eq!(ck!(C_DecryptInit(h, &mut m, key)), CKR_OK);
    let (mut part, mut plen) = ([0u8; 256], 256 as CK_ULONG);
    assert_eq!(
        ck!(C_DecryptUpdate(
            h,
            ct.as_ptr() as *mut u8,
            128,
            part.as_mut_ptr(),
            &mut plen
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        ck!(C_DecryptFinal(h, part.as_mut_ptr(), &mut plen)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // A ciphertext of the wrong size ends it.
    assert_eq!(
        decrypt_into(h, &ct[..255], Some(256)).0,
        CKR_ENCRYPTED_DATA_LEN_RANGE
    );
    assert_eq!(
        decrypt_into(h, &ct, Some(256)).0,
        CKR_OPERATION_NOT_INITIALIZED
    );
    // Keys, mechanisms and parameters that cannot decrypt.
    let sign_only = find_one(h, CKO_PRIVATE_KEY, "rsa-sign");
    assert_eq!(attr(h, sign_only, CKA_DECRYPT), [0]);
    assert_eq!(
        decrypt(h, sign_only, &mut mech(CKM_RSA_PKCS), &ct),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    let ec = find_one(h, CKO_PRIVATE_KEY, "ec");
    assert_eq!(
        decrypt(h, ec, &mut mech(CKM_RSA_PKCS), &ct),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(
        decrypt(h, pubkey, &mut mech(CKM_RSA_PKCS), &ct),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    // Raw RSA is not offered (on a signing key it would sign anything).
    assert_eq!(
        decrypt(h, key, &mut mech(CKM_RSA_X_509), &ct),
        Err(CKR_MECHANISM_INVALID)
    );
    let mut mixed = oaep_params(CKM_SHA256, b"");
    mixed.mgf = CKG_MGF1_SHA1;
    assert_eq!(
        decrypt(h, key, &mut mech_with(CKM_RSA_PKCS_OAEP, &mut mixed), &ct),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        decrypt(h, key, &mut mech(CKM_RSA_PKCS_OAEP), &ct),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut junk = [0u8; 3];
    assert_eq!(
        decrypt(h, key, &mut mech_with(CKM_RSA_PKCS, &mut junk), &ct),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    // Logging out ends the decryption.
    assert_eq!(ck!(C_DecryptInit(h, &mut m, key)), CKR_OK);
    assert_eq!(ck!(C_Logout(h)), CKR_OK);
    assert_eq!(
        decrypt_into(h, &ct, Some(256)).0,
        CKR_OPERATION_NOT_INITIALIZED
    );
    finalize();
}

fn oaep_pad<D>(label: &[u8]) -> rsa::Oaep
where
    D: 'static + sha2::Digest + sha2::digest::DynDigest + Send + Sync,
{
    match std::str::from_utf8(label) {
        Ok(l) if !l.is_empty() => rsa::Oaep::new_with_label::<D, _>(l),
        _ => rsa::Oaep::new::<D>(),
    }
}

/// CK_ECDH1_DERIVE_PARAMS (the slices must outlive the call).
fn ecdh_params(kdf: CK_EC_KDF_TYPE, shared: &[u8], public: &[u8]) -> CK_ECDH1_DERIVE_PARAMS {
    CK_ECDH1_DERIVE_PARAMS {
        kdf,
        ulSharedDataLen: shared.len() as CK_ULONG,
        pSharedData: if shared.is_empty() {
            null_mut()
        } else {
            shared.as_ptr() as *mut _
        },
        ulPublicDataLen: public.len() as CK_ULONG,
        pPublicData: public.as_ptr() as *mut _,
    }
}

/// C_DeriveKey with CKM_ECDH1_DERIVE.
fn derive(
    h: CK_SESSION_HANDLE,
    base: CK_OBJECT_HANDLE,
    params: &mut CK_ECDH1_DERIVE_PARAMS,
    template: &mut [CK_ATTRIBUTE],
) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    let mut m = mech_with(CKM_ECDH1_DERIVE, params);
    let mut k = 0;
    match ck!(C_DeriveKey(
        h,
        &mut m,
        base,
        template.as_mut_ptr(),
        template.len() as CK_ULONG,
        &mut k
    )) {
        CKR_OK => Ok(k),
        rv => Err(rv),
    }
}

/// What `pkcs11-tool --derive` asks for (OpenSC 0.23), with CKA_VALUE_LEN.
fn readable_secret(len: &CK_ULONG) -> Vec<CK_ATTRIBUTE> {
    vec![
        bool_attr(CKA_TOKEN, false),
        ulong_attr(CKA_CLASS, &CKO_SECRET_KEY),
        ulong_attr(CKA_KEY_TYPE, &CKK_GENERIC_SECRET),
        bool_attr(CKA_SENSITIVE, false),
        bool_attr(CKA_EXTRACTABLE, true),
        bool_attr(CKA_ENCRYPT, true),
        bool_attr(CKA_DECRYPT, true),
        ulong_attr(CKA_VALUE_LEN, len),
    ]
}

#[test]
fn ecdh_derivation_in_the_tpm_p256_and_p384() {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let _t = turn();
    let s = Setup::new(&[
        ("ec", "ecc256", "sign,decrypt"),
        ("ec384", "ecc384", "decrypt"),
        ("ec-sign", "ecc256", "sign"),
        ("rsa", "rsa2048", "decrypt"),
    ]);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let slot = slots()[0];
    let h = open(slot, false);
    assert_eq!(login(h, CKU_USER, "1234"), CKR_OK);
    let base = find_one(h, CKO_PRIVATE_KEY, "ec");
    assert_eq!(attr(h, base, CKA_DERIVE), [1]);
    let tpm_point = ec_point(&attr(h, find_one(h, CKO_PUBLIC_KEY, "ec"), CKA_EC_POINT)).to_vec();
    let tpm_public = p256::PublicKey::from_sec1_bytes(&tpm_point).unwrap();
    let peer = p256::SecretKey::random(&mut rand_core::OsRng);
    let peer_point = peer
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let z = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), tpm_public.as_affine());
    let z = z.raw_secret_bytes().to_vec();

    // CKD_NULL: the key is Z, read back as pkcs11-tool does; the peer's point raw
    // or as a DER OCTET STRING.
    let len: CK_ULONG = 32;
    let mut der_point = vec![0x04, 65];
    der_point.extend_from_slice(&peer_point);
    proxy.clear();
    for public in [&peer_point, &der_point] {
        let mut params = ecdh_params(CKD_NULL, &[], public);
        let k = derive(h, base, &mut params, &mut readable_secret(&len)).unwrap();
        assert_eq!(attr(h, k, CKA_VALUE), z);
        assert_eq!(attr(h, k, CKA_CLASS), CKO_SECRET_KEY.to_ne_bytes());
        assert_eq!(attr(h, k, CKA_KEY_TYPE), CKK_GENERIC_SECRET.to_ne_bytes());
        assert_eq!(attr(h, k, CKA_VALUE_LEN), (32 as CK_ULONG).to_ne_bytes());
        assert_eq!(attr(h, k, CKA_TOKEN), [0]);
        assert_eq!(attr(h, k, CKA_ENCRYPT), [1]);
        assert_eq!(attr(h, k, CKA_LOCAL), [0]);
        assert_eq!(attr(h, k, CKA_ALWAYS_SENSITIVE), [0]);
        assert_eq!(ck!(C_DestroyObject(h, k)), CKR_OK);
        assert_eq!(try_attr(h, k, CKA_VALUE), Err(CKR_OBJECT_HANDLE_INVALID));
    }
    // The key was loaded once: each derivation is one TPM2_ECDH_ZGen.
    assert_eq!(cc_count(&proxy, TPM_CC_ECDH_ZGEN), 2);
    assert_eq!(
        proxy.command_count(),
        3,
        "Load once, then one ECDH_ZGen per key"
    );
    // A shorter key keeps Z's last bytes (as NSS and SoftHSM); the X9.63 KDF.
    let short: CK_ULONG = 16;
    let mut params = ecdh_params(CKD_NULL, &[], &peer_point);
    let k = derive(h, base, &mut params, &mut readable_secret(&short)).unwrap();
    assert_eq!(attr(h, k, CKA_VALUE), &z[16..]);
    let long: CK_ULONG = 48;
    let mut params = ecdh_params(CKD_SHA256_KDF, b"shared info", &peer_point);
    let k = derive(h, base, &mut params, &mut readable_secret(&long)).unwrap();
    let want = tpmkey::crypto::kdf::x963_kdf(
        tpmkey::crypto::hash::HashAlg::Sha256,
        &z,
        b"shared info",
        48,
    );
    assert_eq!(attr(h, k, CKA_VALUE), want.to_vec());
    // No CKA_VALUE_LEN: Z's length, or the hash's with a KDF; sensitive keys
    // keep their value.
    let mut t = [bool_attr(CKA_SENSITIVE, true)];
    let mut params = ecdh_params(CKD_SHA384_KDF, &[], &peer_point);
    let k = derive(h, base, &mut params, &mut t).unwrap();
    assert_eq!(try_attr(h, k, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    assert_eq!(attr(h, k, CKA_VALUE_LEN), (48 as CK_ULONG).to_ne_bytes());
    assert_eq!(attr(h, k, CKA_ALWAYS_SENSITIVE), [1]);
    assert_eq!(attr(h, k, CKA_PRIVATE), [1]);
    // A generic secret is no key for the module's mechanisms.
    assert_eq!(
        ck!(C_SignInit(h, &mut mech(CKM_ECDSA), k)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        ck!(C_DecryptInit(h, &mut mech(CKM_RSA_PKCS), k)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    let mut again = ecdh_params(CKD_NULL, &[], &peer_point);
    assert_eq!(
        derive(h, k, &mut again, &mut readable_secret(&len)),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );

    // P-384.
    let base384 = find_one(h, CKO_PRIVATE_KEY, "ec384");
    let point384 = ec_point(&attr(h, find_one(h, CKO_PUBLIC_KEY, "ec384"), CKA_EC_POINT)).to_vec();
    let peer384 = p384::SecretKey::random(&mut rand_core::OsRng);
    let peer384_point = peer384
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let z384 = p384::ecdh::diffie_hellman(
        peer384.to_nonzero_scalar(),
        p384::PublicKey::from_sec1_bytes(&point384)
            .unwrap()
            .as_affine(),
    );
    let len384: CK_ULONG = 48;
    let mut params = ecdh_params(CKD_NULL, &[], &peer384_point);
    let k = derive(h, base384, &mut params, &mut readable_secret(&len384)).unwrap();
    assert_eq!(attr(h, k, CKA_VALUE), z384.raw_secret_bytes().to_vec());
    // A P-256 point for a P-384 key, a point off the curve, no parameters.
    let mut params = ecdh_params(CKD_NULL, &[], &peer_point);
    assert_eq!(
        derive(h, base384, &mut params, &mut readable_secret(&len384)),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut off = peer_point.clone();
    off[64] ^= 1;
    let mut params = ecdh_params(CKD_NULL, &[], &off);
    assert_eq!(
        derive(h, base, &mut params, &mut readable_secret(&len)),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut params = ecdh_params(CKD_NULL, b"no shared data with CKD_NULL", &peer_point);
    assert_eq!(
        derive(h, base, &mut params, &mut readable_secret(&len)),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let (mut m, mut k) = (mech(CKM_ECDH1_DERIVE), 0);
    assert_eq!(
        ck!(C_DeriveKey(h, &mut m, base, null_mut(), 0, &mut k)),
        CKR_MECHANISM_PARAM_INVALID
    );
    let mut m = mech(CKM_ECDH1_COFACTOR_DERIVE);
    assert_eq!(
        ck!(C_DeriveKey(h, &mut m, base, null_mut(), 0, &mut k)),
        CKR_MECHANISM_INVALID
    );
    // Keys that do not derive.
    let mut params = ecdh_params(CKD_NULL, &[], &peer_point);
    let sign_only = find_one(h, CKO_PRIVATE_KEY, "ec-sign");
    assert_eq!(attr(h, sign_only, CKA_DERIVE), [0]);
    assert_eq!(
        derive(h, sign_only, &mut params, &mut readable_secret(&len)),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    let rsa = find_one(h, CKO_PRIVATE_KEY, "rsa");
    assert_eq!(
        derive(h, rsa, &mut params, &mut readable_secret(&len)),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    let public = find_one(h, CKO_PUBLIC_KEY, "ec");
    assert_eq!(
        derive(h, public, &mut params, &mut readable_secret(&len)),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(
        derive(h, 9999, &mut params, &mut readable_secret(&len)),
        Err(CKR_KEY_HANDLE_INVALID)
    );
    // Templates it cannot honour.
    let too_long: CK_ULONG = 33;
    for (mut t, rv) in [
        (vec![bool_attr(CKA_TOKEN, true)], CKR_TEMPLATE_INCONSISTENT),
        (readable_secret(&too_long), CKR_TEMPLATE_INCONSISTENT),
        (
            vec![bytes_attr(CKA_VALUE, &[1; 32])],
            CKR_ATTRIBUTE_READ_ONLY,
        ),
        (
            vec![ulong_attr(CKA_KEY_TYPE, &CKK_AES)],
            CKR_TEMPLATE_INCONSISTENT,
        ),
        (
            vec![bytes_attr(CKA_MODULUS, &[1])],
            CKR_ATTRIBUTE_TYPE_INVALID,
        ),
    ] {
        assert_eq!(derive(h, base, &mut params, &mut t), Err(rv));
    }

    // Session objects: another session's secret goes with its session, and
    // C_Logout destroys the private ones.
    let h2 = open(slot, false);
    let k2 = derive(h2, base, &mut params, &mut readable_secret(&len)).unwrap();
    let mut class = [ulong_attr(CKA_CLASS, &CKO_SECRET_KEY)];
    assert!(find_with(h, &mut class).contains(&k2));
    assert_eq!(ck!(C_CloseSession(h2)), CKR_OK);
    assert_eq!(try_attr(h, k2, CKA_VALUE), Err(CKR_OBJECT_HANDLE_INVALID));
    let mut public_secret = readable_secret(&len);
    public_secret.push(bool_attr(CKA_PRIVATE, false));
    let kp = derive(h, base, &mut params, &mut public_secret).unwrap();
    let kpriv = derive(h, base, &mut params, &mut readable_secret(&len)).unwrap();
    assert_eq!(ck!(C_Logout(h)), CKR_OK);
    assert_eq!(attr(h, kp, CKA_VALUE), z, "a public session object stays");
    assert_eq!(
        try_attr(h, kpriv, CKA_VALUE),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
    assert_eq!(login(h, CKU_USER, "1234"), CKR_OK);
    assert_eq!(
        try_attr(h, kpriv, CKA_VALUE),
        Err(CKR_OBJECT_HANDLE_INVALID),
        "destroyed, not hidden"
    );
    finalize();
}

/// The wire audit: what TPM2_RSA_Decrypt and TPM2_ECDH_ZGen give back crosses
/// the bus encrypted (and so do the ciphertext and the peer's point that go in:
/// they are the first parameters, under `decrypt`).
#[test]
fn plaintexts_and_shared_secrets_never_cross_the_bus() {
    let _t = turn();
    let s = Setup::new(&[("rsa", "rsa2048", "decrypt"), ("ec", "ecc256", "decrypt")]);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let h = open(slots()[0], false);
    assert_eq!(login(h, CKU_USER, "1234"), CKR_OK);
    let mut rng = rand_core::OsRng;
    let public = rsa_public(h, find_one(h, CKO_PUBLIC_KEY, "rsa"));
    let key = find_one(h, CKO_PRIVATE_KEY, "rsa");
    proxy.clear();
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    // PKCS #1 v1.5 and OAEP in the TPM, OAEP with a label decoded on the host
    // (the raw block is what comes back then).
    for (i, label) in [None, Some(&b""[..]), Some(b"ABC")].into_iter().enumerate() {
        let message: Vec<u8> = (0..48)
            .map(|_| rand_core::RngCore::next_u32(&mut rng) as u8)
            .collect();
        let (ct, got) = match label {
            None => {
                let ct = public
                    .encrypt(&mut rng, rsa::Pkcs1v15Encrypt, &message)
                    .unwrap();
                let got = decrypt(h, key, &mut mech(CKM_RSA_PKCS), &ct);
                (ct, got)
            }
            Some(l) => {
                let ct = public
                    .encrypt(&mut rng, oaep_pad::<sha2::Sha256>(l), &message)
                    .unwrap();
                let mut params = oaep_params(CKM_SHA256, l);
                let got = decrypt(h, key, &mut mech_with(CKM_RSA_PKCS_OAEP, &mut params), &ct);
                (ct, got)
            }
        };
        assert_eq!(got.unwrap(), message, "case {i}");
        secrets.push(message);
        sent.push(ct);
    }
    // ECDH: Z and the whole shared point.
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let base = find_one(h, CKO_PRIVATE_KEY, "ec");
    let tpm_point = ec_point(&attr(h, find_one(h, CKO_PUBLIC_KEY, "ec"), CKA_EC_POINT)).to_vec();
    let peer = p256::SecretKey::random(&mut rng);
    let peer_point = peer
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let shared = (p256::PublicKey::from_sec1_bytes(&tpm_point)
        .unwrap()
        .to_projective()
        * *peer.to_nonzero_scalar())
    .to_affine()
    .to_encoded_point(false);
    let len: CK_ULONG = 32;
    let mut params = ecdh_params(CKD_NULL, &[], &peer_point);
    let k = derive(h, base, &mut params, &mut readable_secret(&len)).unwrap();
    let z = attr(h, k, CKA_VALUE);
    assert_eq!(&z[..], &shared.x().unwrap()[..]);
    secrets.push(z);
    secrets.push(shared.y().unwrap().to_vec());
    sent.push(peer_point[1..33].to_vec());
    assert_eq!(cc_count(&proxy, TPM_CC_RSA_DECRYPT), 3);
    assert_eq!(cc_count(&proxy, TPM_CC_ECDH_ZGEN), 1);
    for (i, secret) in secrets.iter().enumerate() {
        for w in secret.windows(8) {
            assert!(!proxy.saw_bytes(w), "secret {i} on the wire");
        }
    }
    for (i, input) in sent.iter().enumerate() {
        assert!(
            !proxy.saw_bytes(&input[..16]),
            "input {i} in clear on the wire"
        );
    }
    finalize();
}

/// C_Digest or C_DigestFinal output with a `cap`-byte buffer (None: a length
/// query): (rv, length, bytes).
fn digest_out(
    h: CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    cap: Option<usize>,
) -> (CK_RV, usize, Vec<u8>) {
    let mut out = vec![0u8; cap.unwrap_or(0)];
    let mut len = cap.unwrap_or(0) as CK_ULONG;
    let buf = if cap.is_some() {
        out.as_mut_ptr()
    } else {
        null_mut()
    };
    let rv = match data {
        Some(d) => ck!(C_Digest(
            h,
            d.as_ptr() as *mut u8,
            d.len() as CK_ULONG,
            buf,
            &mut len
        )),
        None => ck!(C_DigestFinal(h, buf, &mut len)),
    };
    out.truncate((len as usize).min(out.len()));
    (rv, len as usize, out)
}

#[test]
fn digests_in_software_without_login() {
    let _t = turn();
    let s = Setup::new(&[]);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let h = open(slots()[0], false);
    let data = b"0123456789".repeat(10);
    proxy.clear();
    for (m, want) in [
        (CKM_SHA_1, sha1::Sha1::digest(&data).to_vec()),
        (CKM_SHA256, sha2::Sha256::digest(&data).to_vec()),
        (CKM_SHA384, sha2::Sha384::digest(&data).to_vec()),
        (CKM_SHA512, sha2::Sha512::digest(&data).to_vec()),
    ] {
        let mut mm = mech(m);
        // Single part, with the length protocol: the query and a short buffer
        // keep the operation and leave the data unhashed.
        assert_eq!(ck!(C_DigestInit(h, &mut mm)), CKR_OK);
        assert_eq!(ck!(C_DigestInit(h, &mut mm)), CKR_OPERATION_ACTIVE);
        assert_eq!(
            digest_out(h, Some(&data), None),
            (CKR_OK, want.len(), vec![])
        );
        assert_eq!(digest_out(h, Some(&data), Some(4)).0, CKR_BUFFER_TOO_SMALL);
        assert_eq!(
            digest_out(h, Some(&data), Some(64)),
            (CKR_OK, want.len(), want.clone())
        );
        assert_eq!(
            digest_out(h, Some(&data), Some(64)).0,
            CKR_OPERATION_NOT_INITIALIZED
        );
        // In parts.
        assert_eq!(ck!(C_DigestInit(h, &mut mm)), CKR_OK);
        for part in data.chunks(7) {
            assert_eq!(
                ck!(C_DigestUpdate(
                    h,
                    part.as_ptr() as *mut u8,
                    part.len() as CK_ULONG
                )),
                CKR_OK
            );
        }
        assert_eq!(digest_out(h, None, Some(1)).0, CKR_BUFFER_TOO_SMALL);
        assert_eq!(digest_out(h, None, Some(64)), (CKR_OK, want.len(), want));
        assert_eq!(
            digest_out(h, None, Some(64)).0,
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
    assert_eq!(proxy.command_count(), 0, "digests never ask the TPM");
    let mut md5 = mech(CKM_MD5);
    assert_eq!(ck!(C_DigestInit(h, &mut md5)), CKR_MECHANISM_INVALID);
    let mut junk = [0u8; 4];
    let mut with_params = mech_with(CKM_SHA256, &mut junk);
    assert_eq!(
        ck!(C_DigestInit(h, &mut with_params)),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        digest_out(h, Some(b"x"), Some(64)).0,
        CKR_OPERATION_NOT_INITIALIZED
    );
    finalize();
}

/// C_Sign with a big enough buffer.
fn sign(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE, m: &mut CK_MECHANISM, data: &[u8]) -> Vec<u8> {
    assert_eq!(ck!(C_SignInit(h, m, key)), CKR_OK);
    let mut sig = vec![0u8; 512];
    let mut len = 512 as CK_ULONG;
    assert_eq!(
        ck!(C_Sign(
            h,
            data.as_ptr() as *mut u8,
            data.len() as CK_ULONG,
            sig.as_mut_ptr(),
            &mut len
        )),
        CKR_OK
    );
    sig.truncate(len as usize);
    sig
}

/// C_VerifyInit + C_Verify, or with the data in `parts` through C_VerifyUpdate
/// and C_VerifyFinal.
fn verify(
    h: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    m: &mut CK_MECHANISM,
    data: &[u8],
    sig: &[u8],
    parts: Option<usize>,
) -> CK_RV {
    let rv = ck!(C_VerifyInit(h, m, key));
    if rv != CKR_OK {
        return rv;
    }
    let s = sig.as_ptr() as *mut u8;
    match parts {
        None => ck!(C_Verify(
            h,
            data.as_ptr() as *mut u8,
            data.len() as CK_ULONG,
            s,
            sig.len() as CK_ULONG
        )),
        Some(n) => {
            for part in data.chunks(n) {
                let rv = ck!(C_VerifyUpdate(
                    h,
                    part.as_ptr() as *mut u8,
                    part.len() as CK_ULONG
                ));
                if rv != CKR_OK {
                    return rv;
                }
            }
            ck!(C_VerifyFinal(h, s, sig.len() as CK_ULONG))
        }
    }
}

#[test]
fn verification_of_every_signing_mechanism_and_encryption_in_software() {
    let _t = turn();
    let s = Setup::new(&[
        ("ec", "ecc256", "sign"),
        ("ec384", "ecc384", "sign"),
        ("rsa", "rsa2048", "sign,decrypt"),
        ("rsa-dec", "rsa2048", "decrypt"),
    ]);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let h = open(slots()[0], false);
    assert_eq!(login(h, CKU_USER, "1234"), CKR_OK);
    let data = b"what the TPM signed, checked in software".to_vec();
    let sha256 = sha2::Sha256::digest(&data).to_vec();
    let mut di = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    di.extend_from_slice(&sha256);
    let pss = |hash, mgf, len| CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: hash,
        mgf,
        sLen: len,
    };
    for (label, mechanism, pss_params, input) in [
        ("ec", CKM_ECDSA, None, sha256.clone()),
        ("ec", CKM_ECDSA_SHA1, None, data.clone()),
        ("ec", CKM_ECDSA_SHA256, None, data.clone()),
        ("ec384", CKM_ECDSA_SHA384, None, data.clone()),
        ("ec384", CKM_ECDSA_SHA512, None, data.clone()),
        ("rsa", CKM_RSA_PKCS, None, di.clone()),
        ("rsa", CKM_SHA1_RSA_PKCS, None, data.clone()),
        ("rsa", CKM_SHA256_RSA_PKCS, None, data.clone()),
        ("rsa", CKM_SHA384_RSA_PKCS, None, data.clone()),
        ("rsa", CKM_SHA512_RSA_PKCS, None, data.clone()),
        (
            "rsa",
            CKM_RSA_PKCS_PSS,
            Some(pss(CKM_SHA256, CKG_MGF1_SHA256, 32)),
            sha256.clone(),
        ),
        (
            "rsa",
            CKM_SHA256_RSA_PKCS_PSS,
            Some(pss(CKM_SHA256, CKG_MGF1_SHA256, 32)),
            data.clone(),
        ),
        (
            "rsa",
            CKM_SHA384_RSA_PKCS_PSS,
            Some(pss(CKM_SHA384, CKG_MGF1_SHA384, 48)),
            data.clone(),
        ),
        (
            "rsa",
            CKM_SHA512_RSA_PKCS_PSS,
            Some(pss(CKM_SHA512, CKG_MGF1_SHA512, 64)),
            data.clone(),
        ),
    ] {
        let key = find_one(h, CKO_PRIVATE_KEY, label);
        let pubkey = find_one(h, CKO_PUBLIC_KEY, label);
        let mut params = pss_params;
        let mut m = match params.as_mut() {
            Some(p) => mech_with(mechanism, p),
            None => mech(mechanism),
        };
        let sig = sign(h, key, &mut m, &input);
        proxy.clear();
        assert_eq!(
            verify(h, pubkey, &mut m, &input, &sig, None),
            CKR_OK,
            "{mechanism:#x}"
        );
        assert_eq!(
            verify(h, pubkey, &mut m, &input, &sig, Some(5)),
            CKR_OK,
            "{mechanism:#x} in parts"
        );
        assert_eq!(proxy.command_count(), 0, "verification asks no TPM");
        let mut bad = sig.clone();
        bad[sig.len() / 2] ^= 1;
        assert_eq!(
            verify(h, pubkey, &mut m, &input, &bad, None),
            CKR_SIGNATURE_INVALID,
            "{mechanism:#x}"
        );
        assert_eq!(
            verify(h, pubkey, &mut m, &input, &sig[1..], None),
            CKR_SIGNATURE_LEN_RANGE,
            "{mechanism:#x}"
        );
        // C_Verify always ends the operation.
        assert_eq!(
            ck!(C_Verify(
                h,
                input.as_ptr() as *mut u8,
                input.len() as CK_ULONG,
                sig.as_ptr() as *mut u8,
                sig.len() as CK_ULONG
            )),
            CKR_OPERATION_NOT_INITIALIZED
        );
        // The private key is no verification key.
        assert_eq!(
            verify(h, key, &mut m, &input, &sig, None),
            CKR_KEY_FUNCTION_NOT_PERMITTED
        );
    }
    let ec_pub = find_one(h, CKO_PUBLIC_KEY, "ec");
    let rsa_pub = find_one(h, CKO_PUBLIC_KEY, "rsa");
    let mut m = mech(CKM_ECDSA);
    assert_eq!(
        verify(h, ec_pub, &mut m, &[1; 33], &[0; 64], None),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(
        verify(h, rsa_pub, &mut mech(CKM_ECDSA), &sha256, &[0; 256], None),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        verify(
            h,
            ec_pub,
            &mut mech(CKM_RSA_PKCS_OAEP),
            &sha256,
            &[0; 64],
            None
        ),
        CKR_MECHANISM_INVALID
    );
    let dec_pub = find_one(h, CKO_PUBLIC_KEY, "rsa-dec");
    assert_eq!(attr(h, dec_pub, CKA_VERIFY), [0]);
    assert_eq!(
        verify(h, dec_pub, &mut mech(CKM_RSA_PKCS), &di, &[0; 256], None),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    // An error in C_VerifyUpdate ends the operation (raw input over its limit).
    assert_eq!(ck!(C_VerifyInit(h, &mut mech(CKM_ECDSA), ec_pub)), CKR_OK);
    let big = vec![0u8; 2000];
    assert_eq!(
        ck!(C_VerifyUpdate(h, big.as_ptr() as *mut u8, 2000)),
        CKR_DATA_LEN_RANGE
    );
    assert_eq!(
        ck!(C_VerifyFinal(h, big.as_ptr() as *mut u8, 64)),
        CKR_OPERATION_NOT_INITIALIZED
    );

    // Encryption with the public key in software, decrypted in the TPM.
    let msg = b"encrypted by the module, decrypted by the TPM";
    let rsa_key = find_one(h, CKO_PRIVATE_KEY, "rsa");
    for (mechanism, hash) in [
        (CKM_RSA_PKCS, 0),
        (CKM_RSA_PKCS_OAEP, CKM_SHA_1),
        (CKM_RSA_PKCS_OAEP, CKM_SHA384),
    ] {
        let mut params = oaep_params(hash, b"a label");
        let mut m = if mechanism == CKM_RSA_PKCS {
            mech(mechanism)
        } else {
            mech_with(mechanism, &mut params)
        };
        assert_eq!(ck!(C_EncryptInit(h, &mut m, rsa_pub)), CKR_OK);
        assert_eq!(ck!(C_EncryptInit(h, &mut m, rsa_pub)), CKR_OPERATION_ACTIVE);
        proxy.clear();
        let (mut out, mut len) = (vec![0u8; 256], 0 as CK_ULONG);
        assert_eq!(
            ck!(C_Encrypt(
                h,
                msg.as_ptr() as *mut u8,
                msg.len() as CK_ULONG,
                null_mut(),
                &mut len
            )),
            CKR_OK
        );
        assert_eq!(len, 256);
        len = 10;
        assert_eq!(
            ck!(C_Encrypt(
                h,
                msg.as_ptr() as *mut u8,
                msg.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len
            )),
            CKR_BUFFER_TOO_SMALL
        );
        len = 256;
        assert_eq!(
            ck!(C_Encrypt(
                h,
                msg.as_ptr() as *mut u8,
                msg.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len
            )),
            CKR_OK
        );
        assert_eq!(proxy.command_count(), 0, "encryption asks no TPM");
        out.truncate(len as usize);
        assert_eq!(decrypt(h, rsa_key, &mut m, &out).unwrap(), msg);
    }
    // Too long for PKCS #1 v1.5 (k - 11): the operation ends.
    let mut m = mech(CKM_RSA_PKCS);
    assert_eq!(ck!(C_EncryptInit(h, &mut m, rsa_pub)), CKR_OK);
    let (long, mut out, mut len) = (vec![1u8; 246], vec![0u8; 256], 256 as CK_ULONG);
    assert_eq!(
        ck!(C_Encrypt(
            h,
            long.as_ptr() as *mut u8,
            246,
            out.as_mut_ptr(),
            &mut len
        )),
        CKR_DATA_LEN_RANGE
    );
    assert_eq!(
        ck!(C_Encrypt(
            h,
            long.as_ptr() as *mut u8,
            10,
            out.as_mut_ptr(),
            &mut len
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // Single-part only; keys that do not encrypt.
    assert_eq!(ck!(C_EncryptInit(h, &mut m, rsa_pub)), CKR_OK);
    assert_eq!(
        ck!(C_EncryptUpdate(
            h,
            long.as_ptr() as *mut u8,
            10,
            out.as_mut_ptr(),
            &mut len
        )),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        ck!(C_EncryptFinal(h, out.as_mut_ptr(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    len = 256;
    assert_eq!(
        ck!(C_Encrypt(
            h,
            long.as_ptr() as *mut u8,
            10,
            out.as_mut_ptr(),
            &mut len
        )),
        CKR_OK,
        "still active"
    );
    assert_eq!(
        ck!(C_EncryptInit(h, &mut m, ec_pub)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        ck!(C_EncryptInit(h, &mut m, rsa_key)),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    let ec_only = find_one(h, CKO_PUBLIC_KEY, "ec384");
    assert_eq!(attr(h, ec_only, CKA_ENCRYPT), [0]);
    assert_eq!(
        ck!(C_EncryptInit(h, &mut mech(CKM_RSA_X_509), rsa_pub)),
        CKR_MECHANISM_INVALID
    );
    finalize();
}

#[test]
fn random_seeding_goes_to_the_tpm_encrypted() {
    let _t = turn();
    let s = Setup::new(&[]);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let h = open(slots()[0], false);
    let seed: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    proxy.clear();
    assert_eq!(ck!(C_SeedRandom(h, seed.as_ptr() as *mut u8, 100)), CKR_OK);
    const TPM_CC_STIR_RANDOM: u32 = 0x146;
    assert_eq!(cc_count(&proxy, TPM_CC_STIR_RANDOM), 1);
    assert!(
        !proxy.saw_bytes(&seed[..16]),
        "the seed in clear on the wire"
    );
    // A long seed is condensed to one TPM2_StirRandom; an empty one needs none.
    let long = vec![3u8; 4000];
    assert_eq!(ck!(C_SeedRandom(h, long.as_ptr() as *mut u8, 4000)), CKR_OK);
    assert_eq!(ck!(C_SeedRandom(h, null_mut(), 0)), CKR_OK);
    assert_eq!(cc_count(&proxy, TPM_CC_STIR_RANDOM), 2);
    assert_eq!(
        ck!(C_SeedRandom(BAD, null_mut(), 4)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(ck!(C_SeedRandom(h, null_mut(), 4)), CKR_ARGUMENTS_BAD);
    finalize();
}

/// C_GenerateKeyPair: (rv, public, private).
fn generate(
    h: CK_SESSION_HANDLE,
    mechanism: CK_MECHANISM_TYPE,
    public: &mut [CK_ATTRIBUTE],
    private: &mut [CK_ATTRIBUTE],
) -> (CK_RV, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let mut m = mech(mechanism);
    let (mut pk, mut sk) = (0, 0);
    let rv = ck!(C_GenerateKeyPair(
        h,
        &mut m,
        public.as_mut_ptr(),
        public.len() as CK_ULONG,
        private.as_mut_ptr(),
        private.len() as CK_ULONG,
        &mut pk,
        &mut sk
    ));
    (rv, pk, sk)
}

const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const TPM_CC_FLUSH_CONTEXT: u32 = 0x165;

#[test]
fn session_key_pairs_usages_and_sizes() {
    let _t = turn();
    let s = Setup::new(&[]);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let slot = slots()[0];
    let ro = open(slot, false);
    let data = sha2::Sha256::digest(b"signed by a session key").to_vec();

    // What this TPM makes was recorded at `tpmkey init` (swtpm 0.7: no
    // RSA-4096): the mechanism info says so, and asks no TPM.
    proxy.clear();
    let mut mi: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(
        ck!(C_GetMechanismInfo(slot, CKM_RSA_PKCS_KEY_PAIR_GEN, &mut mi)),
        CKR_OK
    );
    assert_eq!((mi.ulMinKeySize, mi.ulMaxKeySize), (2048, 3072));
    assert_eq!(
        ck!(C_GetMechanismInfo(slot, CKM_RSA_PKCS_OAEP, &mut mi)),
        CKR_OK
    );
    assert_eq!(
        mi.flags & (CKF_ENCRYPT | CKF_DECRYPT),
        CKF_ENCRYPT | CKF_DECRYPT
    );
    assert_eq!(
        ck!(C_GetMechanismInfo(slot, CKM_ECDH1_DERIVE, &mut mi)),
        CKR_OK
    );
    assert_eq!(
        (mi.ulMinKeySize, mi.ulMaxKeySize, mi.flags & CKF_DERIVE),
        (256, 384, CKF_DERIVE)
    );
    assert_eq!(ck!(C_GetMechanismInfo(slot, CKM_SHA512, &mut mi)), CKR_OK);
    assert_eq!(mi.flags, CKF_DIGEST);
    assert_eq!(
        ck!(C_GetMechanismInfo(slot, CKM_RSA_X_509, &mut mi)),
        CKR_MECHANISM_INVALID
    );
    // Sizes refused: below 2048 by design, 4096 by this TPM, before any command.
    for bits in [1024 as CK_ULONG, 4096] {
        let mut public = [ulong_attr(CKA_MODULUS_BITS, &bits)];
        let mut private = [bool_attr(CKA_PRIVATE, false)];
        assert_eq!(
            generate(ro, CKM_RSA_PKCS_KEY_PAIR_GEN, &mut public, &mut private).0,
            CKR_KEY_SIZE_RANGE,
            "{bits} bits"
        );
    }
    assert_eq!(
        proxy.command_count(),
        0,
        "{:x?}",
        proxy.exchanges().iter().map(|e| e.cc()).collect::<Vec<_>>()
    );

    // No CKA_TOKEN: session objects, even in a read-only public session when
    // the private key is not private (CKA_PRIVATE false).
    let mut public = [
        bytes_attr(CKA_EC_PARAMS, &P256),
        bytes_attr(CKA_LABEL, b"session"),
    ];
    let mut private = [bool_attr(CKA_PRIVATE, false), bool_attr(CKA_SIGN, true)];
    let (rv, pk, sk) = generate(ro, CKM_EC_KEY_PAIR_GEN, &mut public, &mut private);
    assert_eq!(rv, CKR_OK);
    assert_eq!(attr(ro, sk, CKA_TOKEN), [0]);
    assert_eq!(attr(ro, pk, CKA_TOKEN), [0]);
    assert_eq!(attr(ro, sk, CKA_PRIVATE), [0]);
    assert_eq!(attr(ro, sk, CKA_DERIVE), [0]);
    assert_eq!(attr(ro, sk, CKA_LABEL), b"session");
    let sig = sign(ro, sk, &mut mech(CKM_ECDSA), &data);
    assert_eq!(
        verify(ro, pk, &mut mech(CKM_ECDSA), &data, &sig, None),
        CKR_OK
    );
    assert!(
        tk(&s.sim.tcti(), &s.store(), &["key", "list"]).is_empty(),
        "a session key never touches the store"
    );
    // A private key object needs the user; token objects a read/write session.
    let mut public = [bytes_attr(CKA_EC_PARAMS, &P256)];
    assert_eq!(
        generate(ro, CKM_EC_KEY_PAIR_GEN, &mut public, &mut []).0,
        CKR_USER_NOT_LOGGED_IN
    );
    let mut token = [bool_attr(CKA_TOKEN, true)];
    assert_eq!(
        generate(ro, CKM_EC_KEY_PAIR_GEN, &mut public, &mut token).0,
        CKR_SESSION_READ_ONLY
    );
    // C_CloseSession takes the session's objects, and flushes its loaded key.
    proxy.clear();
    assert_eq!(ck!(C_CloseSession(ro)), CKR_OK);
    assert_eq!(cc_count(&proxy, TPM_CC_FLUSH_CONTEXT), 1);
    let rw = open(slot, true);
    assert_eq!(try_attr(rw, sk, CKA_LABEL), Err(CKR_OBJECT_HANDLE_INVALID));
    assert_eq!(try_attr(rw, pk, CKA_LABEL), Err(CKR_OBJECT_HANDLE_INVALID));

    // Usages from the templates; the TPM object's attributes follow them.
    assert_eq!(login(rw, CKU_USER, "1234"), CKR_OK);
    let bits: CK_ULONG = 2048;
    let mut public = [
        ulong_attr(CKA_MODULUS_BITS, &bits),
        bool_attr(CKA_ENCRYPT, true),
    ];
    let mut private = [bool_attr(CKA_DECRYPT, true)];
    let (rv, rpk, rsk) = generate(rw, CKM_RSA_PKCS_KEY_PAIR_GEN, &mut public, &mut private);
    assert_eq!(rv, CKR_OK);
    assert_eq!(attr(rw, rsk, CKA_DECRYPT), [1]);
    assert_eq!(attr(rw, rsk, CKA_SIGN), [0]);
    assert_eq!(attr(rw, rpk, CKA_VERIFY), [0]);
    assert_eq!(
        ck!(C_SignInit(rw, &mut mech(CKM_SHA256_RSA_PKCS), rsk)),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    let ct = rsa_public(rw, rpk)
        .encrypt(
            &mut rand_core::OsRng,
            rsa::Pkcs1v15Encrypt,
            b"to a session key",
        )
        .unwrap();
    assert_eq!(
        decrypt(rw, rsk, &mut mech(CKM_RSA_PKCS), &ct).unwrap(),
        b"to a session key"
    );
    for (mechanism, mut public, mut private) in [
        // ECDH is derivation, not decryption; RSA does not derive.
        (
            CKM_EC_KEY_PAIR_GEN,
            vec![bytes_attr(CKA_EC_PARAMS, &P256)],
            vec![bool_attr(CKA_DECRYPT, true)],
        ),
        (
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            vec![ulong_attr(CKA_MODULUS_BITS, &bits)],
            vec![bool_attr(CKA_DERIVE, true)],
        ),
        // The halves disagree; nothing left to do; unwrapping is not offered.
        (
            CKM_EC_KEY_PAIR_GEN,
            vec![
                bytes_attr(CKA_EC_PARAMS, &P256),
                bool_attr(CKA_VERIFY, false),
            ],
            vec![bool_attr(CKA_SIGN, true)],
        ),
        (
            CKM_EC_KEY_PAIR_GEN,
            vec![bytes_attr(CKA_EC_PARAMS, &P256)],
            vec![bool_attr(CKA_SIGN, false)],
        ),
        (
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            vec![ulong_attr(CKA_MODULUS_BITS, &bits)],
            vec![bool_attr(CKA_UNWRAP, true)],
        ),
        // A token key of a PIN token is private: CKA_PRIVATE false is refused,
        // never ignored.
        (
            CKM_EC_KEY_PAIR_GEN,
            vec![bytes_attr(CKA_EC_PARAMS, &P256)],
            vec![bool_attr(CKA_TOKEN, true), bool_attr(CKA_PRIVATE, false)],
        ),
        // The halves live alike.
        (
            CKM_EC_KEY_PAIR_GEN,
            vec![
                bytes_attr(CKA_EC_PARAMS, &P256),
                bool_attr(CKA_TOKEN, false),
            ],
            vec![bool_attr(CKA_TOKEN, true)],
        ),
    ] {
        assert_eq!(
            generate(rw, mechanism, &mut public, &mut private).0,
            CKR_TEMPLATE_INCONSISTENT
        );
    }
    // pkcs11-tool --keypairgen's defaults: EC signs and derives.
    let mut public = [
        bytes_attr(CKA_EC_PARAMS, &P256),
        bool_attr(CKA_VERIFY, true),
        bool_attr(CKA_DERIVE, true),
        bool_attr(CKA_TOKEN, true),
        bytes_attr(CKA_LABEL, b"both"),
    ];
    let mut private = [
        bool_attr(CKA_SIGN, true),
        bool_attr(CKA_DERIVE, true),
        bool_attr(CKA_TOKEN, true),
    ];
    let (rv, _, both) = generate(rw, CKM_EC_KEY_PAIR_GEN, &mut public, &mut private);
    assert_eq!(rv, CKR_OK);
    assert_eq!(
        (
            attr(rw, both, CKA_SIGN),
            attr(rw, both, CKA_DERIVE),
            attr(rw, both, CKA_TOKEN)
        ),
        (vec![1], vec![1], vec![1])
    );
    let listed = tk(&s.sim.tcti(), &s.store(), &["key", "list"]);
    assert!(
        listed.contains("both\tecc256") && listed.contains("sign,decrypt"),
        "{listed}"
    );
    // C_Logout destroys the private session objects (§5.6).
    let mut public = [bytes_attr(CKA_EC_PARAMS, &P256)];
    let (rv, epk, esk) = generate(rw, CKM_EC_KEY_PAIR_GEN, &mut public, &mut []);
    assert_eq!(rv, CKR_OK);
    assert_eq!(attr(rw, esk, CKA_PRIVATE), [1]);
    assert_eq!(ck!(C_Logout(rw)), CKR_OK);
    assert_eq!(login(rw, CKU_USER, "1234"), CKR_OK);
    assert_eq!(try_attr(rw, esk, CKA_SIGN), Err(CKR_OBJECT_HANDLE_INVALID));
    assert_eq!(attr(rw, epk, CKA_TOKEN), [0], "the public half stays");
    finalize();
}

#[test]
fn pin_flags_warn_before_the_tpm_locks_out() {
    let _t = turn();
    let s = Setup::new(&[]);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let slot = slots()[0];
    let h = open(slot, true);
    let pin_flags = CKF_USER_PIN_COUNT_LOW
        | CKF_USER_PIN_FINAL_TRY
        | CKF_USER_PIN_LOCKED
        | CKF_SO_PIN_COUNT_LOW
        | CKF_SO_PIN_FINAL_TRY
        | CKF_SO_PIN_LOCKED;
    // C_GetTokenInfo is a listing: no TPM command, whatever it shows.
    let flags = || {
        let before = proxy.command_count();
        let f = token_flags(slot) & pin_flags;
        assert_eq!(
            proxy.command_count(),
            before,
            "C_GetTokenInfo asked the TPM"
        );
        f
    };
    assert_eq!(flags(), 0);
    // swtpm allows 3 failures (TPM_PT_MAX_AUTH_FAIL), forgiving one per 1000 s.
    assert_eq!(login(h, CKU_USER, "0000"), CKR_PIN_INCORRECT);
    assert_eq!(flags(), CKF_USER_PIN_COUNT_LOW);
    assert_eq!(login(h, CKU_USER, "1234"), CKR_OK);
    assert_eq!(
        flags(),
        0,
        "a right PIN clears COUNT_LOW; one failure is counted"
    );
    assert_eq!(ck!(C_Logout(h)), CKR_OK);
    assert_eq!(login(h, CKU_SO, "0000"), CKR_PIN_INCORRECT);
    assert_eq!(
        flags(),
        CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY | CKF_USER_PIN_FINAL_TRY,
        "two failures of three: the next locks the TPM out, for both PINs"
    );
    assert_eq!(login(h, CKU_USER, "0000"), CKR_PIN_INCORRECT);
    assert_eq!(
        flags(),
        CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_LOCKED | CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED
    );
    // Locked out: even the right PIN is not checked.
    assert_eq!(login(h, CKU_USER, "1234"), CKR_PIN_LOCKED);
    assert!(flags() & CKF_USER_PIN_LOCKED != 0);
    // The counts are the store's: another process sees them.
    finalize();
    init();
    assert!(token_flags(slot) & CKF_USER_PIN_LOCKED != 0);
    finalize();
}

#[test]
fn pin_flags_count_the_pins_the_cli_checks_too() {
    let _t = turn();
    let s = Setup::new(&[("k", "ecc256", "sign")]);
    let (t, st) = (s.sim.tcti(), s.store());
    environment(&t, &st);
    let msg = s.dir.path().join("msg");
    std::fs::write(&msg, b"signed by the CLI").unwrap();
    let cli = |args: &[&str]| {
        let (ok, _, err) = common::run_tpmkey_in(&t, &st, args);
        (ok, err)
    };
    let sign = |pin: &str| {
        let m = msg.to_str().unwrap();
        cli(&[
            "sign",
            "--token",
            "t",
            "--label",
            "k",
            "--userpin",
            pin,
            "--in",
            m,
        ])
    };
    init();
    let slot = slots()[0];
    let flags = || {
        token_flags(slot)
            & (CKF_USER_PIN_COUNT_LOW
                | CKF_USER_PIN_FINAL_TRY
                | CKF_USER_PIN_LOCKED
                | CKF_SO_PIN_COUNT_LOW
                | CKF_SO_PIN_FINAL_TRY
                | CKF_SO_PIN_LOCKED)
    };
    assert_eq!(flags(), 0);
    // A wrong user PIN given to `tpmkey sign`: the module's PIN dialog would warn.
    let (ok, err) = sign("0000");
    assert!(!ok && err.contains("AUTH_FAIL"), "{err}");
    assert_eq!(flags(), CKF_USER_PIN_COUNT_LOW);
    // The right one, through the CLI, clears it.
    let (ok, err) = sign("1234");
    assert!(ok, "{err}");
    assert_eq!(flags(), 0);
    // A wrong old PIN for `pin change`: the TPM has now counted two failures
    // of swtpm's three (a right PIN does not take one back), so the next one
    // locks it out, whichever PIN it is.
    let (ok, err) = cli(&[
        "pin",
        "change",
        "--token",
        "t",
        "--userpin",
        "0000",
        "--new-userpin",
        "4321",
    ]);
    assert!(!ok, "{err}");
    let final_try = CKF_USER_PIN_FINAL_TRY | CKF_SO_PIN_FINAL_TRY;
    assert_eq!(flags(), CKF_USER_PIN_COUNT_LOW | final_try);
    // The old PIN still works (nothing changed) and clears the user count.
    let (ok, err) = sign("1234");
    assert!(ok, "{err}");
    assert_eq!(flags(), final_try);
    // A wrong SO PIN for `pin reset`: the third failure, counted for the SO.
    let (ok, err) = cli(&[
        "pin",
        "reset",
        "--token",
        "t",
        "--sopin",
        "0000",
        "--new-userpin",
        "4321",
    ]);
    assert!(!ok, "{err}");
    assert_eq!(
        flags(),
        CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_LOCKED | CKF_USER_PIN_LOCKED
    );
    // Locked out: the CLI is refused without a PIN check, and says so.
    let (ok, err) = sign("1234");
    assert!(!ok && err.contains("lockout"), "{err}");
    finalize();
}
