//! A throwaway certificate authority made with `openssl` (P-256 key, "tpmkey test
//! CA"), certificates it issues from CSRs, a server certificate for 127.0.0.1,
//! and NSS databases with the tpmkey module added by `modutil` and the CA trusted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs a program to completion; panics with its output when it fails.
pub fn run(program: &str, args: &[&str], package: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install {package})"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(args: &[&str]) -> String {
    run("openssl", args, "openssl")
}

/// A CA in a directory: `ca.pem`, `ca.key`.
pub struct Ca {
    dir: PathBuf,
}

impl Ca {
    /// The CN of every test CA.
    pub const CN: &'static str = "tpmkey test CA";

    /// A new CA in `dir` (which must exist).
    pub fn new(dir: &Path) -> Ca {
        let ca = Ca {
            dir: dir.to_path_buf(),
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &ca.path("ca.key"),
            "-out",
            &ca.path("ca.pem"),
            "-subj",
            &format!("/CN={}", Ca::CN),
            "-days",
            "2",
        ]);
        std::fs::write(
            ca.dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .expect("client.ext");
        std::fs::write(
            ca.dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .expect("server.ext");
        ca
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// The CA certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a client certificate from `csr` (PEM) into `out` with `openssl x509
    /// -req` (the CSR's subject, clientAuth).
    pub fn issue(&self, csr: &Path, out: &Path) {
        self.sign(csr, out, "client.ext");
    }

    fn sign(&self, csr: &Path, out: &Path, ext: &str) {
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr.to_string_lossy(),
            "-CA",
            &self.path("ca.pem"),
            "-CAkey",
            &self.path("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &self.path(ext),
            "-out",
            &out.to_string_lossy(),
        ]);
    }

    /// A server key and certificate for 127.0.0.1: (cert, key).
    pub fn server(&self) -> (PathBuf, PathBuf) {
        let (key, csr, cert) = (
            self.dir.join("server.key"),
            self.dir.join("server.csr"),
            self.dir.join("server.pem"),
        );
        if !cert.exists() {
            openssl(&[
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
                "/CN=127.0.0.1",
            ]);
            self.sign(&csr, &cert, "server.ext");
        }
        (cert, key)
    }
}

/// Makes an NSS database at `dir` (no password), trusts `ca` in it for TLS
/// servers, and adds the tpmkey module with `modutil -add` (as a user following
/// the tpm2-pkcs11 browser guide does).
pub fn nss_db(dir: &Path, module: &Path, ca: &Ca) -> String {
    std::fs::create_dir_all(dir).expect("nss db dir");
    let db = format!("sql:{}", dir.display());
    run(
        "certutil",
        &["-N", "-d", &db, "--empty-password"],
        "libnss3-tools",
    );
    run(
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "tpmkey-test-ca",
            "-t",
            "C,,",
            "-i",
            &ca.cert().to_string_lossy(),
        ],
        "libnss3-tools",
    );
    run(
        "modutil",
        &[
            "-dbdir",
            &db,
            "-add",
            "tpmkey",
            "-libfile",
            &module.to_string_lossy(),
            "-force",
        ],
        "libnss3-tools",
    );
    db
}
