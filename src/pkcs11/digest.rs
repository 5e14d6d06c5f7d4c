//! Message digests in software (PKCS#11 2.40 Base §5.10; Current Mechanisms
//! §2.19-2.21 CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512): no TPM round trip,
//! no key, no login.

use cryptoki_sys::*;
use sha2::Digest as _;

use super::state::Rv;
use crate::crypto::hash::HashAlg;

/// The hash of a digest mechanism.
pub fn hash_of(mech: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match mech {
        CKM_SHA_1 => HashAlg::Sha1,
        CKM_SHA256 => HashAlg::Sha256,
        CKM_SHA384 => HashAlg::Sha384,
        CKM_SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

/// A digest in progress.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for a digest mechanism (with no parameters).
    ///
    /// # Errors
    /// CKR_MECHANISM_INVALID for other mechanisms, CKR_MECHANISM_PARAM_INVALID
    /// when parameters are given.
    pub fn new(mech: CK_MECHANISM_TYPE, has_params: bool) -> Result<Hasher, Rv> {
        let h = hash_of(mech).ok_or(CKR_MECHANISM_INVALID)?;
        if has_params {
            return Err(CKR_MECHANISM_PARAM_INVALID);
        }
        Ok(match h {
            HashAlg::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlg::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlg::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        })
    }

    /// The digest length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Hasher::Sha1(_) => 20,
            Hasher::Sha256(_) => 32,
            Hasher::Sha384(_) => 48,
            Hasher::Sha512(_) => 64,
        }
    }

    /// Never empty: a digest has a length.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Adds data.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_parts_match_one_shot() {
        for m in [CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512] {
            let mut h = Hasher::new(m, false).unwrap();
            h.update(b"0123456789");
            h.update(b"abc");
            let len = h.len();
            let d = h.finish();
            assert_eq!(d.len(), len);
            assert_eq!(d, hash_of(m).unwrap().hash(&[b"0123456789abc"]));
        }
        assert!(matches!(
            Hasher::new(CKM_MD5, false),
            Err(CKR_MECHANISM_INVALID)
        ));
        assert!(matches!(
            Hasher::new(CKM_SHA256, true),
            Err(CKR_MECHANISM_PARAM_INVALID)
        ));
    }
}
