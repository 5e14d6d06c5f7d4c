//! tpmkey: a pure-Rust TPM 2.0 stack that keeps SSH and signing keys inside the TPM.
//!
//! Layers (each depends only on those below it):
//! - [`tpm_commands`] (separate crate): the wire format.
//! - [`transport`] and [`tcti`]: moving frames to `/dev/tpmrm0`, `/dev/tpm0`, swtpm.
//! - [`crypto`]: KDFs, session HMACs, parameter encryption.
//! - [`session`]: session state and the rules of which key and nonce go where.
//! - [`Tpm`]: the one place commands are framed, authorized, sent, retried and
//!   verified.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod crypto;
pub mod error;
pub mod info;
pub mod keys;
pub mod pkcs11;
pub mod random;
pub mod session;
pub mod store;
pub mod tcti;
pub mod token;
pub mod tpm;
pub mod transport;

pub use error::{Error, Result};
pub use tpm::{Auth, Tpm};
pub use tpm_commands;
