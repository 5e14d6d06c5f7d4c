//! RSA encryption and decryption mechanisms (PKCS#11 2.40 Current Mechanisms
//! §2.1.7 CKM_RSA_PKCS, §2.1.8 CKM_RSA_PKCS_OAEP): parameter checks, output
//! bounds, how the TPM decrypts each (Part 3 §14.3 TPM2_RSA_Decrypt), and
//! encryption with a public key in software.
//!
//! The TPM's OAEP takes a label only when it ends in a zero byte (Part 3 §14.3:
//! TPM_RC_VALUE otherwise). For any other label — `pkcs11-tool --test` sends
//! "ABC" — the TPM performs the private-key operation without padding and the
//! OAEP decoding happens here, in constant time; the raw result never leaves
//! this module. CKM_RSA_X_509 (raw RSA) is not offered: on a key that also
//! signs, raw decryption is raw signing, a signature over anything with no
//! hash or padding checked.

use cryptoki_sys::*;

use super::digest::hash_of;
use super::mechanisms::mgf_of;
use zeroize::Zeroizing;

use super::state::Rv;
use crate::crypto::hash::HashAlg;
use crate::crypto::secret::{oaep_decode, rsa_encapsulate};
use crate::keys::decrypt::RsaPadding;
use crate::keys::sshpub::rsa_parts;
use tpm_commands::structures::TpmtPublic;

/// CK_RSA_PKCS_OAEP_PARAMS as the caller gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OaepParams {
    /// CKM_SHA_1, CKM_SHA256, …
    pub hash: CK_MECHANISM_TYPE,
    /// CKG_MGF1_SHA1, …
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    /// 0 or CKZ_DATA_SPECIFIED.
    pub source: CK_ULONG,
    /// pSourceData: the label.
    pub label: Vec<u8>,
}

/// A checked RSA encryption mechanism.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RsaCrypt {
    /// RSAES-PKCS1-v1_5.
    Pkcs1,
    /// RSAES-OAEP with one hash for the label and MGF1.
    Oaep {
        /// The hash.
        hash: HashAlg,
        /// The label.
        label: Vec<u8>,
    },
}

/// Checks an encryption/decryption mechanism and its parameters.
///
/// # Errors
/// CKR_MECHANISM_INVALID for other mechanisms; CKR_MECHANISM_PARAM_INVALID for
/// parameters on CKM_RSA_PKCS, missing OAEP parameters, a hash other than
/// SHA-1/256/384/512, an MGF1 of another hash than the label's (the TPM's OAEP
/// uses one hash for both), or another source than CKZ_DATA_SPECIFIED.
pub fn rsa_crypt(mech: CK_MECHANISM_TYPE, oaep: Option<OaepParams>) -> Result<RsaCrypt, Rv> {
    match mech {
        CKM_RSA_PKCS if oaep.is_none() => Ok(RsaCrypt::Pkcs1),
        CKM_RSA_PKCS => Err(CKR_MECHANISM_PARAM_INVALID),
        CKM_RSA_PKCS_OAEP => {
            let p = oaep.ok_or(CKR_MECHANISM_PARAM_INVALID)?;
            let hash = hash_of(p.hash).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
            let source_ok = p.source == CKZ_DATA_SPECIFIED || (p.source == 0 && p.label.is_empty());
            if p.mgf != mgf_of(hash) || !source_ok {
                return Err(CKR_MECHANISM_PARAM_INVALID);
            }
            Ok(RsaCrypt::Oaep {
                hash,
                label: p.label,
            })
        }
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

impl RsaCrypt {
    /// The longest message for a `k`-byte modulus (RFC 8017 §7.1.1, §7.2.1);
    /// None when the modulus is too small for the hash.
    pub fn max_message(&self, k: usize) -> Option<usize> {
        match self {
            RsaCrypt::Pkcs1 => k.checked_sub(11),
            RsaCrypt::Oaep { hash, .. } => k.checked_sub(2 * hash.digest_size() + 2),
        }
    }

    /// How the TPM decrypts: its padding and the label it gets. A label that
    /// does not end in a zero byte cannot go to the TPM: then no padding, and
    /// [`RsaCrypt::unpad`] decodes.
    pub fn tpm_padding(&self) -> (RsaPadding, &[u8]) {
        match self {
            RsaCrypt::Pkcs1 => (RsaPadding::Pkcs1, &[]),
            RsaCrypt::Oaep { hash, label } if label.is_empty() || label.ends_with(&[0]) => {
                (RsaPadding::Oaep(*hash), label)
            }
            RsaCrypt::Oaep { .. } => (RsaPadding::Raw, &[]),
        }
    }

    /// The message from what the TPM returned with [`RsaCrypt::tpm_padding`]:
    /// as it is, or OAEP-decoded here when the TPM returned the raw block
    /// (left-padded to `k` bytes first). None when the padding is wrong.
    pub fn unpad(&self, from_tpm: Zeroizing<Vec<u8>>, k: usize) -> Option<Zeroizing<Vec<u8>>> {
        match (self, self.tpm_padding().0) {
            (RsaCrypt::Oaep { hash, label }, RsaPadding::Raw) => {
                if from_tpm.len() > k {
                    return None;
                }
                let mut em = Zeroizing::new(vec![0u8; k - from_tpm.len()]);
                em.extend_from_slice(&from_tpm);
                oaep_decode(*hash, label, &em)
            }
            _ => Some(from_tpm),
        }
    }

    /// Encrypts `message` to an RSA public key in software.
    ///
    /// # Errors
    /// CKR_DATA_LEN_RANGE for a message too long for the key;
    /// CKR_KEY_TYPE_INCONSISTENT for a key that is not RSA;
    /// CKR_FUNCTION_FAILED when the key cannot be used.
    pub fn encrypt(&self, public: &TpmtPublic, message: &[u8]) -> Result<Vec<u8>, Rv> {
        let (n, e) = rsa_parts(public).map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?;
        let k = n.len();
        if self.max_message(k).is_none_or(|max| message.len() > max) {
            return Err(CKR_DATA_LEN_RANGE);
        }
        let mut rng = rand_core::OsRng;
        match self {
            RsaCrypt::Pkcs1 => {
                let key = rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(&n),
                    rsa::BigUint::from_bytes_be(&e),
                )
                .map_err(|_| CKR_FUNCTION_FAILED)?;
                key.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, message)
                    .map_err(|_| CKR_FUNCTION_FAILED)
            }
            RsaCrypt::Oaep { hash, label } => {
                let exponent = e
                    .iter()
                    .try_fold(0u32, |acc, b| {
                        acc.checked_mul(256).map(|a| a | u32::from(*b))
                    })
                    .ok_or(CKR_FUNCTION_FAILED)?;
                rsa_encapsulate(&n, exponent, *hash, label, message, &mut rng)
                    .map_err(|_| CKR_FUNCTION_FAILED)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oaep(hash: CK_MECHANISM_TYPE, mgf: CK_ULONG, label: &[u8]) -> Option<OaepParams> {
        Some(OaepParams {
            hash,
            mgf,
            source: CKZ_DATA_SPECIFIED,
            label: label.to_vec(),
        })
    }

    #[test]
    fn parameters_are_checked() {
        assert_eq!(rsa_crypt(CKM_RSA_PKCS, None), Ok(RsaCrypt::Pkcs1));
        assert_eq!(
            rsa_crypt(CKM_RSA_PKCS, oaep(CKM_SHA256, CKG_MGF1_SHA256, b"")),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(rsa_crypt(CKM_RSA_X_509, None), Err(CKR_MECHANISM_INVALID));
        assert_eq!(
            rsa_crypt(CKM_RSA_PKCS_OAEP, None),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            rsa_crypt(CKM_RSA_PKCS_OAEP, oaep(CKM_SHA256, CKG_MGF1_SHA1, b"")),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            rsa_crypt(CKM_RSA_PKCS_OAEP, oaep(CKM_MD5, CKG_MGF1_SHA1, b"")),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        let mut p = oaep(CKM_SHA_1, CKG_MGF1_SHA1, b"x");
        if let Some(p) = p.as_mut() {
            p.source = 0;
        }
        assert_eq!(
            rsa_crypt(CKM_RSA_PKCS_OAEP, p),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        for (h, m) in [
            (CKM_SHA_1, CKG_MGF1_SHA1),
            (CKM_SHA256, CKG_MGF1_SHA256),
            (CKM_SHA384, CKG_MGF1_SHA384),
            (CKM_SHA512, CKG_MGF1_SHA512),
        ] {
            assert!(rsa_crypt(CKM_RSA_PKCS_OAEP, oaep(h, m, b"label")).is_ok());
        }
    }

    #[test]
    fn labels_the_tpm_cannot_take_are_decoded_here() {
        let with = |label: &[u8]| RsaCrypt::Oaep {
            hash: HashAlg::Sha256,
            label: label.to_vec(),
        };
        assert_eq!(
            with(b"").tpm_padding(),
            (RsaPadding::Oaep(HashAlg::Sha256), &b""[..])
        );
        assert_eq!(
            with(b"ab\0").tpm_padding(),
            (RsaPadding::Oaep(HashAlg::Sha256), &b"ab\0"[..])
        );
        assert_eq!(with(b"ABC").tpm_padding().0, RsaPadding::Raw);
        assert_eq!(RsaCrypt::Pkcs1.tpm_padding().0, RsaPadding::Pkcs1);
        assert_eq!(RsaCrypt::Pkcs1.max_message(256), Some(245));
        assert_eq!(with(b"").max_message(256), Some(190));
        let sha512 = RsaCrypt::Oaep {
            hash: HashAlg::Sha512,
            label: vec![],
        };
        assert_eq!(sha512.max_message(128), None);
    }

    #[test]
    fn software_encryption_round_trips_with_a_private_key() {
        use crate::keys::templates::{key_template, KeyAlgorithm, KeyUsage};
        use rsa::traits::PublicKeyParts;
        use tpm_commands::buffers::Tpm2bPublicKeyRsa;
        use tpm_commands::structures::PublicParams;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let mut public = key_template(KeyAlgorithm::Rsa2048, KeyUsage::DECRYPT, false);
        if let PublicParams::Rsa { unique, .. } = &mut public.params {
            *unique = Tpm2bPublicKeyRsa::new(key.n().to_bytes_be()).unwrap();
        }
        let c = RsaCrypt::Pkcs1.encrypt(&public, b"hello").unwrap();
        assert_eq!(key.decrypt(rsa::Pkcs1v15Encrypt, &c).unwrap(), b"hello");
        let o = RsaCrypt::Oaep {
            hash: HashAlg::Sha384,
            label: b"lbl".to_vec(),
        };
        let c = o.encrypt(&public, b"hi").unwrap();
        let d = key
            .decrypt(rsa::Oaep::new_with_label::<sha2::Sha384, _>("lbl"), &c)
            .unwrap();
        assert_eq!(d, b"hi");
        assert_eq!(
            RsaCrypt::Pkcs1.encrypt(&public, &[0; 246]),
            Err(CKR_DATA_LEN_RANGE)
        );
    }
}
