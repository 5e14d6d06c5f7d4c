//! Reading existing private keys for import: OpenSSH private keys (also
//! passphrase-protected) and PEM PKCS#8, SEC1 and PKCS#1. Only what the TPM can
//! hold is accepted: ECDSA P-256/P-384 and RSA 2048/3072/4096.

use ssh_key::private::KeypairData;
use zeroize::Zeroizing;

use super::import::PrivateKey;
use super::templates::KeyAlgorithm;
use crate::error::{Error, Result};

fn rsa_alg(bits: usize) -> Result<KeyAlgorithm> {
    match bits {
        2048 => Ok(KeyAlgorithm::Rsa2048),
        3072 => Ok(KeyAlgorithm::Rsa3072),
        4096 => Ok(KeyAlgorithm::Rsa4096),
        b => Err(Error::Usage(format!(
            "an RSA-{b} key cannot go into a TPM: TPMs hold RSA 2048, 3072 or 4096"
        ))),
    }
}

fn exponent(e: &[u8]) -> Result<u32> {
    let e = strip_zeros(e);
    if e.len() > 4 {
        return Err(Error::Usage(
            "RSA public exponent too large for a TPM".into(),
        ));
    }
    Ok(e.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

/// An RSA private key's parts as a file gives them (big-endian), before any of
/// them reaches the TPM. The CRT values are absent where the format has none.
struct RsaParts<'a> {
    n: &'a [u8],
    e: &'a [u8],
    d: &'a [u8],
    p: &'a [u8],
    q: &'a [u8],
    dp: Option<&'a [u8]>,
    dq: Option<&'a [u8]>,
    qinv: &'a [u8],
}

/// Checks that an RSA key's parts belong together (RFC 8017 §3.2): p·q = n, both
/// primes half the modulus' size (what a TPM holds), e·d ≡ 1 mod p−1 and mod
/// q−1, dP = d mod p−1, dQ = d mod q−1, qInv·q ≡ 1 mod p. A key that fails would
/// import and then fail every use (TPM_RC_BINDING), or sign with another d than
/// the file's. Primality is not tested.
fn rsa_from_parts(parts: &RsaParts<'_>) -> Result<PrivateKey> {
    use rsa::BigUint;
    use zeroize::Zeroize;
    let bad = |what: &str| {
        Error::Usage(format!(
            "the RSA private key's components disagree ({what}); the file is damaged or was made by hand — it is not imported"
        ))
    };
    let int = |b: &[u8]| BigUint::from_bytes_be(b);
    let one = BigUint::from(1u8);
    let n = int(parts.n);
    let e = int(parts.e);
    let mut d = int(parts.d);
    let mut p = int(parts.p);
    let mut q = int(parts.q);
    let result = (|| {
        let alg = rsa_alg(n.bits())?;
        let e_value = exponent(parts.e)?;
        if e_value < 3 || e_value % 2 == 0 {
            return Err(bad(
                "the public exponent is not an odd number of at least 3",
            ));
        }
        if p <= one || q <= one || &p * &q != n {
            return Err(bad("p·q is not the modulus"));
        }
        if p.bits() * 2 != n.bits() || q.bits() * 2 != n.bits() {
            return Err(bad("the primes are not each half the modulus' size"));
        }
        let (mut p1, mut q1) = (&p - &one, &q - &one);
        let mut de = &d * &e;
        let ok = (&de % &p1) == one && (&de % &q1) == one;
        de.zeroize();
        let mut crt_ok = ok;
        for (given, modulus) in [(parts.dp, &p1), (parts.dq, &q1)] {
            if let Some(given) = given {
                let mut want = &d % modulus;
                let mut given = int(given);
                crt_ok &= want == given;
                want.zeroize();
                given.zeroize();
            }
        }
        let mut qinv = int(parts.qinv);
        let mut check = (&qinv * &q) % &p;
        crt_ok &= check == one;
        check.zeroize();
        qinv.zeroize();
        p1.zeroize();
        q1.zeroize();
        if !ok {
            return Err(bad("e·d is not 1 modulo p−1 and q−1"));
        }
        if !crt_ok {
            return Err(bad("the CRT values dP, dQ or qInv do not match p, q and d"));
        }
        Ok(PrivateKey::Rsa {
            alg,
            n: strip_zeros(parts.n).to_vec(),
            e: e_value,
            p: Zeroizing::new(strip_zeros(parts.p).to_vec()),
        })
    })();
    d.zeroize();
    p.zeroize();
    q.zeroize();
    result
}

/// The RSA key in a PKCS#1 RSAPrivateKey (DER), checked as [`rsa_from_parts`].
fn rsa_from_pkcs1_der(der: &[u8]) -> Result<PrivateKey> {
    use rsa::pkcs1::der::Decode;
    let k = rsa::pkcs1::RsaPrivateKey::from_der(der)
        .map_err(|e| Error::Usage(format!("bad PKCS#1 RSA key: {e}")))?;
    if k.other_prime_infos.is_some() {
        return Err(Error::Usage(
            "multi-prime RSA keys cannot go into a TPM".into(),
        ));
    }
    rsa_from_parts(&RsaParts {
        n: k.modulus.as_bytes(),
        e: k.public_exponent.as_bytes(),
        d: k.private_exponent.as_bytes(),
        p: k.prime1.as_bytes(),
        q: k.prime2.as_bytes(),
        dp: Some(k.exponent1.as_bytes()),
        dq: Some(k.exponent2.as_bytes()),
        qinv: k.coefficient.as_bytes(),
    })
}

/// The DER inside a PEM file with the given label.
fn pem_der(s: &str, label: &str) -> Result<Zeroizing<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let from = s.find(&begin).unwrap_or(0);
    let to = s[from..]
        .find(&end)
        .map_or(s.len(), |i| from + i + end.len());
    let (found, der) = rsa::pkcs1::der::pem::decode_vec(&s.as_bytes()[from..to])
        .map_err(|e| Error::Usage(format!("bad PEM: {e}")))?;
    let der = Zeroizing::new(der);
    if found != label {
        return Err(Error::Usage(format!(
            "bad PEM: expected {label}, found {found}"
        )));
    }
    Ok(der)
}

/// The RSA key in a PKCS#8 PrivateKeyInfo, if it holds one (rsaEncryption).
fn rsa_from_pkcs8_der(der: &[u8]) -> Option<Result<PrivateKey>> {
    use rsa::pkcs8::der::Decode;
    const RSA_ENCRYPTION: rsa::pkcs8::ObjectIdentifier =
        rsa::pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let info = rsa::pkcs8::PrivateKeyInfo::from_der(der).ok()?;
    (info.algorithm.oid == RSA_ENCRYPTION).then(|| rsa_from_pkcs1_der(info.private_key))
}

/// An OpenSSH private key file's text with its base64 re-wrapped at the 70
/// columns the OpenSSH parser insists on: other writers wrap at 64 or 76
/// (Python's `cryptography`), which `ssh-keygen` reads too.
fn rewrap_openssh(s: &str) -> Result<Zeroizing<String>> {
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const END: &str = "-----END OPENSSH PRIVATE KEY-----";
    let malformed = || Error::Usage("cannot read the OpenSSH key: no END line".into());
    let start = s.find(BEGIN).ok_or_else(malformed)? + BEGIN.len();
    let stop = start + s[start..].find(END).ok_or_else(malformed)?;
    let body: Zeroizing<String> = Zeroizing::new(
        s[start..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    let mut out = Zeroizing::new(String::with_capacity(body.len() + body.len() / 70 + 80));
    out.push_str(BEGIN);
    out.push('\n');
    for line in body.as_bytes().chunks(70) {
        out.push_str(std::str::from_utf8(line).map_err(|_| malformed())?);
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    Ok(out)
}

/// The most bcrypt rounds a passphrase-protected OpenSSH key may ask for. ssh-keygen
/// writes 16 (its `-a` default); hardening guides suggest up to a few hundred. Each
/// round costs about 8 ms of CPU, so 1024 rounds take seconds, and a file asking for
/// 2^32 rounds (days of work) is refused before any.
pub const MAX_BCRYPT_ROUNDS: u32 = 1024;

fn ecc(alg: KeyAlgorithm, d: &[u8], point: &[u8]) -> Result<PrivateKey> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let n = if alg == KeyAlgorithm::Ecc256 { 32 } else { 48 };
    if point.len() != 1 + 2 * n || point.first() != Some(&4) || d.len() != n {
        return Err(Error::Usage("malformed ECDSA key".into()));
    }
    // The public point must be d·G: a file whose halves disagree is refused here,
    // not by the TPM later.
    let derived = if alg == KeyAlgorithm::Ecc256 {
        p256::SecretKey::from_slice(d)
            .map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec())
    } else {
        p384::SecretKey::from_slice(d)
            .map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec())
    }
    .map_err(|_| Error::Usage("malformed ECDSA key: the private scalar is out of range".into()))?;
    if derived != point {
        return Err(Error::Usage(
            "the ECDSA key's public point is not the one its private scalar gives; the file is damaged — it is not imported".into(),
        ));
    }
    Ok(PrivateKey::Ecc {
        alg,
        d: Zeroizing::new(d.to_vec()),
        x: point[1..1 + n].to_vec(),
        y: point[1 + n..].to_vec(),
    })
}

/// Reads a private key file. `passphrase` is called only for an encrypted
/// OpenSSH key.
///
/// # Errors
/// Unknown formats, wrong passphrases, and keys a TPM cannot hold (Ed25519, DSA,
/// other curves or sizes), each with a message that says why.
pub fn parse_private_key(
    text: &[u8],
    passphrase: impl FnOnce() -> Result<Zeroizing<Vec<u8>>>,
) -> Result<PrivateKey> {
    let s = std::str::from_utf8(text)
        .map_err(|_| Error::Usage("not a PEM or OpenSSH private key file".into()))?;
    if s.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let text = rewrap_openssh(s)?;
        let mut key = ssh_key::PrivateKey::from_openssh(text.as_str())
            .map_err(|e| Error::Usage(format!("cannot read the OpenSSH key: {e}")))?;
        if let ssh_key::Kdf::Bcrypt { rounds, .. } = key.kdf() {
            if *rounds > MAX_BCRYPT_ROUNDS {
                return Err(Error::Usage(format!(
                    "the OpenSSH key asks for {rounds} bcrypt rounds to derive its passphrase key; tpmkey allows at most {MAX_BCRYPT_ROUNDS} (ssh-keygen writes 16), so this file is refused without trying (re-encrypt it with `ssh-keygen -p -a 16 -f FILE`)"
                )));
            }
        }
        if key.is_encrypted() {
            let pass = passphrase()?;
            key = key
                .decrypt(&pass[..])
                .map_err(|_| Error::Usage("wrong passphrase for the OpenSSH key".into()))?;
        }
        return match key.key_data() {
            KeypairData::Ecdsa(ssh_key::private::EcdsaKeypair::NistP256 { public, private }) => ecc(KeyAlgorithm::Ecc256, private.as_slice(), public.as_bytes()),
            KeypairData::Ecdsa(ssh_key::private::EcdsaKeypair::NistP384 { public, private }) => ecc(KeyAlgorithm::Ecc384, private.as_slice(), public.as_bytes()),
            KeypairData::Rsa(kp) => {
                let bad = || Error::Usage("malformed RSA key".into());
                rsa_from_parts(&RsaParts {
                    n: kp.public.n.as_positive_bytes().ok_or_else(bad)?,
                    e: kp.public.e.as_positive_bytes().ok_or_else(bad)?,
                    d: kp.private.d.as_positive_bytes().ok_or_else(bad)?,
                    p: kp.private.p.as_positive_bytes().ok_or_else(bad)?,
                    q: kp.private.q.as_positive_bytes().ok_or_else(bad)?,
                    dp: None,
                    dq: None,
                    qinv: kp.private.iqmp.as_positive_bytes().ok_or_else(bad)?,
                })
            }
            KeypairData::Ed25519(_) => Err(Error::Usage("Ed25519 keys cannot go into a TPM: TPM 2.0 chips implement ECDSA on NIST curves and RSA, not Ed25519; keep this key in a file or make an ecdsa key with `tpmkey key add`".into())),
            other => Err(Error::Usage(format!("{} keys cannot go into a TPM; use ECDSA P-256/P-384 or RSA", other.algorithm().map(|a| a.to_string()).unwrap_or_else(|_| "these".into())))),
        };
    }
    if s.contains("-----BEGIN EC PRIVATE KEY-----") {
        if let Ok(k) = p256::SecretKey::from_sec1_pem(s) {
            return ecc(
                KeyAlgorithm::Ecc256,
                &k.to_bytes(),
                p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &k.public_key(),
                    false,
                )
                .as_bytes(),
            );
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(s) {
            return ecc(
                KeyAlgorithm::Ecc384,
                &k.to_bytes(),
                p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &k.public_key(),
                    false,
                )
                .as_bytes(),
            );
        }
        return Err(Error::Usage(
            "an EC key on a curve a TPM cannot hold (use P-256 or P-384), or a damaged SEC1 file"
                .into(),
        ));
    }
    if s.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return rsa_from_pkcs1_der(&pem_der(s, "RSA PRIVATE KEY")?);
    }
    if s.contains("-----BEGIN PRIVATE KEY-----") {
        use p256::pkcs8::DecodePrivateKey;
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(s) {
            return ecc(
                KeyAlgorithm::Ecc256,
                &k.to_bytes(),
                p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &k.public_key(),
                    false,
                )
                .as_bytes(),
            );
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_pem(s) {
            return ecc(
                KeyAlgorithm::Ecc384,
                &k.to_bytes(),
                p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &k.public_key(),
                    false,
                )
                .as_bytes(),
            );
        }
        if let Some(r) = rsa_from_pkcs8_der(&pem_der(s, "PRIVATE KEY")?) {
            return r;
        }
        return Err(Error::Usage(
            "a PKCS#8 key of a type a TPM cannot hold (use ECDSA P-256/P-384 or RSA 2048-4096)"
                .into(),
        ));
    }
    if s.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(Error::Usage("encrypted PKCS#8 keys are not supported yet: decrypt it first (openssl pkcs8 -in KEY -out PLAIN) or use an OpenSSH key".into()));
    }
    Err(Error::Usage(
        "not a private key tpmkey knows: expected an OpenSSH private key or PEM PKCS#8/SEC1/PKCS#1"
            .into(),
    ))
}
