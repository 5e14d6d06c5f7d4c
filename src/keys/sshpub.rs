//! TPM public areas as SSH public keys (RFC 5656 ecdsa-sha2-nistp256/384, RFC 4253
//! / RFC 8332 ssh-rsa) and the raw forms PKCS#11 needs (EC point, modulus,
//! exponent).

use ssh_key::public::{EcdsaPublicKey, KeyData, RsaPublicKey};
use ssh_key::{Mpint, PublicKey};
use tpm_commands::constants::TpmEccCurve;
use tpm_commands::structures::{PublicParams, TpmtPublic};

use crate::error::{Error, Result};

/// The uncompressed SEC1 point (0x04 || x || y) of an ECC key.
///
/// # Errors
/// Not an ECC key.
pub fn ec_point(public: &TpmtPublic) -> Result<Vec<u8>> {
    let PublicParams::Ecc { unique, .. } = &public.params else {
        return Err(Error::Usage("not an ECC key".into()));
    };
    let mut p = Vec::with_capacity(1 + unique.x.len() + unique.y.len());
    p.push(4);
    p.extend_from_slice(unique.x.as_bytes());
    p.extend_from_slice(unique.y.as_bytes());
    Ok(p)
}

/// (modulus, public exponent) of an RSA key, big-endian.
///
/// # Errors
/// Not an RSA key.
pub fn rsa_parts(public: &TpmtPublic) -> Result<(Vec<u8>, Vec<u8>)> {
    let PublicParams::Rsa { parms, unique } = &public.params else {
        return Err(Error::Usage("not an RSA key".into()));
    };
    let e = if parms.exponent == 0 {
        65537
    } else {
        parms.exponent
    };
    let e: Vec<u8> = e
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    Ok((unique.as_bytes().to_vec(), e))
}

/// The SSH public key of a TPM key, with `comment`.
///
/// # Errors
/// A key type or curve SSH has no name for.
pub fn ssh_public_key(public: &TpmtPublic, comment: &str) -> Result<PublicKey> {
    let bad = |e: ssh_key::Error| Error::Crypto(e.to_string());
    let data = match &public.params {
        PublicParams::Ecc { parms, .. } => {
            let point = ec_point(public)?;
            match parms.curve_id {
                TpmEccCurve::NIST_P256 | TpmEccCurve::NIST_P384 => {
                    KeyData::Ecdsa(EcdsaPublicKey::from_sec1_bytes(&point).map_err(bad)?)
                }
                c => return Err(Error::Usage(format!("SSH has no key type for curve {c}"))),
            }
        }
        PublicParams::Rsa { .. } => {
            let (n, e) = rsa_parts(public)?;
            KeyData::Rsa(RsaPublicKey {
                e: Mpint::from_positive_bytes(&e).map_err(bad)?,
                n: Mpint::from_positive_bytes(&n).map_err(bad)?,
            })
        }
        other => {
            return Err(Error::Usage(format!(
                "a {} object is not an SSH key",
                other.alg()
            )))
        }
    };
    Ok(PublicKey::new(data, comment))
}

/// An authorized_keys line.
///
/// # Errors
/// As [`ssh_public_key`].
pub fn authorized_keys_line(public: &TpmtPublic, comment: &str) -> Result<String> {
    ssh_public_key(public, comment)?
        .to_openssh()
        .map_err(|e| Error::Crypto(e.to_string()))
}
