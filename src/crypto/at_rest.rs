//! Encryption at rest of private PKCS#11 objects' values (CKO_DATA or
//! CKO_CERTIFICATE with CKA_PRIVATE true): the store holds only public data and
//! TPM-wrapped blobs, so such a value is kept encrypted under keys derived from
//! the token secret, which only the TPM unseals (with the user PIN on a PIN
//! token; dictionary-attack protected). Encrypt-then-MAC:
//!
//! - keys: `KDFa(SHA-256, token secret, "TPMKEY OBJECT", uid, nonce, 512)` (Part 1
//!   §11.4.10.2), the first 256 bits for AES-256-CFB (Part 1 §21.3's CFB, keyed
//!   by KDFa over the same inputs), the last 256 bits for HMAC-SHA256;
//! - MAC = HMAC-SHA256(uid ‖ nonce ‖ ciphertext), checked in constant time before
//!   anything is decrypted, so a value moved to another object, or changed, is
//!   refused.
//!
//! The nonce is fresh random for every write.

use zeroize::Zeroizing;

use super::hash::HashAlg;
use super::kdf::kdfa;
use super::param::{cfb_decrypt, cfb_encrypt};

/// A value encrypted at rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encrypted {
    /// The nonce (16 bytes).
    pub nonce: Vec<u8>,
    /// The ciphertext, as long as the value.
    pub ciphertext: Vec<u8>,
    /// HMAC-SHA256 tag.
    pub mac: Vec<u8>,
}

fn keys(secret: &[u8], uid: &str, nonce: &[u8]) -> Zeroizing<Vec<u8>> {
    kdfa(
        HashAlg::Sha256,
        secret,
        b"TPMKEY OBJECT",
        uid.as_bytes(),
        nonce,
        512,
    )
}

/// Encrypts `value` of object `uid` under the token secret with `nonce`.
pub fn encrypt(secret: &[u8], uid: &str, nonce: &[u8], value: &[u8]) -> Encrypted {
    let k = keys(secret, uid, nonce);
    let (enc, mac) = k.split_at(32);
    let mut ciphertext = value.to_vec();
    cfb_encrypt(
        HashAlg::Sha256,
        enc,
        nonce,
        uid.as_bytes(),
        256,
        &mut ciphertext,
    );
    let mac = HashAlg::Sha256.hmac(mac, &[uid.as_bytes(), nonce, &ciphertext]);
    Encrypted {
        nonce: nonce.to_vec(),
        ciphertext,
        mac,
    }
}

/// Checks and decrypts a value of object `uid`; None when the tag does not match
/// (another token secret, another object, or a changed file).
pub fn decrypt(secret: &[u8], uid: &str, e: &Encrypted) -> Option<Zeroizing<Vec<u8>>> {
    let k = keys(secret, uid, &e.nonce);
    let (enc, mac) = k.split_at(32);
    if !HashAlg::Sha256.hmac_verify(mac, &[uid.as_bytes(), &e.nonce, &e.ciphertext], &e.mac) {
        return None;
    }
    let mut value = Zeroizing::new(e.ciphertext.clone());
    cfb_decrypt(
        HashAlg::Sha256,
        enc,
        &e.nonce,
        uid.as_bytes(),
        256,
        &mut value,
    );
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let secret = [7u8; 32];
        let e = encrypt(&secret, "00aa", &[1; 16], b"a private value");
        assert_ne!(e.ciphertext, b"a private value");
        assert_eq!(
            decrypt(&secret, "00aa", &e).as_deref().map(Vec::as_slice),
            Some(&b"a private value"[..])
        );
        assert!(decrypt(&[8u8; 32], "00aa", &e).is_none(), "other secret");
        assert!(decrypt(&secret, "00ab", &e).is_none(), "other object");
        let mut t = e.clone();
        t.ciphertext[0] ^= 1;
        assert!(decrypt(&secret, "00aa", &t).is_none(), "changed ciphertext");
        let again = encrypt(&secret, "00aa", &[2; 16], b"a private value");
        assert_ne!(again.ciphertext, e.ciphertext, "fresh nonce, fresh keys");
    }
}
