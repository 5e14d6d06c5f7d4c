//! Reading existing private keys for import: OpenSSH private keys (also
//! passphrase-protected) and PEM PKCS#8, SEC1 and PKCS#1. Only what the TPM can
//! hold is accepted: ECDSA P-256/P-384 and RSA 2048/3072/4096.

use rsa::traits::{PrivateKeyParts, PublicKeyParts};
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
    if e.len() > 4 {
        return Err(Error::Usage(
            "RSA public exponent too large for a TPM".into(),
        ));
    }
    Ok(e.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)))
}

fn from_rsa(key: &rsa::RsaPrivateKey) -> Result<PrivateKey> {
    let p = key
        .primes()
        .first()
        .ok_or_else(|| Error::Usage("RSA key without primes".into()))?;
    if key.primes().len() != 2 {
        return Err(Error::Usage(
            "multi-prime RSA keys cannot go into a TPM".into(),
        ));
    }
    Ok(PrivateKey::Rsa {
        alg: rsa_alg(key.size() * 8)?,
        n: key.n().to_bytes_be(),
        e: exponent(&key.e().to_bytes_be())?,
        p: Zeroizing::new(p.to_bytes_be()),
    })
}

fn ecc(alg: KeyAlgorithm, d: &[u8], point: &[u8]) -> Result<PrivateKey> {
    let n = if alg == KeyAlgorithm::Ecc256 { 32 } else { 48 };
    if point.len() != 1 + 2 * n || point.first() != Some(&4) || d.len() != n {
        return Err(Error::Usage("malformed ECDSA key".into()));
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
        let mut key = ssh_key::PrivateKey::from_openssh(s)
            .map_err(|e| Error::Usage(format!("cannot read the OpenSSH key: {e}")))?;
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
                let n = kp.public.n.as_positive_bytes().ok_or_else(bad)?;
                let e = kp.public.e.as_positive_bytes().ok_or_else(bad)?;
                let p = kp.private.p.as_positive_bytes().ok_or_else(bad)?;
                Ok(PrivateKey::Rsa { alg: rsa_alg(n.len() * 8)?, n: n.to_vec(), e: exponent(e)?, p: Zeroizing::new(p.to_vec()) })
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
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let k = rsa::RsaPrivateKey::from_pkcs1_pem(s)
            .map_err(|e| Error::Usage(format!("bad PKCS#1 key: {e}")))?;
        return from_rsa(&k);
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
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(s) {
            return from_rsa(&k);
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
