//! The PKCS#11 module `libtpmkey.so` (PKCS#11 2.40; `C_GetInterface` of 3.0):
//! OpenSSH (`ssh -I`, `PKCS11Provider`, `ssh-keygen -D`, `ssh-add -s`),
//! pkcs11-tool and p11-kit use TPM-held keys through it.
//!
//! - [`ffi`]: the C ABI; all `unsafe` code and pointer checks, panics caught;
//!   one file per group of functions of PKCS#11 2.40 Base §5.
//! - [`state`]: slots, sessions, logins, the object table (token objects from the
//!   store, session objects in memory) and the TPM connection.
//! - [`objects`]: the attributes each key shows; [`secret`]: derived secret keys.
//! - [`certificate`], [`data`], [`storage`]: certificate and data objects, and
//!   the attributes and template rules they share.
//! - [`template`]: typed reading of the caller's attribute templates.
//! - [`mechanisms`]: the mechanism table and how each signature becomes one
//!   TPM2_Sign; [`verify`] checks signatures in software; [`crypt`]: RSA
//!   encryption (software) and decryption (TPM2_RSA_Decrypt); [`ecdh`]:
//!   CKM_ECDH1_DERIVE (TPM2_ECDH_ZGen); [`digest`]: software digests.

pub mod certificate;
pub mod crypt;
pub mod data;
pub mod digest;
pub mod ecdh;
pub mod ffi;
pub mod mechanisms;
pub mod objects;
pub mod secret;
pub mod state;
pub mod storage;
pub mod template;
pub mod verify;
