//! The key a session salt is encrypted to (Part 1 §19.6.11, Annex B/C secret
//! sharing): a loaded decrypt key's handle, Name and public key.

use tpm_commands::constants::{TpmEccCurve, TpmHandle};
use tpm_commands::structures::{PublicParams, TpmtPublic};

use crate::crypto::hash::HashAlg;
use crate::crypto::name::object_name;
use crate::crypto::secret::EccCurve;
use crate::error::{Error, Result};

/// A loaded decrypt key that session salts are encrypted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaltKey {
    /// An ECC key.
    Ecc {
        /// Its handle.
        handle: TpmHandle,
        /// Its Name.
        name: Vec<u8>,
        /// Its curve.
        curve: EccCurve,
        /// Public x.
        x: Vec<u8>,
        /// Public y.
        y: Vec<u8>,
        /// Its nameAlg (KDFe hash).
        name_alg: HashAlg,
    },
    /// An RSA key.
    Rsa {
        /// Its handle.
        handle: TpmHandle,
        /// Its Name.
        name: Vec<u8>,
        /// The modulus.
        modulus: Vec<u8>,
        /// The exponent (0 = 65537).
        exponent: u32,
        /// Its nameAlg (OAEP hash for keys without an OAEP scheme).
        name_alg: HashAlg,
    },
}

impl SaltKey {
    /// From a loaded key's handle and public area.
    ///
    /// # Errors
    /// A key type, curve or hash tpmkey cannot encrypt to.
    pub fn new(handle: TpmHandle, public: &TpmtPublic) -> Result<SaltKey> {
        let name = object_name(public)?;
        let name_alg = HashAlg::from_alg_id(public.name_alg.0)
            .ok_or_else(|| Error::Crypto("unsupported name algorithm".into()))?;
        match &public.params {
            PublicParams::Ecc { parms, unique } => {
                let curve = match parms.curve_id {
                    TpmEccCurve::NIST_P256 => EccCurve::P256,
                    TpmEccCurve::NIST_P384 => EccCurve::P384,
                    c => return Err(Error::Crypto(format!("cannot salt a session to curve {c}"))),
                };
                Ok(SaltKey::Ecc {
                    handle,
                    name,
                    curve,
                    x: unique.x.as_bytes().to_vec(),
                    y: unique.y.as_bytes().to_vec(),
                    name_alg,
                })
            }
            PublicParams::Rsa { parms, unique } => {
                let oaep = parms
                    .scheme
                    .hash()
                    .and_then(|h| HashAlg::from_alg_id(h.0))
                    .unwrap_or(name_alg);
                Ok(SaltKey::Rsa {
                    handle,
                    name,
                    modulus: unique.as_bytes().to_vec(),
                    exponent: parms.exponent,
                    name_alg: oaep,
                })
            }
            other => Err(Error::Crypto(format!(
                "cannot salt a session to a {} key",
                other.alg()
            ))),
        }
    }

    /// The key's handle.
    pub fn handle(&self) -> TpmHandle {
        match self {
            SaltKey::Ecc { handle, .. } | SaltKey::Rsa { handle, .. } => *handle,
        }
    }

    /// The key's Name.
    pub fn name(&self) -> &[u8] {
        match self {
            SaltKey::Ecc { name, .. } | SaltKey::Rsa { name, .. } => name,
        }
    }
}
