//! CKM_ECDH1_DERIVE (PKCS#11 2.40 Current Mechanisms §2.3.16, CK_ECDH1_DERIVE_PARAMS
//! §2.3.9): the peer's public point checked on the host, the shared secret Z
//! from the TPM (Part 3 §14.5 TPM2_ECDH_ZGen), and the key derivation function
//! applied here: CKD_NULL (Z itself) or the ANSI X9.63 KDF with SHA-1/256/384/512
//! (CKD_SHA*_KDF).

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::state::Rv;
use crate::crypto::hash::HashAlg;
use crate::crypto::kdf::x963_kdf;
use crate::keys::templates::KeyAlgorithm;

/// CK_ECDH1_DERIVE_PARAMS as the caller gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdhParams {
    /// CKD_NULL, CKD_SHA256_KDF, …
    pub kdf: CK_EC_KDF_TYPE,
    /// pSharedData.
    pub shared: Vec<u8>,
    /// pPublicData: the peer's point, raw (SEC 1 §2.3.3) or as a DER OCTET STRING.
    pub public: Vec<u8>,
}

/// A checked derivation: the peer's point and what to do with Z.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdhPlan {
    /// The peer point's x, fixed width.
    pub x: Vec<u8>,
    /// The peer point's y, fixed width.
    pub y: Vec<u8>,
    /// The KDF hash, None for CKD_NULL.
    kdf: Option<HashAlg>,
    shared: Vec<u8>,
    field_len: usize,
}

/// The longest key a KDF derives here (X9.63 allows more; nothing needs it).
const MAX_KDF_LEN: usize = 1024;

/// The content of a DER OCTET STRING, if `p` is one.
fn octet_string_content(p: &[u8]) -> Option<&[u8]> {
    match p {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && *len < 0x80 => Some(rest),
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() && *len >= 0x80 => {
            Some(rest)
        }
        _ => None,
    }
}

/// The uncompressed encoding of a point on `C` given raw (SEC 1 §2.3.3) or as a
/// DER OCTET STRING around that (PKCS#11 allows both; the raw reading is tried
/// first, since a raw point also starts with 0x04).
fn uncompressed<C>(p: &[u8]) -> Option<Vec<u8>>
where
    C: p256::elliptic_curve::CurveArithmetic,
    C::AffinePoint: p256::elliptic_curve::sec1::FromEncodedPoint<C>
        + p256::elliptic_curve::sec1::ToEncodedPoint<C>,
    p256::elliptic_curve::FieldBytesSize<C>: p256::elliptic_curve::sec1::ModulusSize,
{
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let parse = |b: &[u8]| p256::elliptic_curve::PublicKey::<C>::from_sec1_bytes(b).ok();
    let key = parse(p).or_else(|| octet_string_content(p).and_then(parse))?;
    Some(key.to_encoded_point(false).as_bytes().to_vec())
}

/// Checks the parameters against the base key's curve.
///
/// # Errors
/// CKR_MECHANISM_PARAM_INVALID: no parameters, an unknown KDF, shared data with
/// CKD_NULL, or a public point that is not on the key's curve.
pub fn plan(params: Option<EcdhParams>, alg: KeyAlgorithm) -> Result<EcdhPlan, Rv> {
    let p = params.ok_or(CKR_MECHANISM_PARAM_INVALID)?;
    let kdf = match p.kdf {
        CKD_NULL if p.shared.is_empty() => None,
        CKD_SHA1_KDF => Some(HashAlg::Sha1),
        CKD_SHA256_KDF => Some(HashAlg::Sha256),
        CKD_SHA384_KDF => Some(HashAlg::Sha384),
        CKD_SHA512_KDF => Some(HashAlg::Sha512),
        _ => return Err(CKR_MECHANISM_PARAM_INVALID),
    };
    let (point, field_len) = match alg {
        KeyAlgorithm::Ecc256 => (uncompressed::<p256::NistP256>(&p.public), 32),
        KeyAlgorithm::Ecc384 => (uncompressed::<p384::NistP384>(&p.public), 48),
        _ => return Err(CKR_KEY_TYPE_INCONSISTENT),
    };
    let point = point.ok_or(CKR_MECHANISM_PARAM_INVALID)?;
    // Uncompressed: 0x04 || x || y.
    let coords = point.get(1..).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
    if coords.len() != 2 * field_len {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    let (x, y) = coords.split_at(field_len);
    Ok(EcdhPlan {
        x: x.to_vec(),
        y: y.to_vec(),
        kdf,
        shared: p.shared,
        field_len,
    })
}

impl EcdhPlan {
    /// The key length when the template does not give CKA_VALUE_LEN: Z's for
    /// CKD_NULL, the hash's for a KDF.
    pub fn default_len(&self) -> usize {
        self.kdf.map_or(self.field_len, HashAlg::digest_size)
    }

    /// Checks a requested key length.
    ///
    /// # Errors
    /// CKR_TEMPLATE_INCONSISTENT for a key longer than Z (CKD_NULL) or than
    /// this module derives with a KDF.
    pub fn check_len(&self, len: usize) -> Result<(), Rv> {
        let max = if self.kdf.is_some() {
            MAX_KDF_LEN
        } else {
            self.field_len
        };
        if len > max {
            return Err(CKR_TEMPLATE_INCONSISTENT);
        }
        Ok(())
    }

    /// The key of `len` bytes from Z: the X9.63 KDF over Z and the shared data,
    /// or Z itself, cut to its last `len` bytes as NSS and SoftHSM do.
    pub fn derive(&self, z: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        match self.kdf {
            Some(h) => x963_kdf(h, z, &self.shared, len),
            None => Zeroizing::new(z[z.len().saturating_sub(len)..].to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    fn peer() -> Vec<u8> {
        let k = p256::SecretKey::random(&mut rand_core::OsRng);
        k.public_key().to_encoded_point(false).as_bytes().to_vec()
    }

    fn params(kdf: CK_EC_KDF_TYPE, public: Vec<u8>) -> Option<EcdhParams> {
        Some(EcdhParams {
            kdf,
            shared: vec![],
            public,
        })
    }

    #[test]
    fn raw_and_der_points_are_accepted_and_checked() {
        let p = peer();
        let raw = plan(params(CKD_NULL, p.clone()), KeyAlgorithm::Ecc256).unwrap();
        let mut der = vec![0x04, 65];
        der.extend_from_slice(&p);
        let wrapped = plan(params(CKD_NULL, der), KeyAlgorithm::Ecc256).unwrap();
        assert_eq!(raw, wrapped);
        assert_eq!(&raw.x[..], &p[1..33]);
        let mut off = p.clone();
        off[40] ^= 1;
        assert_eq!(
            plan(params(CKD_NULL, off), KeyAlgorithm::Ecc256),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            plan(params(CKD_NULL, p.clone()), KeyAlgorithm::Ecc384),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            plan(params(CKD_SHA224_KDF, p.clone()), KeyAlgorithm::Ecc256),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        let mut shared = params(CKD_NULL, p);
        if let Some(s) = shared.as_mut() {
            s.shared = vec![1];
        }
        assert_eq!(
            plan(shared, KeyAlgorithm::Ecc256),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            plan(None, KeyAlgorithm::Ecc256),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
    }

    #[test]
    fn lengths_and_kdfs() {
        let null = plan(params(CKD_NULL, peer()), KeyAlgorithm::Ecc256).unwrap();
        let z: Vec<u8> = (0..32).collect();
        assert_eq!(null.default_len(), 32);
        assert_eq!(&null.derive(&z, 16)[..], &z[16..]);
        assert_eq!(null.check_len(33), Err(CKR_TEMPLATE_INCONSISTENT));
        let kdf = plan(params(CKD_SHA384_KDF, peer()), KeyAlgorithm::Ecc256).unwrap();
        assert_eq!(kdf.default_len(), 48);
        assert!(kdf.check_len(100).is_ok());
        assert_eq!(
            kdf.derive(&z, 20)[..],
            x963_kdf(HashAlg::Sha384, &z, &[], 20)[..]
        );
    }
}
