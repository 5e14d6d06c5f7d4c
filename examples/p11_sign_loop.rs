//! C_Sign, C_Decrypt and C_DeriveKey throughput of any PKCS#11 module, for
//! benches/pkcs11.sh.
//!
//! Loads the module with dlopen, finds the token by label, opens one session, logs in
//! once, finds the first private key of the wanted type (one that decrypts, or
//! derives, for those operations), runs the operation once (warm-up: key load), then
//! times `-n` more in that session and prints one line:
//! `<op> <ec|rsa> n=N total_ms=T ms_per_op=M ops_per_s=R first_ms=F init_ms=I login_ms=L`
//! (F: the first operation; I: C_Initialize; L: C_Login). The operations (`--op`):
//! - `sign` (default): CKM_ECDSA over a SHA-256 digest, or CKM_RSA_PKCS over its
//!   DigestInfo;
//! - `decrypt` (RSA): CKM_RSA_PKCS_OAEP with SHA-256, of a message encrypted here to
//!   the key's public half; every result checked;
//! - `derive` (EC): CKM_ECDH1_DERIVE (CKD_NULL) with a peer point made here, into a
//!   32-byte CKK_GENERIC_SECRET session object that is read back (the first one
//!   checked against the ECDH computed here) and destroyed.
//!
//! With `--mark FILE` it appends `# <phase>` lines to FILE between the phases
//! (`initialize`, `login`, `find`, `first-sign`, `steady`, `end`), so that a
//! recording proxy writing to the same file (O_APPEND) shows which TPM commands each
//! phase sent.
//!
//! `cargo run --release --example p11_sign_loop -- --module M --token bench --pin 1234 --key ec -n 200`
//! (`--key rsa --op decrypt`, `--key ec --op derive`)

use std::ffi::c_void;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::ptr;
use std::time::{Duration, Instant};

use cryptoki_sys::{
    CKA_CLASS, CKA_DECRYPT, CKA_DERIVE, CKA_EC_POINT, CKA_EXTRACTABLE, CKA_ID, CKA_KEY_TYPE,
    CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_SENSITIVE, CKA_TOKEN, CKA_VALUE, CKA_VALUE_LEN, CKD_NULL,
    CKF_SERIAL_SESSION, CKG_MGF1_SHA256, CKK_EC, CKK_GENERIC_SECRET, CKK_RSA, CKM_ECDH1_DERIVE,
    CKM_ECDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP, CKM_SHA256, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY,
    CKO_SECRET_KEY, CKR_OK, CKU_USER, CKZ_DATA_SPECIFIED, CK_ATTRIBUTE, CK_BBOOL,
    CK_ECDH1_DERIVE_PARAMS, CK_FALSE, CK_FUNCTION_LIST, CK_FUNCTION_LIST_PTR_PTR, CK_KEY_TYPE,
    CK_MECHANISM, CK_OBJECT_CLASS, CK_OBJECT_HANDLE, CK_RSA_PKCS_OAEP_PARAMS, CK_RV,
    CK_SESSION_HANDLE, CK_SLOT_ID, CK_TOKEN_INFO, CK_TRUE, CK_ULONG,
};

/// DER prefix of a SHA-256 DigestInfo (PKCS#1 v1.5), as ssh sends with CKM_RSA_PKCS.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

struct Args {
    module: PathBuf,
    token: String,
    pin: String,
    key: String,
    op: String,
    n: u32,
    mark: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: p11_sign_loop --module PATH --token LABEL --pin PIN --key ec|rsa [--op sign|decrypt|derive] [-n N] [--mark FILE]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        module: PathBuf::new(),
        token: "bench".into(),
        pin: String::new(),
        key: "ec".into(),
        op: "sign".into(),
        n: 200,
        mark: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--module" => a.module = val().into(),
            "--token" => a.token = val(),
            "--pin" => a.pin = val(),
            "--key" => a.key = val(),
            "--op" => a.op = val(),
            "-n" => a.n = val().parse().unwrap_or_else(|_| usage()),
            "--mark" => a.mark = Some(val().into()),
            _ => usage(),
        }
    }
    let op_fits = match a.op.as_str() {
        "sign" => true,
        "decrypt" => a.key == "rsa",
        "derive" => a.key == "ec",
        _ => false,
    };
    if a.module.as_os_str().is_empty() || !matches!(a.key.as_str(), "ec" | "rsa") || !op_fits {
        usage()
    }
    a
}

fn check(what: &str, rv: CK_RV) {
    if rv != CKR_OK {
        eprintln!("p11_sign_loop: {what} failed: CKR 0x{rv:x}");
        std::process::exit(1);
    }
}

/// Calls one entry of the function list, exiting with a message when it is missing.
macro_rules! p11 {
    ($f:expr, $name:ident ( $($arg:expr),* $(,)? )) => {{
        let func = $f.$name.unwrap_or_else(|| {
            eprintln!("p11_sign_loop: module has no {}", stringify!($name));
            std::process::exit(1)
        });
        // SAFETY: the module's own function pointer, called with pointers to live
        // locals of the types its Cryptoki 2.40 prototype expects.
        let rv = unsafe { func($($arg),*) };
        check(stringify!($name), rv);
    }};
}

struct Marker(Option<std::fs::File>);

impl Marker {
    fn mark(&mut self, phase: &str) {
        if let Some(f) = self.0.as_mut() {
            // Let a proxy that logs after forwarding the response finish its line.
            std::thread::sleep(Duration::from_millis(100));
            let _ = writeln!(f, "# {phase}");
        }
    }
}

fn main() {
    let args = parse_args();
    let mut marker = Marker(args.mark.as_ref().map(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open --mark file")
    }));

    // SAFETY: loading a PKCS#11 module runs its initializers; that is what we ask for.
    let lib = unsafe { libloading::Library::new(&args.module) }.unwrap_or_else(|e| {
        eprintln!("p11_sign_loop: dlopen {}: {e}", args.module.display());
        std::process::exit(1)
    });
    // SAFETY: C_GetFunctionList has this prototype in every Cryptoki version.
    let get_list: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
        unsafe { lib.get(b"C_GetFunctionList\0") }.expect("C_GetFunctionList");
    let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
    // SAFETY: `list` is a valid out-pointer.
    check("C_GetFunctionList", unsafe { get_list(&mut list) });
    // SAFETY: the module returned CKR_OK, so `list` points at its static function list.
    let f = unsafe { &*list };

    marker.mark("initialize");
    let t = Instant::now();
    p11!(f, C_Initialize(ptr::null_mut()));
    let init_ms = t.elapsed().as_secs_f64() * 1e3;

    let mut count: CK_ULONG = 0;
    p11!(f, C_GetSlotList(CK_TRUE, ptr::null_mut(), &mut count));
    let mut slots: Vec<CK_SLOT_ID> = vec![0; count as usize];
    p11!(f, C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut count));
    slots.truncate(count as usize);
    let slot = slots
        .iter()
        .copied()
        .find(|&s| {
            // SAFETY: CK_TOKEN_INFO is plain old data; all-zero is a valid value.
            let mut info: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
            p11!(f, C_GetTokenInfo(s, &mut info));
            String::from_utf8_lossy(&info.label).trim_end() == args.token
        })
        .unwrap_or_else(|| {
            eprintln!("p11_sign_loop: no token labelled {:?}", args.token);
            std::process::exit(1)
        });

    let mut session: CK_SESSION_HANDLE = 0;
    p11!(
        f,
        C_OpenSession(
            slot,
            CKF_SERIAL_SESSION,
            ptr::null_mut(),
            None,
            &mut session
        )
    );
    marker.mark("login");
    let mut pin = args.pin.clone().into_bytes();
    let t = Instant::now();
    p11!(
        f,
        C_Login(session, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG)
    );
    let login_ms = t.elapsed().as_secs_f64() * 1e3;

    marker.mark("find");
    let mut class: CK_OBJECT_CLASS = CKO_PRIVATE_KEY;
    let mut key_type: CK_KEY_TYPE = if args.key == "ec" { CKK_EC } else { CKK_RSA };
    let mut yes: CK_BBOOL = CK_TRUE;
    let mut template = vec![
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: (&mut class as *mut CK_OBJECT_CLASS).cast::<c_void>(),
            ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_KEY_TYPE,
            pValue: (&mut key_type as *mut CK_KEY_TYPE).cast::<c_void>(),
            ulValueLen: std::mem::size_of::<CK_KEY_TYPE>() as CK_ULONG,
        },
    ];
    let usage = match args.op.as_str() {
        "decrypt" => Some(CKA_DECRYPT),
        "derive" => Some(CKA_DERIVE),
        _ => None,
    };
    if let Some(u) = usage {
        template.push(CK_ATTRIBUTE {
            type_: u,
            pValue: (&mut yes as *mut CK_BBOOL).cast::<c_void>(),
            ulValueLen: 1,
        });
    }
    p11!(
        f,
        C_FindObjectsInit(session, template.as_mut_ptr(), template.len() as CK_ULONG)
    );
    let mut key: CK_OBJECT_HANDLE = 0;
    let mut found: CK_ULONG = 0;
    p11!(f, C_FindObjects(session, &mut key, 1, &mut found));
    p11!(f, C_FindObjectsFinal(session));
    if found == 0 {
        eprintln!(
            "p11_sign_loop: no {} private key for {} on the token",
            args.key, args.op
        );
        std::process::exit(1);
    }
    let mut run_once: Box<dyn FnMut() + '_> = match args.op.as_str() {
        "decrypt" => decrypt_op(f, session, key),
        "derive" => derive_op(f, session, key),
        _ => sign_op(f, session, key, args.key == "ec"),
    };

    marker.mark("first-sign");
    let t = Instant::now();
    run_once();
    let first_ms = t.elapsed().as_secs_f64() * 1e3;

    marker.mark("steady");
    let t = Instant::now();
    for _ in 0..args.n {
        run_once();
    }
    let total = t.elapsed().as_secs_f64();
    marker.mark("end");
    drop(run_once);

    p11!(f, C_Logout(session));
    p11!(f, C_CloseSession(session));
    p11!(f, C_Finalize(ptr::null_mut()));
    drop(lib);

    let n = f64::from(args.n.max(1));
    println!(
        "{} {} n={} total_ms={:.1} ms_per_op={:.3} ops_per_s={:.1} first_ms={:.2} init_ms={:.2} login_ms={:.2}",
        args.op,
        args.key,
        args.n,
        total * 1e3,
        total * 1e3 / n,
        n / total,
        first_ms,
        init_ms,
        login_ms
    );
}

/// An attribute's value (length query, then read); exits when it cannot be read.
fn attribute(
    f: &CK_FUNCTION_LIST,
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    t: CK_ULONG,
) -> Vec<u8> {
    let mut a = CK_ATTRIBUTE {
        type_: t,
        pValue: ptr::null_mut(),
        ulValueLen: 0,
    };
    p11!(f, C_GetAttributeValue(session, object, &mut a, 1));
    let mut v = vec![0u8; a.ulValueLen as usize];
    a.pValue = v.as_mut_ptr().cast::<c_void>();
    p11!(f, C_GetAttributeValue(session, object, &mut a, 1));
    v.truncate(a.ulValueLen as usize);
    v
}

/// The public key object beside a private key (same CKA_ID).
fn public_of(
    f: &CK_FUNCTION_LIST,
    session: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> CK_OBJECT_HANDLE {
    let mut id = attribute(f, session, key, CKA_ID);
    let mut class: CK_OBJECT_CLASS = CKO_PUBLIC_KEY;
    let mut template = [
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: (&mut class as *mut CK_OBJECT_CLASS).cast::<c_void>(),
            ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_ID,
            pValue: id.as_mut_ptr().cast::<c_void>(),
            ulValueLen: id.len() as CK_ULONG,
        },
    ];
    p11!(f, C_FindObjectsInit(session, template.as_mut_ptr(), 2));
    let (mut public, mut found): (CK_OBJECT_HANDLE, CK_ULONG) = (0, 0);
    p11!(f, C_FindObjects(session, &mut public, 1, &mut found));
    p11!(f, C_FindObjectsFinal(session));
    if found == 0 {
        eprintln!("p11_sign_loop: no public key beside the private one");
        std::process::exit(1);
    }
    public
}

fn fail(what: &str) -> ! {
    eprintln!("p11_sign_loop: {what}");
    std::process::exit(1)
}

/// One C_SignInit + C_Sign.
fn sign_op(
    f: &CK_FUNCTION_LIST,
    session: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    ec: bool,
) -> Box<dyn FnMut() + '_> {
    let digest = [0x5au8; 32];
    let (mech_type, mut input) = if ec {
        (CKM_ECDSA, digest.to_vec())
    } else {
        let mut v = SHA256_DIGEST_INFO.to_vec();
        v.extend_from_slice(&digest);
        (CKM_RSA_PKCS, v)
    };
    let mut mech = CK_MECHANISM {
        mechanism: mech_type,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut sig = [0u8; 1024];
    Box::new(move || {
        p11!(f, C_SignInit(session, &mut mech, key));
        let mut len = sig.len() as CK_ULONG;
        p11!(
            f,
            C_Sign(
                session,
                input.as_mut_ptr(),
                input.len() as CK_ULONG,
                sig.as_mut_ptr(),
                &mut len
            )
        );
    })
}

/// One C_DecryptInit + C_Decrypt (RSA-OAEP, SHA-256) of a message encrypted here.
fn decrypt_op(
    f: &CK_FUNCTION_LIST,
    session: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> Box<dyn FnMut() + '_> {
    let public = public_of(f, session, key);
    let n = attribute(f, session, public, CKA_MODULUS);
    let e = attribute(f, session, public, CKA_PUBLIC_EXPONENT);
    let pk = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    )
    .unwrap_or_else(|e| fail(&format!("the public key: {e}")));
    let message = b"32 bytes: a session key to open.".to_vec();
    let mut ct = pk
        .encrypt(
            &mut rand_core::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            &message,
        )
        .unwrap_or_else(|e| fail(&format!("encrypting: {e}")));
    let mut params = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: ptr::null_mut(),
        ulSourceDataLen: 0,
    };
    let mut out = [0u8; 512];
    Box::new(move || {
        let mut mech = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_OAEP,
            pParameter: (&mut params as *mut CK_RSA_PKCS_OAEP_PARAMS).cast::<c_void>(),
            ulParameterLen: std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() as CK_ULONG,
        };
        p11!(f, C_DecryptInit(session, &mut mech, key));
        let mut len = out.len() as CK_ULONG;
        p11!(
            f,
            C_Decrypt(
                session,
                ct.as_mut_ptr(),
                ct.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len
            )
        );
        if out.get(..len as usize) != Some(&message[..]) {
            fail("C_Decrypt gave another message");
        }
    })
}

/// One C_DeriveKey (ECDH1, CKD_NULL) into a readable session secret, read back
/// and destroyed; the first one is checked against the ECDH computed here.
fn derive_op(
    f: &CK_FUNCTION_LIST,
    session: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> Box<dyn FnMut() + '_> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let public = public_of(f, session, key);
    let der = attribute(f, session, public, CKA_EC_POINT);
    // CKA_EC_POINT: a DER OCTET STRING around the uncompressed point.
    let point = der.get(2..).unwrap_or_default();
    let tpm_key = p256::PublicKey::from_sec1_bytes(point)
        .unwrap_or_else(|_| fail("the key is not a P-256 key"));
    let peer = p256::SecretKey::random(&mut rand_core::OsRng);
    let mut peer_point = peer
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let want = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), tpm_key.as_affine())
        .raw_secret_bytes()
        .to_vec();
    let mut checked = false;
    Box::new(move || {
        let mut params = CK_ECDH1_DERIVE_PARAMS {
            kdf: CKD_NULL,
            ulSharedDataLen: 0,
            pSharedData: ptr::null_mut(),
            ulPublicDataLen: peer_point.len() as CK_ULONG,
            pPublicData: peer_point.as_mut_ptr(),
        };
        let mut mech = CK_MECHANISM {
            mechanism: CKM_ECDH1_DERIVE,
            pParameter: (&mut params as *mut CK_ECDH1_DERIVE_PARAMS).cast::<c_void>(),
            ulParameterLen: std::mem::size_of::<CK_ECDH1_DERIVE_PARAMS>() as CK_ULONG,
        };
        let (mut class, mut kind, mut len): (CK_OBJECT_CLASS, CK_KEY_TYPE, CK_ULONG) =
            (CKO_SECRET_KEY, CKK_GENERIC_SECRET, 32);
        let (mut no, mut yes): (CK_BBOOL, CK_BBOOL) = (CK_FALSE, CK_TRUE);
        const UL: usize = std::mem::size_of::<CK_ULONG>();
        let attr = |t, p: *mut c_void, n: usize| CK_ATTRIBUTE {
            type_: t,
            pValue: p,
            ulValueLen: n as CK_ULONG,
        };
        let mut template = [
            attr(CKA_TOKEN, (&mut no as *mut CK_BBOOL).cast(), 1),
            attr(CKA_CLASS, (&mut class as *mut CK_OBJECT_CLASS).cast(), UL),
            attr(CKA_KEY_TYPE, (&mut kind as *mut CK_KEY_TYPE).cast(), UL),
            attr(CKA_VALUE_LEN, (&mut len as *mut CK_ULONG).cast(), UL),
            attr(CKA_SENSITIVE, (&mut no as *mut CK_BBOOL).cast(), 1),
            attr(CKA_EXTRACTABLE, (&mut yes as *mut CK_BBOOL).cast(), 1),
        ];
        let mut secret: CK_OBJECT_HANDLE = 0;
        p11!(
            f,
            C_DeriveKey(
                session,
                &mut mech,
                key,
                template.as_mut_ptr(),
                template.len() as CK_ULONG,
                &mut secret
            )
        );
        let value = attribute(f, session, secret, CKA_VALUE);
        if !checked {
            if value != want {
                fail("C_DeriveKey gave another secret");
            }
            checked = true;
        }
        p11!(f, C_DestroyObject(session, secret));
    })
}
