//! Parameter encryption (Part 1 §21): AES-CFB with key and IV from KDFa "CFB".

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use zeroize::Zeroizing;

use super::hash::HashAlg;
use super::kdf::kdfa;

fn key_iv(
    hash: HashAlg,
    session_value: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    key_bits: u16,
) -> Zeroizing<Vec<u8>> {
    kdfa(
        hash,
        session_value,
        b"CFB",
        nonce_newer,
        nonce_older,
        u32::from(key_bits) + 128,
    )
}

fn apply(
    hash: HashAlg,
    session_value: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    key_bits: u16,
    data: &mut [u8],
    encrypt: bool,
) {
    let kiv = key_iv(hash, session_value, nonce_newer, nonce_older, key_bits);
    let kb = usize::from(key_bits / 8);
    let (Some(key), Some(iv)) = (kiv.get(..kb), kiv.get(kb..kb + 16)) else {
        return;
    };
    macro_rules! run {
        ($aes:ty) => {{
            if encrypt {
                if let Ok(c) = cfb_mode::Encryptor::<$aes>::new_from_slices(key, iv) {
                    c.encrypt(data);
                }
            } else if let Ok(c) = cfb_mode::Decryptor::<$aes>::new_from_slices(key, iv) {
                c.decrypt(data);
            }
        }};
    }
    match key_bits {
        128 => run!(aes::Aes128),
        192 => run!(aes::Aes192),
        _ => run!(aes::Aes256),
    }
}

/// Encrypts in place with AES-CFB (Part 1 §21.3). For a command parameter
/// nonceNewer = nonceCaller and nonceOlder = nonceTPM; for a response parameter
/// nonceNewer = the new nonceTPM and nonceOlder = nonceCaller.
pub fn cfb_encrypt(
    hash: HashAlg,
    session_value: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    key_bits: u16,
    data: &mut [u8],
) {
    apply(
        hash,
        session_value,
        nonce_newer,
        nonce_older,
        key_bits,
        data,
        true,
    )
}

/// Decrypts in place with AES-CFB (Part 1 §21.3); nonce order as [`cfb_encrypt`].
pub fn cfb_decrypt(
    hash: HashAlg,
    session_value: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    key_bits: u16,
    data: &mut [u8],
) {
    apply(
        hash,
        session_value,
        nonce_newer,
        nonce_older,
        key_bits,
        data,
        false,
    )
}

/// XOR obfuscation (Part 1 §21.2): data ^= KDFa(hash, sessionValue, "XOR",
/// nonceNewer, nonceOlder, len·8).
pub fn xor_obfuscate(
    hash: HashAlg,
    session_value: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    data: &mut [u8],
) {
    let mask = kdfa(
        hash,
        session_value,
        b"XOR",
        nonce_newer,
        nonce_older,
        (data.len() * 8) as u32,
    );
    for (d, m) in data.iter_mut().zip(mask.iter()) {
        *d ^= m;
    }
}
