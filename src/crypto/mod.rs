//! Host-side cryptography of TPM sessions: hashes and HMACs by TPM algorithm id,
//! KDFa (Part 1 §11.4.10.2), cpHash/rpHash and session HMACs (Part 1 §18.7, §19.6),
//! and AES-CFB parameter encryption (Part 1 §21.3). Pure functions over bytes.

pub mod at_rest;
pub mod duplicate;
pub mod hash;
pub mod kdf;
pub mod name;
pub mod param;
pub mod secret;
pub mod session;

/// A host cryptography failure.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// An algorithm tpmkey does not implement.
    #[error("unsupported algorithm: {0}")]
    Unsupported(String),
    /// A key or point that is not valid.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}
