//! The outer wrapper of a duplicated object (Part 1 §23.3.2.3 and §22 "Protected
//! Storage"), as TPM2_Import takes it: the sensitive area encrypted with a key
//! derived from a fresh seed, and an HMAC over it and the object's Name.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use zeroize::Zeroizing;

use super::hash::HashAlg;
use super::kdf::kdfa;
use super::CryptoError;

/// Wraps `sensitive_tpm2b` (a marshalled TPM2B_SENSITIVE, size included) for a
/// parent whose nameAlg is `parent_name_alg` and whose symmetric key has
/// `sym_key_bits` (AES-CFB): returns the TPM2B_PRIVATE contents,
/// `TPM2B_DIGEST(outerHMAC) || encSensitive`.
///
/// symKey = KDFa(nP, seed, "STORAGE", name, "", keyBits); encSensitive =
/// AES-CFB(symKey, IV 0, sensitive); hmacKey = KDFa(nP, seed, "INTEGRITY", "", "",
/// digestBits); outerHMAC = HMAC(hmacKey, encSensitive || name).
///
/// # Errors
/// A key size other than 128, 192 or 256.
pub fn outer_wrap(
    parent_name_alg: HashAlg,
    sym_key_bits: u16,
    seed: &[u8],
    object_name: &[u8],
    sensitive_tpm2b: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let sym_key = kdfa(
        parent_name_alg,
        seed,
        b"STORAGE",
        object_name,
        &[],
        u32::from(sym_key_bits),
    );
    let mut enc = Zeroizing::new(sensitive_tpm2b.to_vec());
    let iv = [0u8; 16];
    let bad = |_| CryptoError::InvalidKey("storage key size".into());
    match sym_key_bits {
        128 => cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(&sym_key, &iv)
            .map_err(bad)?
            .encrypt(&mut enc),
        192 => cfb_mode::Encryptor::<aes::Aes192>::new_from_slices(&sym_key, &iv)
            .map_err(bad)?
            .encrypt(&mut enc),
        256 => cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(&sym_key, &iv)
            .map_err(bad)?
            .encrypt(&mut enc),
        b => return Err(CryptoError::Unsupported(format!("AES-{b}"))),
    }
    let hmac_key = kdfa(
        parent_name_alg,
        seed,
        b"INTEGRITY",
        &[],
        &[],
        (parent_name_alg.digest_size() * 8) as u32,
    );
    let outer = parent_name_alg.hmac(&hmac_key, &[&enc, object_name]);
    let mut out = Vec::with_capacity(2 + outer.len() + enc.len());
    out.extend_from_slice(&(outer.len() as u16).to_be_bytes());
    out.extend_from_slice(&outer);
    out.extend_from_slice(&enc);
    Ok(out)
}
