//! Certificates and data objects through the module: the C ABI (C_CreateObject
//! as token and session objects, C_CopyObject, C_SetAttributeValue on
//! certificates, data objects and keys, C_GetObjectSize, C_DestroyObject, and
//! the bad input of the issue: a 10 MB blob, conflicting attributes, a
//! read-only session making a token object, a private object before login, a
//! key from plaintext), private data encrypted in the store, and what other
//! programs do to put a certificate on a token (`pkcs11-tool --write-object`,
//! `p11tool --write --load-certificate`, NSS's `certutil -A -h TOKEN`). Listing
//! keys and certificates (`ssh-keygen -D`, `pkcs11-tool -O`, `p11tool
//! --list-all`, C_FindObjects and C_GetAttributeValue) sends no TPM command:
//! every command goes through a counting proxy.
#![allow(unsafe_code, clippy::undocumented_unsafe_blocks)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::null_mut;

use common::pki::{nss_db, run, Ca};
use common::proxy::TpmProxy;
use common::ssh::module_path;
use common::{Swtpm, TempDir};
use cryptoki_sys::*;

/// A swtpm behind a counting proxy, a store, a CA.
struct Bench {
    _sim: Swtpm,
    proxy: TpmProxy,
    dir: TempDir,
    ca: Ca,
}

impl Bench {
    fn new() -> Bench {
        let sim = Swtpm::start();
        let proxy = TpmProxy::start(sim.data_port());
        let dir = TempDir::new("p11obj");
        let ca = Ca::new(dir.path());
        let b = Bench {
            _sim: sim,
            proxy,
            dir,
            ca,
        };
        b.tk(&["init"]);
        b
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn tk(&self, args: &[&str]) -> String {
        let (ok, out, err) = common::run_tpmkey_in(&self.proxy.tcti(), &self.store(), args);
        assert!(ok, "tpmkey {args:?} failed: {err}");
        out
    }

    /// A key `label` on PIN token `token` with a certificate from the CA (CN =
    /// label); the certificate's DER.
    fn key_with_cert(&self, token: &str, label: &str) -> Vec<u8> {
        self.tk(&[
            "key",
            "add",
            "--token",
            token,
            "--label",
            label,
            "--userpin",
            "1234",
        ]);
        let csr = self.dir.path().join(format!("{label}.csr"));
        self.tk(&[
            "cert",
            "request",
            "--token",
            token,
            "--key",
            label,
            "--subject",
            &format!("CN={label}"),
            "--userpin",
            "1234",
            "--out",
            &csr.to_string_lossy(),
        ]);
        let pem = self.dir.path().join(format!("{label}.pem"));
        self.ca.issue(&csr, &pem);
        self.tk(&["cert", "import", "--token", token, &pem.to_string_lossy()]);
        der(&pem)
    }

    fn objects_dir(&self, token: &str) -> PathBuf {
        self.store().join("tokens").join(token).join("objects")
    }

    fn object_files(&self, token: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(self.objects_dir(token))
            .map(|d| {
                d.flatten()
                    .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Runs a program against the module's TPM and store; its output and the
    /// number of TPM commands it sent.
    fn tool(&self, program: &str, args: &[&str]) -> (String, usize) {
        let before = self.proxy.command_count();
        let out = Command::new(program)
            .args(args)
            .env("TPMKEY_TCTI", self.proxy.tcti())
            .env("TPMKEY_STORE", self.store())
            .env("TPMKEY_PKCS11_QUIET", "1")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
        (text, self.proxy.command_count() - before)
    }
}

/// The DER of a PEM certificate file.
fn der(pem: &Path) -> Vec<u8> {
    let out = pem.with_extension("der");
    run(
        "openssl",
        &[
            "x509",
            "-in",
            &pem.to_string_lossy(),
            "-outform",
            "DER",
            "-out",
            &out.to_string_lossy(),
        ],
        "openssl",
    );
    std::fs::read(out).unwrap()
}

/// The DER subject of a certificate, as openssl encodes it.
fn subject_der(cert_der: &[u8]) -> Vec<u8> {
    use x509_cert::der::{Decode, Encode};
    x509_cert::Certificate::from_der(cert_der)
        .unwrap()
        .tbs_certificate
        .subject
        .to_der()
        .unwrap()
}

// ---- the C ABI ----

fn functions() -> &'static CK_FUNCTION_LIST {
    static LIST: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let p = *LIST.get_or_init(|| {
        let lib = unsafe { libloading::Library::new(module_path()) }.expect("dlopen libtpmkey.so");
        let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
            unsafe { lib.get(b"C_GetFunctionList\0") }.expect("C_GetFunctionList");
        let mut list = null_mut();
        assert_eq!(unsafe { get(&mut list) }, CKR_OK);
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

/// An attribute template the C ABI can take (values kept alive alongside).
struct Template {
    values: Vec<Vec<u8>>,
    types: Vec<CK_ATTRIBUTE_TYPE>,
}

impl Template {
    fn new() -> Template {
        Template {
            values: Vec::new(),
            types: Vec::new(),
        }
    }
    fn bytes(mut self, t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Template {
        self.types.push(t);
        self.values.push(v.to_vec());
        self
    }
    fn ulong(self, t: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> Template {
        self.bytes(t, &v.to_ne_bytes())
    }
    fn bool(self, t: CK_ATTRIBUTE_TYPE, v: bool) -> Template {
        self.bytes(t, &[u8::from(v)])
    }
    fn attrs(&mut self) -> Vec<CK_ATTRIBUTE> {
        self.types
            .iter()
            .zip(self.values.iter_mut())
            .map(|(t, v)| CK_ATTRIBUTE {
                type_: *t,
                pValue: v.as_mut_ptr() as *mut _,
                ulValueLen: v.len() as CK_ULONG,
            })
            .collect()
    }
}

fn cert_template(der: &[u8]) -> Template {
    Template::new()
        .ulong(CKA_CLASS, CKO_CERTIFICATE)
        .ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
        .bytes(CKA_VALUE, der)
        .bytes(CKA_SUBJECT, &subject_der(der))
}

fn data_template(label: &str, value: &[u8]) -> Template {
    Template::new()
        .ulong(CKA_CLASS, CKO_DATA)
        .bytes(CKA_LABEL, label.as_bytes())
        .bytes(CKA_APPLICATION, b"tpmkey test")
        .bytes(CKA_VALUE, value)
}

fn create(h: CK_SESSION_HANDLE, mut t: Template) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    let mut a = t.attrs();
    let mut o = 0;
    match ck!(C_CreateObject(
        h,
        a.as_mut_ptr(),
        a.len() as CK_ULONG,
        &mut o
    )) {
        CKR_OK => Ok(o),
        rv => Err(rv),
    }
}

fn copy(
    h: CK_SESSION_HANDLE,
    o: CK_OBJECT_HANDLE,
    mut t: Template,
) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    let mut a = t.attrs();
    let mut n = 0;
    match ck!(C_CopyObject(
        h,
        o,
        a.as_mut_ptr(),
        a.len() as CK_ULONG,
        &mut n
    )) {
        CKR_OK => Ok(n),
        rv => Err(rv),
    }
}

fn set(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, mut t: Template) -> CK_RV {
    let mut a = t.attrs();
    ck!(C_SetAttributeValue(
        h,
        o,
        a.as_mut_ptr(),
        a.len() as CK_ULONG
    ))
}

fn open(rw: bool) -> CK_SESSION_HANDLE {
    let mut slots = [0 as CK_SLOT_ID; 4];
    let mut n = 4;
    assert_eq!(
        ck!(C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n)),
        CKR_OK
    );
    assert_eq!(n, 1, "one token");
    let mut h = 0;
    let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
    assert_eq!(
        ck!(C_OpenSession(slots[0], flags, null_mut(), None, &mut h)),
        CKR_OK
    );
    h
}

fn login(h: CK_SESSION_HANDLE) {
    assert_eq!(
        ck!(C_Login(h, CKU_USER, b"1234".as_ptr() as *mut u8, 4)),
        CKR_OK
    );
}

fn find(h: CK_SESSION_HANDLE, mut t: Template) -> Vec<CK_OBJECT_HANDLE> {
    let mut a = t.attrs();
    assert_eq!(
        ck!(C_FindObjectsInit(h, a.as_mut_ptr(), a.len() as CK_ULONG)),
        CKR_OK
    );
    let mut out = Vec::new();
    loop {
        let mut buf = [0 as CK_OBJECT_HANDLE; 8];
        let mut n = 0;
        assert_eq!(ck!(C_FindObjects(h, buf.as_mut_ptr(), 8, &mut n)), CKR_OK);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    assert_eq!(ck!(C_FindObjectsFinal(h)), CKR_OK);
    out
}

fn attr(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> Result<Vec<u8>, CK_RV> {
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
    assert_eq!(ck!(C_GetAttributeValue(h, o, &mut a, 1)), CKR_OK);
    v.truncate(a.ulValueLen as usize);
    Ok(v)
}

fn size(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> Result<CK_ULONG, CK_RV> {
    let mut n = 0;
    match ck!(C_GetObjectSize(h, o, &mut n)) {
        CKR_OK => Ok(n),
        rv => Err(rv),
    }
}

/// An ECDSA-SHA256 signature by `key` over `data`, checked against the P-256
/// public key object `public`.
fn sign_and_verify(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE, public: CK_OBJECT_HANDLE) {
    let mut m = CK_MECHANISM {
        mechanism: CKM_ECDSA_SHA256,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    assert_eq!(ck!(C_SignInit(h, &mut m, key)), CKR_OK);
    let data = b"signed after a CKA_ID change";
    let mut sig = [0u8; 64];
    let mut n = 64;
    assert_eq!(
        ck!(C_Sign(
            h,
            data.as_ptr() as *mut u8,
            data.len() as CK_ULONG,
            sig.as_mut_ptr(),
            &mut n
        )),
        CKR_OK
    );
    let point = attr(h, public, CKA_EC_POINT).unwrap();
    use p256::ecdsa::signature::Verifier;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point[2..]).unwrap();
    vk.verify(data, &p256::ecdsa::Signature::from_slice(&sig).unwrap())
        .expect("the key still signs");
}

#[test]
fn objects_through_the_c_abi_and_bad_input() {
    let b = Bench::new();
    b.tk(&[
        "token",
        "add",
        "--label",
        "t",
        "--userpin",
        "1234",
        "--sopin",
        "5678",
    ]);
    let imported = b.key_with_cert("t", "web");
    let other = {
        let csr_key = b.dir.path().join("other.key");
        let pem = b.dir.path().join("other.pem");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &csr_key.to_string_lossy(),
                "-out",
                &pem.to_string_lossy(),
                "-subj",
                "/CN=other",
                "-days",
                "2",
            ],
            "openssl",
        );
        der(&pem)
    };
    std::env::set_var("TPMKEY_TCTI", b.proxy.tcti());
    std::env::set_var("TPMKEY_STORE", b.store());
    std::env::set_var("TPMKEY_PKCS11_QUIET", "1");
    std::env::remove_var("TPM2TOOLS_TCTI");
    assert_eq!(ck!(C_Initialize(null_mut())), CKR_OK);

    // Listing and reading certificates before login: no TPM command.
    let before = b.proxy.command_count();
    let ro = open(false);
    let certs = find(ro, Template::new().ulong(CKA_CLASS, CKO_CERTIFICATE));
    assert_eq!(certs.len(), 1);
    let c = certs[0];
    assert_eq!(attr(ro, c, CKA_VALUE).unwrap(), imported);
    assert_eq!(attr(ro, c, CKA_SUBJECT).unwrap(), subject_der(&imported));
    assert_eq!(attr(ro, c, CKA_LABEL).unwrap(), b"web");
    assert_eq!(attr(ro, c, CKA_TOKEN).unwrap(), [1]);
    assert_eq!(attr(ro, c, CKA_PRIVATE).unwrap(), [0]);
    assert_eq!(
        attr(ro, c, CKA_CERTIFICATE_CATEGORY).unwrap(),
        CK_CERTIFICATE_CATEGORY_TOKEN_USER.to_ne_bytes()
    );
    assert_eq!(attr(ro, c, CKA_CHECK_VALUE).unwrap().len(), 3);
    let pubs = find(ro, Template::new().ulong(CKA_CLASS, CKO_PUBLIC_KEY));
    assert_eq!(
        attr(ro, c, CKA_ID).unwrap(),
        attr(ro, pubs[0], CKA_ID).unwrap()
    );
    assert!(find(ro, Template::new().ulong(CKA_CLASS, CKO_PRIVATE_KEY)).is_empty());
    assert!(size(ro, c).unwrap() >= imported.len() as CK_ULONG);
    assert_eq!(b.proxy.command_count(), before, "listing touched the TPM");

    // A read-only session makes session objects, never token objects.
    let files = b.object_files("t");
    let s1 = create(ro, cert_template(&other)).expect("a session certificate");
    assert_eq!(attr(ro, s1, CKA_TOKEN).unwrap(), [0]);
    assert_eq!(
        create(ro, cert_template(&other).bool(CKA_TOKEN, true)),
        Err(CKR_SESSION_READ_ONLY)
    );
    let rw = open(true);
    // Bad input: each refused with its return value, nothing written.
    let big = vec![0x5a; 10 << 20];
    assert_eq!(
        create(rw, data_template("big", &big).bool(CKA_TOKEN, true)),
        Err(CKR_ATTRIBUTE_VALUE_INVALID),
        "a 10 MB data object"
    );
    assert_eq!(
        create(
            rw,
            cert_template(&other)
                .bytes(CKA_VALUE, &big)
                .bool(CKA_TOKEN, true)
        ),
        Err(CKR_TEMPLATE_INCONSISTENT),
        "CKA_VALUE given twice, differently"
    );
    let mut huge_cert = Template::new()
        .ulong(CKA_CLASS, CKO_CERTIFICATE)
        .ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
        .bytes(CKA_VALUE, &big)
        .bool(CKA_TOKEN, true);
    let mut a = huge_cert.attrs();
    let mut o = 0;
    assert_eq!(
        ck!(C_CreateObject(
            rw,
            a.as_mut_ptr(),
            a.len() as CK_ULONG,
            &mut o
        )),
        CKR_ATTRIBUTE_VALUE_INVALID,
        "a 10 MB certificate"
    );
    assert_eq!(
        create(
            rw,
            cert_template(&other)
                .bytes(CKA_SUBJECT, &subject_der(&imported))
                .bool(CKA_TOKEN, true)
        ),
        Err(CKR_TEMPLATE_INCONSISTENT),
        "two different CKA_SUBJECTs"
    );
    let mut wrong_subject = Template::new()
        .ulong(CKA_CLASS, CKO_CERTIFICATE)
        .ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
        .bytes(CKA_VALUE, &other)
        .bytes(CKA_SUBJECT, &subject_der(&imported))
        .bool(CKA_TOKEN, true);
    let mut a = wrong_subject.attrs();
    assert_eq!(
        ck!(C_CreateObject(
            rw,
            a.as_mut_ptr(),
            a.len() as CK_ULONG,
            &mut o
        )),
        CKR_TEMPLATE_INCONSISTENT,
        "a CKA_SUBJECT the certificate contradicts"
    );
    assert_eq!(
        create(
            rw,
            Template::new()
                .ulong(CKA_CLASS, CKO_CERTIFICATE)
                .ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
                .bytes(CKA_VALUE, &imported[..imported.len() - 10])
                .bool(CKA_TOKEN, true)
        ),
        Err(CKR_ATTRIBUTE_VALUE_INVALID),
        "a truncated certificate"
    );
    assert_eq!(
        create(
            rw,
            data_template("p", b"x")
                .bool(CKA_PRIVATE, true)
                .bool(CKA_TOKEN, true)
        ),
        Err(CKR_USER_NOT_LOGGED_IN),
        "a private object before login"
    );
    assert_eq!(
        create(
            rw,
            Template::new()
                .ulong(CKA_CLASS, CKO_PRIVATE_KEY)
                .ulong(CKA_KEY_TYPE, CKK_EC)
                .bytes(CKA_VALUE, &[1; 32])
                .bool(CKA_TOKEN, true)
        ),
        Err(CKR_ATTRIBUTE_VALUE_INVALID),
        "a private key from plaintext"
    );
    assert_eq!(
        create(rw, Template::new().bytes(CKA_LABEL, b"no class")),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    assert_eq!(
        create(rw, data_template("x", b"x").ulong(CKA_KEY_TYPE, CKK_EC)),
        Err(CKR_ATTRIBUTE_TYPE_INVALID)
    );
    assert_eq!(
        b.object_files("t"),
        files,
        "refused input changed the store"
    );

    // A public token certificate and data object from a read/write public session.
    let tc = create(
        rw,
        cert_template(&other)
            .bool(CKA_TOKEN, true)
            .bytes(CKA_LABEL, b"other")
            .bytes(CKA_ID, &[1, 2, 3]),
    )
    .expect("a token certificate");
    let td = create(
        rw,
        data_template("public data", b"hello").bool(CKA_TOKEN, true),
    )
    .expect("a token data object");
    assert_eq!(b.object_files("t").len(), files.len() + 2);
    assert_eq!(attr(ro, td, CKA_VALUE).unwrap(), b"hello");
    assert_eq!(size(rw, td), Ok((5 + 11 + 11) as CK_ULONG));
    // Changes: label and id yes, the value no.
    assert_eq!(
        set(rw, tc, Template::new().bytes(CKA_LABEL, b"renamed")),
        CKR_OK
    );
    assert_eq!(
        set(ro, tc, Template::new().bytes(CKA_LABEL, b"from ro")),
        CKR_SESSION_READ_ONLY
    );
    assert_eq!(
        set(rw, tc, Template::new().bytes(CKA_VALUE, &imported)),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        set(rw, tc, Template::new().bool(CKA_PRIVATE, true)),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        set(rw, td, Template::new().bytes(CKA_VALUE, b"changed")),
        CKR_OK
    );
    let stored: Vec<String> = b
        .object_files("t")
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        stored.iter().any(|f| f.contains("\"label\": \"renamed\"")),
        "{stored:?}"
    );
    // Copies: a token certificate into a session object, and back as a token one.
    let sc = copy(
        rw,
        tc,
        Template::new()
            .bool(CKA_TOKEN, false)
            .bytes(CKA_LABEL, b"copy"),
    )
    .expect("copy");
    assert_eq!(attr(rw, sc, CKA_TOKEN).unwrap(), [0]);
    assert_eq!(attr(rw, sc, CKA_VALUE).unwrap(), other);
    assert_eq!(
        copy(
            rw,
            sc,
            Template::new()
                .bool(CKA_TOKEN, true)
                .bool(CKA_MODIFIABLE, false)
        )
        .map(|_| ()),
        Ok(())
    );
    assert_eq!(
        copy(
            rw,
            s1,
            Template::new()
                .bool(CKA_COPYABLE, true)
                .bool(CKA_MODIFIABLE, false)
        )
        .and_then(|x| copy(rw, x, Template::new().bool(CKA_MODIFIABLE, true)))
        .map(|_| ()),
        Err(CKR_ATTRIBUTE_READ_ONLY),
        "CKA_MODIFIABLE only goes from true to false"
    );
    assert_eq!(
        copy(rw, pubs[0], Template::new()),
        Err(CKR_ACTION_PROHIBITED),
        "keys are not copyable"
    );

    // After login: a private token data object, encrypted in the store.
    login(rw);
    let secret = b"a private value that must not be on disk in clear";
    let pd = create(
        rw,
        data_template("private data", secret)
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, true),
    )
    .expect("a private data object");
    assert_eq!(attr(rw, pd, CKA_VALUE).unwrap(), secret);
    let hex: String = secret.iter().map(|x| format!("{x:02x}")).collect();
    for (p, v) in b.object_files("t") {
        let text = String::from_utf8_lossy(&v);
        assert!(
            !text.contains(&hex) && !text.contains("must not be on disk"),
            "{} holds the private value in clear",
            p.display()
        );
    }
    // A key's label and CKA_ID change (both halves, the key record); it still
    // signs (its authValue stays bound to the id it was made with).
    let privs = find(rw, Template::new().ulong(CKA_CLASS, CKO_PRIVATE_KEY));
    assert_eq!(privs.len(), 1);
    assert_eq!(
        set(
            rw,
            privs[0],
            Template::new()
                .bytes(CKA_LABEL, b"web2")
                .bytes(CKA_ID, &[0xab; 20])
        ),
        CKR_OK
    );
    assert_eq!(attr(rw, pubs[0], CKA_LABEL).unwrap(), b"web2");
    assert_eq!(
        find(rw, Template::new().bytes(CKA_ID, &[0xab; 20])).len(),
        2,
        "both halves under the new id"
    );
    assert_eq!(
        set(rw, privs[0], Template::new().bool(CKA_SIGN, false)),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert!(size(rw, privs[0]).unwrap() > 0);
    sign_and_verify(rw, privs[0], pubs[0]);
    let listed = b.tk(&["key", "list", "--token", "t", "--json"]);
    assert!(
        listed.contains("\"web2\"") && listed.contains(&"ab".repeat(20)),
        "the key list shows the new label and CKA_ID: {listed}"
    );

    // Session objects end with their session.
    assert_eq!(ck!(C_CloseSession(ro)), CKR_OK);
    assert_eq!(attr(rw, s1, CKA_LABEL), Err(CKR_OBJECT_HANDLE_INVALID));
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_OK);

    // Another process's view: the private object only after login, decrypted.
    assert_eq!(ck!(C_Initialize(null_mut())), CKR_OK);
    let h = open(true);
    let data = find(h, Template::new().ulong(CKA_CLASS, CKO_DATA));
    assert_eq!(data.len(), 1, "only the public data object before login");
    assert_eq!(attr(h, data[0], CKA_VALUE).unwrap(), b"changed");
    login(h);
    let private = find(
        h,
        Template::new()
            .ulong(CKA_CLASS, CKO_DATA)
            .bool(CKA_PRIVATE, true),
    );
    assert_eq!(private.len(), 1);
    assert_eq!(attr(h, private[0], CKA_VALUE).unwrap(), secret);
    assert_eq!(
        attr(h, private[0], CKA_APPLICATION).unwrap(),
        b"tpmkey test"
    );
    let certs = find(h, Template::new().ulong(CKA_CLASS, CKO_CERTIFICATE));
    assert_eq!(
        certs.len(),
        3,
        "web, renamed, and the copy made a token object"
    );
    // Destroy: the file goes.
    let n = b.object_files("t").len();
    assert_eq!(ck!(C_DestroyObject(h, private[0])), CKR_OK);
    assert_eq!(b.object_files("t").len(), n - 1);
    assert_eq!(ck!(C_Logout(h)), CKR_OK);
    assert_eq!(
        attr(h, private[0], CKA_VALUE),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
    assert_eq!(ck!(C_Finalize(null_mut())), CKR_OK);
}

#[test]
fn other_programs_put_certificates_on_the_token_and_listings_send_no_tpm_command() {
    let b = Bench::new();
    b.tk(&[
        "token",
        "add",
        "--label",
        "t",
        "--userpin",
        "1234",
        "--sopin",
        "5678",
    ]);
    b.key_with_cert("t", "web");
    let m = module_path();
    let m = m.to_string_lossy();
    // Three certificates from three programs.
    let mut made = Vec::new();
    for name in ["by-pkcs11-tool", "by-p11tool", "by-certutil"] {
        let csr = b.dir.path().join(format!("{name}.csr"));
        let key = b.dir.path().join(format!("{name}.key"));
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key.to_string_lossy(),
                "-out",
                &csr.to_string_lossy(),
                "-subj",
                &format!("/CN={name}"),
            ],
            "openssl",
        );
        let pem = b.dir.path().join(format!("{name}.pem"));
        b.ca.issue(&csr, &pem);
        made.push((name, pem.clone(), der(&pem)));
    }
    let der_file = made[0].1.with_extension("der");
    b.tool(
        "pkcs11-tool",
        &[
            "--module",
            &m,
            "--token-label",
            "t",
            "--write-object",
            &der_file.to_string_lossy(),
            "--type",
            "cert",
            "--id",
            "0a0b",
            "--label",
            "by-pkcs11-tool",
        ],
    );
    b.tool(
        "p11tool",
        &[
            "--provider",
            &m,
            "--login",
            "--set-pin",
            "1234",
            "--write",
            "--load-certificate",
            &made[1].1.to_string_lossy(),
            "--label",
            "by-p11tool",
            "pkcs11:token=t",
        ],
    );
    let db = nss_db(&b.dir.path().join("nssdb"), &module_path(), &b.ca);
    let pinfile = b.dir.path().join("pin");
    std::fs::write(&pinfile, "1234\n").unwrap();
    b.tool(
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-h",
            "t",
            "-n",
            "by-certutil",
            "-t",
            ",,",
            "-i",
            &made[2].1.to_string_lossy(),
            "-f",
            &pinfile.to_string_lossy(),
        ],
    );
    let listed = b.tk(&["cert", "list", "--token", "t"]);
    for (name, _, der) in &made {
        assert!(listed.contains(name), "{name} missing from:\n{listed}");
        // Each reads back through the module as the same DER.
        let out = b.dir.path().join(format!("{name}.read"));
        b.tool(
            "pkcs11-tool",
            &[
                "--module",
                &m,
                "--token-label",
                "t",
                "--read-object",
                "--type",
                "cert",
                "--label",
                name,
                "-o",
                &out.to_string_lossy(),
            ],
        );
        assert_eq!(&std::fs::read(&out).unwrap(), der, "{name}");
    }
    // NSS sees the certificates on the token, the one with a key as a user's.
    let (nss, _) = b.tool(
        "certutil",
        &["-L", "-d", &db, "-h", "t", "-f", &pinfile.to_string_lossy()],
    );
    assert!(
        nss.contains("t:by-certutil") && nss.contains("t:web"),
        "{nss}"
    );
    assert!(
        nss.lines()
            .any(|l| l.starts_with("t:web") && l.contains("u,u,u")),
        "the key's certificate is a user certificate:\n{nss}"
    );

    // Listings with certificates present: no TPM command.
    let (keys, n) = b.tool("ssh-keygen", &["-D", &m]);
    assert!(keys.contains("web"), "{keys}");
    assert_eq!(n, 0, "ssh-keygen -D sent TPM commands");
    let (objects, n) = b.tool("pkcs11-tool", &["--module", &m, "-O"]);
    assert!(
        objects.contains("by-p11tool") && objects.contains("Certificate Object"),
        "{objects}"
    );
    assert_eq!(n, 0, "pkcs11-tool -O sent TPM commands");
    let (all, n) = b.tool(
        "p11tool",
        &["--provider", &m, "--list-all", "pkcs11:token=t"],
    );
    assert!(
        all.contains("by-certutil") && all.contains("X.509 Certificate"),
        "{all}"
    );
    assert_eq!(n, 0, "p11tool --list-all sent TPM commands");
}
