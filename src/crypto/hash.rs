//! Hash and HMAC by TPM_ALG_ID (Part 2 §6.3).

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A hash algorithm tpmkey implements on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// TPM_ALG_SHA1.
    Sha1,
    /// TPM_ALG_SHA256.
    Sha256,
    /// TPM_ALG_SHA384.
    Sha384,
    /// TPM_ALG_SHA512.
    Sha512,
}

macro_rules! each_hash {
    ($alg:expr, $h:ident => $body:expr) => {
        match $alg {
            HashAlg::Sha1 => {
                type $h = Sha1;
                $body
            }
            HashAlg::Sha256 => {
                type $h = Sha256;
                $body
            }
            HashAlg::Sha384 => {
                type $h = Sha384;
                $body
            }
            HashAlg::Sha512 => {
                type $h = Sha512;
                $body
            }
        }
    };
}

impl HashAlg {
    /// The algorithm for a TPM_ALG_ID, if it is a hash implemented here.
    pub fn from_alg_id(id: u16) -> Option<HashAlg> {
        match id {
            0x0004 => Some(HashAlg::Sha1),
            0x000B => Some(HashAlg::Sha256),
            0x000C => Some(HashAlg::Sha384),
            0x000D => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// The TPM_ALG_ID.
    pub fn alg_id(self) -> u16 {
        match self {
            HashAlg::Sha1 => 0x0004,
            HashAlg::Sha256 => 0x000B,
            HashAlg::Sha384 => 0x000C,
            HashAlg::Sha512 => 0x000D,
        }
    }

    /// Digest size in bytes.
    pub fn digest_size(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// H(`parts[0] || parts[1] || …`).
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        each_hash!(self, H => {
            let mut h = H::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        })
    }

    /// H(everything `reader` gives), read in 64 KiB pieces.
    ///
    /// # Errors
    /// Read errors.
    pub fn hash_reader(self, mut reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 1 << 16];
        each_hash!(self, H => {
            let mut h = H::new();
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(h.finalize().to_vec())
        })
    }

    /// HMAC(key, `parts[0] || parts[1] || …`).
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        each_hash!(self, H => {
            // HMAC takes keys of any length; new_from_slice cannot fail for it.
            match <Hmac<H> as Mac>::new_from_slice(key) {
                Ok(mut m) => {
                    for p in parts {
                        m.update(p);
                    }
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        })
    }

    /// Checks `expected == HMAC(key, parts…)` in constant time.
    pub fn hmac_verify(self, key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
        each_hash!(self, H => {
            match <Hmac<H> as Mac>::new_from_slice(key) {
                Ok(mut m) => {
                    for p in parts {
                        m.update(p);
                    }
                    m.verify_slice(expected).is_ok()
                }
                Err(_) => false,
            }
        })
    }
}
