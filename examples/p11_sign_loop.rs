//! C_Sign throughput of any PKCS#11 module, for benches/pkcs11.sh.
//!
//! Loads the module with dlopen, finds the token by label, opens one session, logs in
//! once, finds the first private key of the wanted type, signs once (warm-up: key
//! load), then times `-n` signatures in that session and prints one line:
//! `sign <ec|rsa> n=N total_ms=T ms_per_op=M ops_per_s=R first_ms=F init_ms=I login_ms=L`
//! (F: the first C_SignInit+C_Sign; I: C_Initialize; L: C_Login).
//!
//! With `--mark FILE` it appends `# <phase>` lines to FILE between the phases
//! (`initialize`, `login`, `find`, `first-sign`, `steady`, `end`), so that a
//! recording proxy writing to the same file (O_APPEND) shows which TPM commands each
//! phase sent.
//!
//! `cargo run --release --example p11_sign_loop -- --module M --token bench --pin 1234 --key ec -n 200`

use std::ffi::c_void;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::ptr;
use std::time::{Duration, Instant};

use cryptoki_sys::{
    CKA_CLASS, CKA_KEY_TYPE, CKF_SERIAL_SESSION, CKK_EC, CKK_RSA, CKM_ECDSA, CKM_RSA_PKCS,
    CKO_PRIVATE_KEY, CKR_OK, CKU_USER, CK_ATTRIBUTE, CK_FUNCTION_LIST, CK_FUNCTION_LIST_PTR_PTR,
    CK_KEY_TYPE, CK_MECHANISM, CK_OBJECT_CLASS, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE,
    CK_SLOT_ID, CK_TOKEN_INFO, CK_TRUE, CK_ULONG,
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
    n: u32,
    mark: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: p11_sign_loop --module PATH --token LABEL --pin PIN --key ec|rsa [-n N] [--mark FILE]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        module: PathBuf::new(),
        token: "bench".into(),
        pin: String::new(),
        key: "ec".into(),
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
            "-n" => a.n = val().parse().unwrap_or_else(|_| usage()),
            "--mark" => a.mark = Some(val().into()),
            _ => usage(),
        }
    }
    if a.module.as_os_str().is_empty() || !matches!(a.key.as_str(), "ec" | "rsa") {
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
    let mut template = [
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
    p11!(
        f,
        C_FindObjectsInit(session, template.as_mut_ptr(), template.len() as CK_ULONG)
    );
    let mut key: CK_OBJECT_HANDLE = 0;
    let mut found: CK_ULONG = 0;
    p11!(f, C_FindObjects(session, &mut key, 1, &mut found));
    p11!(f, C_FindObjectsFinal(session));
    if found == 0 {
        eprintln!("p11_sign_loop: no {} private key on the token", args.key);
        std::process::exit(1);
    }

    let digest = [0x5au8; 32];
    let (mech_type, mut input) = if args.key == "ec" {
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
    let mut sign_once = || {
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
    };

    marker.mark("first-sign");
    let t = Instant::now();
    sign_once();
    let first_ms = t.elapsed().as_secs_f64() * 1e3;

    marker.mark("steady");
    let t = Instant::now();
    for _ in 0..args.n {
        sign_once();
    }
    let total = t.elapsed().as_secs_f64();
    marker.mark("end");

    p11!(f, C_Logout(session));
    p11!(f, C_CloseSession(session));
    p11!(f, C_Finalize(ptr::null_mut()));
    drop(lib);

    let n = f64::from(args.n.max(1));
    println!(
        "sign {} n={} total_ms={:.1} ms_per_op={:.3} ops_per_s={:.1} first_ms={:.2} init_ms={:.2} login_ms={:.2}",
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
