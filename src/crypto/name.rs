//! Names of TPM entities (Part 1 §16).

use tpm_commands::codec::Marshal;
use tpm_commands::structures::TpmtPublic;

use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};

/// The Name of an object: nameAlg || H_nameAlg(TPMT_PUBLIC) (Part 1 §16). Always
/// computed here from the public area, never taken from the TPM.
///
/// # Errors
/// A nameAlg the host does not implement, or a public area that does not marshal.
pub fn object_name(public: &TpmtPublic) -> Result<Vec<u8>> {
    let alg = HashAlg::from_alg_id(public.name_alg.0)
        .ok_or_else(|| Error::Crypto(format!("unsupported name algorithm {}", public.name_alg)))?;
    let bytes = public.to_bytes()?;
    let mut name = alg.alg_id().to_be_bytes().to_vec();
    name.extend(alg.hash(&[&bytes]));
    Ok(name)
}
