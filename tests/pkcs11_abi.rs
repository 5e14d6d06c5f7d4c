//! The Cryptoki C ABI of the built `libtpmkey.so`, loaded with dlopen the way
//! OpenSSH and p11-kit load it, and called through its CK_FUNCTION_LIST:
//! C_Initialize's argument rules, listing with no TPM reachable (no connection
//! attempted at all), C_GetAttributeValue's five cases, every mechanism's signature
//! verified in software, the length-query protocol, one TPM command per steady
//! signature, threads signing at once, PINs (SO, InitPIN, SetPIN), key pair
//! generation, and CKR_FUNCTION_NOT_SUPPORTED / CKR_ARGUMENTS_BAD where due.
//!
//! The module's state is per process, so the tests take turns (one lock).
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard};

use common::proxy::TpmProxy;
use common::ssh::module_path;
use common::{Swtpm, TempDir};
use cryptoki_sys::*;

static TURN: Mutex<()> = Mutex::new(());

/// This test's turn with the module; whatever happens in the test, the module is
/// finalized when the turn ends, so that one failure does not cascade.
struct Turn(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = unsafe { (functions().C_Finalize.expect("C_Finalize"))(null_mut()) };
    }
}

fn turn() -> Turn {
    Turn(TURN.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The module's function list (the library stays loaded for the whole process, as
/// it does in ssh).
fn functions() -> &'static CK_FUNCTION_LIST {
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

macro_rules! ck {
    ($f:ident($($a:expr),* $(,)?)) => {
        unsafe { (functions().$f.expect(stringify!($f)))($($a),*) }
    };
}

/// Points the module (read at C_Initialize) at a TPM and a store.
fn environment(tcti: &str, store: &Path) {
    std::env::set_var("TPMKEY_TCTI", tcti);
    std::env::set_var("TPMKEY_STORE", store);
    std::env::set_var("TPMKEY_PKCS11_QUIET", "1");
    std::env::remove_var("TPM2TOOLS_TCTI");
}

fn tk(tcti: &str, store: &Path, args: &[&str]) {
    let (ok, _, err) = common::run_tpmkey_in(tcti, store, args);
    assert!(ok, "tpmkey {args:?}: {err}");
}

/// A swtpm with one PIN token "t" holding P-256, P-384 and RSA-2048 keys.
struct Setup {
    sim: Swtpm,
    dir: TempDir,
}

impl Setup {
    fn new(rsa: bool) -> Setup {
        let sim = Swtpm::start();
        let dir = TempDir::new("p11abi");
        let s = Setup { sim, dir };
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
        let mut algs = vec!["ecc256", "ecc384"];
        if rsa {
            algs.push("rsa2048");
        }
        for alg in algs {
            tk(
                &t,
                &st,
                &[
                    "key",
                    "add",
                    "--token",
                    "t",
                    "--label",
                    alg,
                    "--algorithm",
                    alg,
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

fn init() {
    assert_eq!(ck!(C_Initialize(null_mut())), CKR_OK);
}

fn finalize() {
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_OK);
}

fn slots() -> Vec<CK_SLOT_ID> {
    let mut n: CK_ULONG = 0;
    assert_eq!(ck!(C_GetSlotList(CK_TRUE, null_mut(), &mut n)), CKR_OK);
    let mut v = vec![0; n as usize];
    assert_eq!(ck!(C_GetSlotList(CK_TRUE, v.as_mut_ptr(), &mut n)), CKR_OK);
    v.truncate(n as usize);
    v
}

fn open(slot: CK_SLOT_ID, rw: bool) -> CK_SESSION_HANDLE {
    let mut h = 0;
    let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
    assert_eq!(
        ck!(C_OpenSession(slot, flags, null_mut(), None, &mut h)),
        CKR_OK
    );
    h
}

fn login(h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> CK_RV {
    ck!(C_Login(
        h,
        user,
        pin.as_ptr() as *mut u8,
        pin.len() as CK_ULONG
    ))
}

fn ulong_attr(t: CK_ATTRIBUTE_TYPE, v: &CK_ULONG) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: v as *const CK_ULONG as *mut _,
        ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
    }
}

fn bytes_attr(t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: t,
        pValue: v.as_ptr() as *mut _,
        ulValueLen: v.len() as CK_ULONG,
    }
}

/// Objects of `class` (and `label`, when given) in session `h`.
fn find(
    h: CK_SESSION_HANDLE,
    class: CK_OBJECT_CLASS,
    label: Option<&str>,
) -> Vec<CK_OBJECT_HANDLE> {
    let mut t = vec![ulong_attr(CKA_CLASS, &class)];
    if let Some(l) = label {
        t.push(bytes_attr(CKA_LABEL, l.as_bytes()));
    }
    assert_eq!(
        ck!(C_FindObjectsInit(h, t.as_mut_ptr(), t.len() as CK_ULONG)),
        CKR_OK
    );
    let mut out = Vec::new();
    loop {
        let mut buf = [0 as CK_OBJECT_HANDLE; 2];
        let mut n = 0;
        assert_eq!(ck!(C_FindObjects(h, buf.as_mut_ptr(), 2, &mut n)), CKR_OK);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    assert_eq!(ck!(C_FindObjectsFinal(h)), CKR_OK);
    out
}

/// One attribute's value (length query, then read).
fn attr(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    let mut a = CK_ATTRIBUTE {
        type_: t,
        pValue: null_mut(),
        ulValueLen: 0,
    };
    assert_eq!(ck!(C_GetAttributeValue(h, o, &mut a, 1)), CKR_OK);
    let mut v = vec![0u8; a.ulValueLen as usize];
    a.pValue = v.as_mut_ptr() as *mut _;
    assert_eq!(ck!(C_GetAttributeValue(h, o, &mut a, 1)), CKR_OK);
    v.truncate(a.ulValueLen as usize);
    v
}

/// C_SignInit + C_Sign (with a length query first).
fn sign(
    h: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    mech: CK_MECHANISM_TYPE,
    pss: Option<CK_RSA_PKCS_PSS_PARAMS>,
    data: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let mut params = pss;
    let mut m = CK_MECHANISM {
        mechanism: mech,
        pParameter: params
            .as_mut()
            .map_or(null_mut(), |p| p as *mut CK_RSA_PKCS_PSS_PARAMS as *mut _),
        ulParameterLen: if params.is_some() {
            std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>() as CK_ULONG
        } else {
            0
        },
    };
    let rv = ck!(C_SignInit(h, &mut m, key));
    if rv != CKR_OK {
        return Err(rv);
    }
    let mut len: CK_ULONG = 0;
    let d = data.as_ptr() as *mut u8;
    let dl = data.len() as CK_ULONG;
    let rv = ck!(C_Sign(h, d, dl, null_mut(), &mut len));
    if rv != CKR_OK {
        return Err(rv);
    }
    let mut sig = vec![0u8; len as usize];
    let rv = ck!(C_Sign(h, d, dl, sig.as_mut_ptr(), &mut len));
    if rv != CKR_OK {
        return Err(rv);
    }
    sig.truncate(len as usize);
    Ok(sig)
}

fn sha256(d: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(d).to_vec()
}

/// The EC point inside CKA_EC_POINT's DER OCTET STRING.
fn ec_point(der: &[u8]) -> &[u8] {
    assert_eq!(der[0], 0x04, "CKA_EC_POINT is an OCTET STRING");
    let (len, off) = if der[1] < 0x80 {
        (der[1] as usize, 2)
    } else {
        (der[2] as usize, 3)
    };
    assert_eq!(der.len(), off + len);
    &der[off..]
}

#[test]
fn initialize_rules_and_listing_without_touching_the_tpm() {
    let _t = turn();
    let s = Setup::new(false);
    // A TPM endpoint that counts connection attempts and never answers.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let port = trap.local_addr().unwrap().port();
    environment(&format!("swtpm:host=127.0.0.1,port={port}"), &s.store());

    let mut n = 0;
    assert_eq!(
        ck!(C_GetSlotList(CK_TRUE, null_mut(), &mut n)),
        CKR_CRYPTOKI_NOT_INITIALIZED
    );
    // CK_C_INITIALIZE_ARGS: mutex functions without CKF_OS_LOCKING_OK cannot be
    // honoured; a partial set and pReserved are argument errors.
    unsafe extern "C" fn create(_m: *mut *mut std::ffi::c_void) -> CK_RV {
        CKR_OK
    }
    unsafe extern "C" fn other(_m: *mut std::ffi::c_void) -> CK_RV {
        CKR_OK
    }
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: Some(create),
        DestroyMutex: Some(other),
        LockMutex: Some(other),
        UnlockMutex: Some(other),
        flags: 0,
        pReserved: null_mut(),
    };
    let with = |a: &mut CK_C_INITIALIZE_ARGS| {
        ck!(C_Initialize(
            a as *mut CK_C_INITIALIZE_ARGS as *mut std::ffi::c_void
        ))
    };
    assert_eq!(with(&mut args), CKR_CANT_LOCK);
    args.LockMutex = None;
    assert_eq!(with(&mut args), CKR_ARGUMENTS_BAD);
    args.LockMutex = Some(other);
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = std::ptr::dangling_mut();
    assert_eq!(with(&mut args), CKR_ARGUMENTS_BAD);
    args.pReserved = null_mut();
    assert_eq!(with(&mut args), CKR_OK);
    assert_eq!(
        ck!(C_Initialize(null_mut())),
        CKR_CRYPTOKI_ALREADY_INITIALIZED
    );
    assert_eq!(ck!(C_Finalize(std::ptr::dangling_mut())), CKR_ARGUMENTS_BAD);
    finalize();
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_CRYPTOKI_NOT_INITIALIZED);
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: null_mut(),
    };
    assert_eq!(
        ck!(C_Initialize(&mut args as *mut _ as *mut std::ffi::c_void)),
        CKR_OK
    );

    // Everything a listing does: no TPM connection at all.
    let mut info: CK_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(ck!(C_GetInfo(&mut info)), CKR_OK);
    assert_eq!(
        (info.cryptokiVersion.major, info.cryptokiVersion.minor),
        (2, 40)
    );
    assert!(info.manufacturerID.starts_with(b"tpmkey"));
    let mut one: CK_ULONG = 0;
    let mut slot_buf = [0 as CK_SLOT_ID; 1];
    assert_eq!(ck!(C_GetSlotList(CK_TRUE, null_mut(), &mut one)), CKR_OK);
    assert_eq!(one, 1);
    one = 0;
    assert_eq!(
        ck!(C_GetSlotList(CK_TRUE, slot_buf.as_mut_ptr(), &mut one)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(one, 1);
    let slot = slots()[0];
    let mut ti: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(ck!(C_GetTokenInfo(slot, &mut ti)), CKR_OK);
    assert!(ti.label.starts_with(b"t "), "label padded with blanks");
    assert!(ti.manufacturerID.starts_with(b"IBM"), "the TPM's maker");
    for f in [
        CKF_RNG,
        CKF_LOGIN_REQUIRED,
        CKF_USER_PIN_INITIALIZED,
        CKF_TOKEN_INITIALIZED,
    ] {
        assert_ne!(ti.flags & f, 0, "token flag {f:#x}");
    }
    assert_eq!(ck!(C_GetTokenInfo(99, &mut ti)), CKR_SLOT_ID_INVALID);
    let mut mn: CK_ULONG = 0;
    assert_eq!(ck!(C_GetMechanismList(slot, null_mut(), &mut mn)), CKR_OK);
    assert!(mn >= 10);
    let mut mi: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(ck!(C_GetMechanismInfo(slot, CKM_ECDSA, &mut mi)), CKR_OK);
    assert_ne!(mi.flags & CKF_SIGN, 0);
    assert_eq!(
        ck!(C_GetMechanismInfo(slot, CKM_AES_CBC, &mut mi)),
        CKR_MECHANISM_INVALID
    );
    let h = open(slot, false);
    // Before login: the public keys only.
    assert_eq!(find(h, CKO_PRIVATE_KEY, None).len(), 0);
    let pubs = find(h, CKO_PUBLIC_KEY, None);
    assert_eq!(pubs.len(), 2);
    let p256 = find(h, CKO_PUBLIC_KEY, Some("ecc256"));
    assert_eq!(p256.len(), 1);
    let o = p256[0];
    assert_eq!(
        attr(h, o, CKA_EC_PARAMS),
        [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
    );
    assert_eq!(ec_point(&attr(h, o, CKA_EC_POINT)).len(), 65);

    // C_GetAttributeValue, PKCS#11 2.40 §5.7.5: a length query, a buffer too small,
    // an unknown attribute, and a good one, in one call: each gets its answer, the
    // call returns the most serious problem.
    let mut small = [0u8; 3];
    let mut label = [0u8; 16];
    let mut attrs = [
        CK_ATTRIBUTE {
            type_: CKA_EC_POINT,
            pValue: null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: CKA_ID,
            pValue: small.as_mut_ptr() as *mut _,
            ulValueLen: 3,
        },
        CK_ATTRIBUTE {
            type_: CKA_MODULUS,
            pValue: null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_mut_ptr() as *mut _,
            ulValueLen: 16,
        },
    ];
    assert_eq!(
        ck!(C_GetAttributeValue(h, o, attrs.as_mut_ptr(), 4)),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
    assert_eq!(attrs[0].ulValueLen, 67);
    assert_eq!(attrs[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(attrs[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(attrs[3].ulValueLen, 6);
    assert_eq!(&label[..6], b"ecc256");
    attrs[1].ulValueLen = 3;
    assert_eq!(
        ck!(C_GetAttributeValue(h, o, attrs[1..2].as_mut_ptr(), 1)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(
        ck!(C_GetAttributeValue(h, o, null_mut(), 1)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_GetAttributeValue(h, 9999, attrs.as_mut_ptr(), 1)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert!(
        trap.accept().is_err(),
        "a listing call connected to the TPM"
    );

    // The first operation that needs the TPM fails at once when there is none.
    drop(trap);
    let t0 = std::time::Instant::now();
    assert_eq!(login(h, CKU_USER, "1234"), CKR_DEVICE_ERROR);
    println!("login with no TPM failed in {:?}", t0.elapsed());
    assert_eq!(ck!(C_CloseSession(h)), CKR_OK);
    assert_eq!(ck!(C_CloseSession(h)), CKR_SESSION_HANDLE_INVALID);
    finalize();
}

#[test]
fn every_mechanism_signs_and_verifies_with_one_tpm_command() {
    let _t = turn();
    let s = Setup::new(true);
    let proxy = TpmProxy::start(s.sim.data_port());
    environment(&proxy.tcti(), &s.store());
    init();
    let h = open(slots()[0], false);
    let ec = find(h, CKO_PUBLIC_KEY, Some("ecc256"))[0];
    let point = ec_point(&attr(h, ec, CKA_EC_POINT)).to_vec();
    let ec384 = find(h, CKO_PUBLIC_KEY, Some("ecc384"))[0];
    let point384 = ec_point(&attr(h, ec384, CKA_EC_POINT)).to_vec();
    let rsa_pub = find(h, CKO_PUBLIC_KEY, Some("rsa2048"))[0];
    let n = attr(h, rsa_pub, CKA_MODULUS);
    let e = attr(h, rsa_pub, CKA_PUBLIC_EXPONENT);
    let rsa_key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    )
    .unwrap();
    assert_eq!(n.len(), 256);
    assert_eq!(login(h, CKU_USER, "0000"), CKR_PIN_INCORRECT);
    // Not logged in: private keys are hidden.
    assert!(find(h, CKO_PRIVATE_KEY, None).is_empty());
    assert_eq!(login(h, CKU_USER, "1234"), CKR_OK);
    assert_eq!(login(h, CKU_USER, "1234"), CKR_USER_ALREADY_LOGGED_IN);
    let k256 = find(h, CKO_PRIVATE_KEY, Some("ecc256"))[0];
    let k384 = find(h, CKO_PRIVATE_KEY, Some("ecc384"))[0];
    let krsa = find(h, CKO_PRIVATE_KEY, Some("rsa2048"))[0];
    assert_eq!(attr(h, k256, CKA_SIGN), [1]);
    assert_eq!(attr(h, k256, CKA_EXTRACTABLE), [0]);
    assert_eq!(attr(h, k256, CKA_ALWAYS_AUTHENTICATE), [0]);
    let mut v = CK_ATTRIBUTE {
        type_: CKA_VALUE,
        pValue: null_mut(),
        ulValueLen: 0,
    };
    assert_eq!(
        ck!(C_GetAttributeValue(h, k256, &mut v, 1)),
        CKR_ATTRIBUTE_SENSITIVE
    );
    assert_eq!(v.ulValueLen, CK_UNAVAILABLE_INFORMATION);

    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::ecdsa::signature::Verifier;
    let msg = b"tpmkey signs through the C ABI";
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    // CKM_ECDSA: a digest in, r||s out.
    let sig = sign(h, k256, CKM_ECDSA, None, &sha256(msg)).unwrap();
    vk.verify_prehash(
        &sha256(msg),
        &p256::ecdsa::Signature::from_slice(&sig).unwrap(),
    )
    .expect("CKM_ECDSA verifies");
    // CKM_ECDSA_SHA256 in parts.
    let mut m = CK_MECHANISM {
        mechanism: CKM_ECDSA_SHA256,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    assert_eq!(ck!(C_SignInit(h, &mut m, k256)), CKR_OK);
    assert_eq!(ck!(C_SignInit(h, &mut m, k256)), CKR_OPERATION_ACTIVE);
    for part in msg.chunks(7) {
        assert_eq!(
            ck!(C_SignUpdate(
                h,
                part.as_ptr() as *mut u8,
                part.len() as CK_ULONG
            )),
            CKR_OK
        );
    }
    let mut sig = [0u8; 64];
    let mut len: CK_ULONG = 10;
    assert_eq!(
        ck!(C_SignFinal(h, sig.as_mut_ptr(), &mut len)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(len, 64, "the needed length; the operation goes on");
    assert_eq!(ck!(C_SignFinal(h, sig.as_mut_ptr(), &mut len)), CKR_OK);
    vk.verify(msg, &p256::ecdsa::Signature::from_slice(&sig).unwrap())
        .expect("CKM_ECDSA_SHA256 in parts verifies");
    assert_eq!(
        ck!(C_SignFinal(h, sig.as_mut_ptr(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // P-384 with SHA-384.
    let vk384 = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point384).unwrap();
    let sig = sign(h, k384, CKM_ECDSA_SHA384, None, msg).unwrap();
    assert_eq!(sig.len(), 96);
    vk384
        .verify(msg, &p384::ecdsa::Signature::from_slice(&sig).unwrap())
        .expect("P-384 ECDSA-SHA384 verifies");
    // CKM_RSA_PKCS with a DigestInfo (as OpenSSH sends for rsa-sha2-256/512).
    for (mech, scheme, digest_info) in [
        (CKM_RSA_PKCS, rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), true),
        (
            CKM_SHA256_RSA_PKCS,
            rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            false,
        ),
    ] {
        let input = if digest_info {
            [scheme.prefix.as_ref(), &sha256(msg)].concat()
        } else {
            msg.to_vec()
        };
        let sig = sign(h, krsa, mech, None, &input).unwrap();
        rsa_key
            .verify(scheme, &sha256(msg), &sig)
            .unwrap_or_else(|e| panic!("RSA mechanism {mech:#x}: {e}"));
    }
    let sig = sign(
        h,
        krsa,
        CKM_RSA_PKCS,
        None,
        &[rsa::Pkcs1v15Sign::new::<sha2::Sha512>().prefix.as_ref(), &{
            use sha2::Digest;
            sha2::Sha512::digest(msg).to_vec()
        }]
        .concat(),
    )
    .unwrap();
    use sha2::Digest;
    rsa_key
        .verify(
            rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
            &sha2::Sha512::digest(msg),
            &sig,
        )
        .expect("rsa-sha2-512 DigestInfo verifies");
    // PSS: salt as long as the digest (the TPM's rule).
    let pss = CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        sLen: 32,
    };
    for (mech, input) in [
        (CKM_RSA_PKCS_PSS, sha256(msg)),
        (CKM_SHA256_RSA_PKCS_PSS, msg.to_vec()),
    ] {
        let sig = sign(h, krsa, mech, Some(pss), &input).unwrap();
        rsa_key
            .verify(rsa::Pss::new::<sha2::Sha256>(), &sha256(msg), &sig)
            .unwrap_or_else(|e| panic!("PSS mechanism {mech:#x}: {e}"));
    }
    let bad_salt = CK_RSA_PKCS_PSS_PARAMS { sLen: 20, ..pss };
    assert_eq!(
        sign(h, krsa, CKM_RSA_PKCS_PSS, Some(bad_salt), &sha256(msg)),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        sign(h, k256, CKM_RSA_PKCS, None, &sha256(msg)),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(
        sign(h, krsa, CKM_RSA_PKCS, None, b"not a DigestInfo"),
        Err(CKR_DATA_INVALID)
    );
    assert_eq!(
        sign(h, ec, CKM_ECDSA, None, &sha256(msg)),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED),
        "public keys do not sign"
    );

    // Steady state: one TPM2_Sign per signature (after a first signature that may
    // load the key again: two of the three keys stay loaded).
    sign(h, k256, CKM_ECDSA, None, &sha256(msg)).unwrap();
    let before = proxy.command_count();
    for _ in 0..20 {
        sign(h, k256, CKM_ECDSA, None, &sha256(msg)).unwrap();
    }
    let cmds: Vec<u32> = proxy.exchanges()[before..].iter().map(|x| x.cc()).collect();
    assert_eq!(cmds, vec![0x15d; 20], "20 signatures, 20 TPM2_Sign");

    // Threads: one session each, signing at once; every signature verifies.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let point = point.clone();
            std::thread::spawn(move || {
                let h = open(slots()[0], false);
                let k = find(h, CKO_PRIVATE_KEY, Some("ecc256"))[0];
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
                for i in 0..10u8 {
                    let d = sha256(&[i]);
                    let sig = sign(h, k, CKM_ECDSA, None, &d).unwrap();
                    vk.verify_prehash(&d, &p256::ecdsa::Signature::from_slice(&sig).unwrap())
                        .unwrap();
                }
                assert_eq!(ck!(C_CloseSession(h)), CKR_OK);
                10
            })
        })
        .collect();
    let signed: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(signed, 40);

    // C_Finalize flushes what the module loaded: nothing of ours stays in the TPM.
    assert_eq!(ck!(C_Logout(h)), CKR_OK);
    assert_eq!(
        sign(h, k256, CKM_ECDSA, None, &sha256(msg)),
        Err(CKR_KEY_HANDLE_INVALID),
        "private keys are gone after logout"
    );
    finalize();
    let left = common::loaded_handles(&s.sim.tcti());
    assert!(
        left.is_empty(),
        "left in the TPM after C_Finalize: {left:x?}"
    );
}

#[test]
fn pins_key_generation_destroy_and_random() {
    let _t = turn();
    let s = Setup::new(false);
    environment(&s.sim.tcti(), &s.store());
    init();
    let slot = slots()[0];
    let ro = open(slot, false);
    assert_eq!(ck!(C_GenerateRandom(ro, null_mut(), 8)), CKR_ARGUMENTS_BAD);
    let mut r = [0u8; 100];
    assert_eq!(ck!(C_GenerateRandom(ro, r.as_mut_ptr(), 100)), CKR_OK);
    assert!(r.iter().any(|b| *b != 0));
    // The SO needs a read/write session, and no read-only one may be open.
    assert_eq!(login(ro, CKU_SO, "5678"), CKR_SESSION_READ_ONLY_EXISTS);
    assert_eq!(ck!(C_CloseSession(ro)), CKR_OK);
    let rw = open(slot, true);
    assert_eq!(login(rw, CKU_SO, "0000"), CKR_PIN_INCORRECT);
    assert_eq!(login(rw, CKU_SO, "5678"), CKR_OK);
    let new_pin = "new-user-pin";
    assert_eq!(
        ck!(C_InitPIN(
            rw,
            new_pin.as_ptr() as *mut u8,
            new_pin.len() as CK_ULONG
        )),
        CKR_OK
    );
    assert_eq!(ck!(C_Logout(rw)), CKR_OK);
    assert_eq!(login(rw, CKU_USER, "1234"), CKR_PIN_INCORRECT);
    assert_eq!(login(rw, CKU_USER, new_pin), CKR_OK);
    // C_SetPIN: the user changes it back; keys made before still sign.
    assert_eq!(
        ck!(C_SetPIN(
            rw,
            new_pin.as_ptr() as *mut u8,
            new_pin.len() as CK_ULONG,
            b"4321".as_ptr() as *mut u8,
            4
        )),
        CKR_OK
    );
    let k = find(rw, CKO_PRIVATE_KEY, Some("ecc256"))[0];
    assert!(sign(rw, k, CKM_ECDSA, None, &sha256(b"x")).is_ok());
    assert_eq!(ck!(C_Logout(rw)), CKR_OK);
    assert_eq!(login(rw, CKU_USER, "4321"), CKR_OK);

    // C_GenerateKeyPair as pkcs11-tool --keypairgen sends it.
    let params = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let yes: CK_BBOOL = CK_TRUE;
    let label = b"made-by-abi";
    let id = [0x42u8, 0x43];
    let mut pub_t = [
        bytes_attr(CKA_EC_PARAMS, &params),
        bytes_attr(CKA_TOKEN, std::slice::from_ref(&yes)),
        bytes_attr(CKA_LABEL, label),
        bytes_attr(CKA_ID, &id),
    ];
    let mut priv_t = [
        bytes_attr(CKA_TOKEN, std::slice::from_ref(&yes)),
        bytes_attr(CKA_SIGN, std::slice::from_ref(&yes)),
        bytes_attr(CKA_LABEL, label),
        bytes_attr(CKA_ID, &id),
    ];
    let mut m = CK_MECHANISM {
        mechanism: CKM_EC_KEY_PAIR_GEN,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let (mut pk, mut sk) = (0, 0);
    let mut generate = |pk: &mut CK_OBJECT_HANDLE, sk: &mut CK_OBJECT_HANDLE| {
        ck!(C_GenerateKeyPair(
            rw,
            &mut m,
            pub_t.as_mut_ptr(),
            4,
            priv_t.as_mut_ptr(),
            4,
            pk,
            sk
        ))
    };
    assert_eq!(generate(&mut pk, &mut sk), CKR_OK);
    assert_eq!(attr(rw, sk, CKA_ID), id);
    assert_eq!(attr(rw, pk, CKA_LABEL), label);
    assert_eq!(
        generate(&mut pk, &mut sk),
        CKR_TEMPLATE_INCONSISTENT,
        "the label and id are taken"
    );
    let point = ec_point(&attr(rw, pk, CKA_EC_POINT)).to_vec();
    let sig = sign(rw, sk, CKM_ECDSA, None, &sha256(b"fresh")).unwrap();
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
        .unwrap()
        .verify_prehash(
            &sha256(b"fresh"),
            &p256::ecdsa::Signature::from_slice(&sig).unwrap(),
        )
        .expect("a generated key signs");
    assert_eq!(ck!(C_DestroyObject(rw, sk)), CKR_OK);
    assert!(find(rw, CKO_PUBLIC_KEY, Some("made-by-abi")).is_empty());
    assert_eq!(ck!(C_CloseAllSessions(slot)), CKR_OK);
    assert_eq!(ck!(C_CloseSession(rw)), CKR_SESSION_HANDLE_INVALID);
    finalize();
}

#[test]
fn unsupported_functions_and_bad_pointers() {
    let _t = turn();
    let s = Setup::new(false);
    environment(&s.sim.tcti(), &s.store());
    init();
    let f = functions();
    assert_eq!((f.version.major, f.version.minor), (2, 40));
    let h = open(slots()[0], false);
    let mut m = CK_MECHANISM {
        mechanism: CKM_SHA256,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let mut n: CK_ULONG = 0;
    // (Every function's codes are in tests/pkcs11_functions.rs.)
    assert_eq!(ck!(C_DigestInit(h, &mut m)), CKR_OK);
    let mut label = [b' '; 32];
    assert_eq!(
        ck!(C_InitToken(0, null_mut(), 0, label.as_mut_ptr())),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        ck!(C_CreateObject(h, null_mut(), 0, &mut n)),
        CKR_TEMPLATE_INCOMPLETE
    );
    let mut slot = 0;
    assert_eq!(
        ck!(C_WaitForSlotEvent(0, &mut slot, null_mut())),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    // Null out-pointers are argument errors, never crashes.
    assert_eq!(ck!(C_GetInfo(null_mut())), CKR_ARGUMENTS_BAD);
    assert_eq!(
        ck!(C_GetSlotList(CK_TRUE, null_mut(), null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_GetTokenInfo(0, null_mut())), CKR_ARGUMENTS_BAD);
    assert_eq!(
        ck!(C_OpenSession(
            0,
            CKF_SERIAL_SESSION,
            null_mut(),
            None,
            null_mut()
        )),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        ck!(C_OpenSession(0, 0, null_mut(), None, &mut n)),
        CKR_SESSION_PARALLEL_NOT_SUPPORTED
    );
    assert_eq!(ck!(C_Login(h, CKU_USER, null_mut(), 4)), CKR_ARGUMENTS_BAD);
    assert_eq!(ck!(C_SignInit(h, null_mut(), 1)), CKR_ARGUMENTS_BAD);
    assert_eq!(ck!(C_FindObjectsInit(h, null_mut(), 3)), CKR_ARGUMENTS_BAD);
    assert_eq!(
        ck!(C_Sign(h, null_mut(), 0, null_mut(), &mut n)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        ck!(C_Login(h, 7, b"1".as_ptr() as *mut u8, 1)),
        CKR_USER_TYPE_INVALID
    );
    assert_eq!(ck!(C_CloseSession(12345)), CKR_SESSION_HANDLE_INVALID);
    // An empty template matches everything; asking for 0 handles into no buffer is fine.
    assert_eq!(ck!(C_FindObjectsInit(h, null_mut(), 0)), CKR_OK);
    assert_eq!(
        ck!(C_FindObjectsInit(h, null_mut(), 0)),
        CKR_OPERATION_ACTIVE
    );
    n = 7;
    assert_eq!(ck!(C_FindObjects(h, null_mut(), 0, &mut n)), CKR_OK);
    assert_eq!(n, 0);
    assert_eq!(
        ck!(C_FindObjects(h, null_mut(), 1, &mut n)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(ck!(C_FindObjectsFinal(h)), CKR_OK);

    // PKCS#11 3.0 C_GetInterface: the "PKCS 11" interface, version 2.40.
    let lib = unsafe { libloading::Library::new(module_path()) }.unwrap();
    let get: libloading::Symbol<
        unsafe extern "C" fn(*mut u8, *mut CK_VERSION, *mut *mut CK_INTERFACE, CK_FLAGS) -> CK_RV,
    > = unsafe { lib.get(b"C_GetInterface\0") }.unwrap();
    let mut iface = null_mut();
    assert_eq!(
        unsafe { get(null_mut(), null_mut(), &mut iface, 0) },
        CKR_OK
    );
    let iface = unsafe { &*iface };
    let name = unsafe { std::ffi::CStr::from_ptr(iface.pInterfaceName as *const _) };
    assert_eq!(name.to_bytes(), b"PKCS 11");
    assert_eq!(
        iface.pFunctionList as *const CK_FUNCTION_LIST,
        f as *const _
    );
    let mut v = CK_VERSION { major: 3, minor: 0 };
    let mut other = null_mut();
    assert_eq!(
        unsafe { get(null_mut(), &mut v, &mut other, 0) },
        CKR_ARGUMENTS_BAD
    );
    finalize();
}
