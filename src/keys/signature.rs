//! Signatures in the forms scripts and other libraries use, and their check in
//! software: ECDSA as r || s (each left-padded to the curve's field size, as
//! PKCS#11 and JOSE lay it out), RSA as the PKCS#1 v1.5 signature (RSASSA,
//! RFC 8017 §8.2), both from TPM2_Sign (Part 3 §20.2) with the key's natural
//! scheme.

use tpm_commands::constants::{TpmAlgId, TpmEccCurve};
use tpm_commands::structures::{PublicParams, TpmtPublic, TpmtSignature};

use super::ops::{sign_with, LoadedKey};
use super::sshpub::{ec_point, rsa_parts};
use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::tpm::{Auth, Tpm};

/// The scheme tpmkey signs with for a key: ECDSA for ECC keys, RSASSA (PKCS#1
/// v1.5) for RSA keys.
///
/// # Errors
/// A key that is neither ECC nor RSA.
pub fn scheme_for(public: &TpmtPublic) -> Result<TpmAlgId> {
    match &public.params {
        PublicParams::Ecc { .. } => Ok(TpmAlgId::ECDSA),
        PublicParams::Rsa { .. } => Ok(TpmAlgId::RSASSA),
        other => Err(Error::Usage(format!(
            "a {} object cannot sign",
            other.alg()
        ))),
    }
}

fn field_len(public: &TpmtPublic) -> Result<usize> {
    match &public.params {
        PublicParams::Ecc { parms, .. } => match parms.curve_id {
            TpmEccCurve::NIST_P256 => Ok(32),
            TpmEccCurve::NIST_P384 => Ok(48),
            c => Err(Error::Crypto(format!("unsupported curve {c}"))),
        },
        PublicParams::Rsa { unique, .. } => Ok(unique.len()),
        other => Err(Error::Usage(format!(
            "a {} object cannot sign",
            other.alg()
        ))),
    }
}

/// Lays out a TPM signature of `scheme` for a key whose field (ECDSA) or modulus
/// (RSA) is `len` bytes: r || s, each left-padded to `len` (as PKCS#11 and JOSE
/// lay it out), or the signature left-padded to the modulus size.
///
/// # Errors
/// A signature of another scheme than `scheme`, or larger than the key (a broken
/// or hostile TPM), with what is wrong.
pub fn layout(
    sig: &TpmtSignature,
    scheme: TpmAlgId,
    len: usize,
) -> core::result::Result<Vec<u8>, &'static str> {
    match sig {
        TpmtSignature::Ecc {
            scheme: s,
            r,
            s: sv,
            ..
        } if *s == scheme && scheme == TpmAlgId::ECDSA => {
            let (r, s) = (r.as_bytes(), sv.as_bytes());
            if r.len() > len || s.len() > len {
                return Err("ECDSA signature larger than the curve");
            }
            let mut out = vec![0u8; 2 * len];
            out[len - r.len()..len].copy_from_slice(r);
            out[2 * len - s.len()..].copy_from_slice(s);
            Ok(out)
        }
        TpmtSignature::Rsa { scheme: s, sig, .. } if *s == scheme => {
            let b = sig.as_bytes();
            if b.len() > len {
                return Err("RSA signature larger than the modulus");
            }
            let mut out = vec![0u8; len - b.len()];
            out.extend_from_slice(b);
            Ok(out)
        }
        _ => Err("signature of another scheme than requested"),
    }
}

/// Lays out a TPM signature made with [`scheme_for`] the key: see [`layout`].
///
/// # Errors
/// As [`layout`], as [`Error::Integrity`].
pub fn encode(public: &TpmtPublic, sig: &TpmtSignature) -> Result<Vec<u8>> {
    layout(sig, scheme_for(public)?, field_len(public)?).map_err(|what| Error::Integrity {
        cc: tpm_commands::constants::TpmCc::SIGN,
        what,
    })
}

/// A `digest` of `hash`'s size, checked before any TPM command.
///
/// # Errors
/// [`Error::Usage`] naming both sizes.
pub fn check_digest(hash: HashAlg, digest: &[u8]) -> Result<()> {
    if digest.len() != hash.digest_size() {
        return Err(Error::Usage(format!(
            "a {}-byte digest for a {}-byte hash",
            digest.len(),
            hash.digest_size()
        )));
    }
    Ok(())
}

/// Signs `digest` (made with `hash`) with a loaded key (Part 3 §20.2 TPM2_Sign,
/// scheme from [`scheme_for`]) under `auth`, and returns it [`encode`]d.
///
/// # Errors
/// A digest of the wrong size; TPM errors (TPM_RC_AUTH_FAIL for a wrong
/// authValue).
pub fn sign_digest(
    tpm: &mut Tpm,
    key: &LoadedKey,
    auth: Auth<'_>,
    hash: HashAlg,
    digest: &[u8],
) -> Result<Vec<u8>> {
    check_digest(hash, digest)?;
    let scheme = scheme_for(&key.public)?;
    let sig = sign_with(tpm, key, auth, digest, scheme, TpmAlgId(hash.alg_id()))?;
    encode(&key.public, &sig)
}

/// Checks an [`encode`]d signature over `digest` against the public key in
/// software (p256/p384 ECDSA, rsa PKCS#1 v1.5).
///
/// # Errors
/// [`Error::Crypto`] when it does not verify or the key cannot be read.
pub fn verify(public: &TpmtPublic, hash: HashAlg, digest: &[u8], sig: &[u8]) -> Result<()> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let bad = |e: &dyn core::fmt::Display| Error::Crypto(format!("signature check: {e}"));
    match &public.params {
        PublicParams::Ecc { parms, .. } => {
            let point = ec_point(public)?;
            match parms.curve_id {
                TpmEccCurve::NIST_P256 => {
                    let vk =
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|e| bad(&e))?;
                    let s = p256::ecdsa::Signature::from_slice(sig).map_err(|e| bad(&e))?;
                    vk.verify_prehash(digest, &s).map_err(|e| bad(&e))
                }
                TpmEccCurve::NIST_P384 => {
                    let vk =
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|e| bad(&e))?;
                    let s = p384::ecdsa::Signature::from_slice(sig).map_err(|e| bad(&e))?;
                    vk.verify_prehash(digest, &s).map_err(|e| bad(&e))
                }
                c => Err(Error::Crypto(format!("unsupported curve {c}"))),
            }
        }
        PublicParams::Rsa { .. } => {
            let (n, e) = rsa_parts(public)?;
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|e| bad(&e))?;
            let scheme = match hash {
                HashAlg::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
            };
            key.verify(scheme, digest, sig).map_err(|e| bad(&e))
        }
        other => Err(Error::Usage(format!(
            "a {} object cannot sign",
            other.alg()
        ))),
    }
}
