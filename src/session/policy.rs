//! Policy digests computed in software (Part 1 §19.7.3, "policyDigest_new =
//! H(policyDigest_old || TPM_CC || arguments)"), so an object's authPolicy can be
//! set without a trial session. The policy commands themselves are run by
//! [`crate::tpm::Tpm`] (`policy_pcr`, `policy_auth_value`, …).

use tpm_commands::codec::Marshal;
use tpm_commands::constants::TpmCc;
use tpm_commands::structures::TpmlPcrSelection;

use crate::crypto::hash::HashAlg;
use crate::error::Result;

/// A policy digest computed in software.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDigest {
    hash: HashAlg,
    digest: Vec<u8>,
}

impl PolicyDigest {
    /// The empty policy (all zeros) for `hash`.
    pub fn new(hash: HashAlg) -> Self {
        PolicyDigest {
            hash,
            digest: vec![0; hash.digest_size()],
        }
    }

    /// The digest.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    fn extend(&mut self, cc: TpmCc, args: &[&[u8]]) {
        let ccb = cc.0.to_be_bytes();
        let mut parts: Vec<&[u8]> = vec![&self.digest, &ccb];
        parts.extend_from_slice(args);
        self.digest = self.hash.hash(&parts);
    }

    /// After TPM2_PolicyAuthValue (Part 3 §23.17).
    pub fn auth_value(mut self) -> Self {
        self.extend(TpmCc::POLICY_AUTH_VALUE, &[]);
        self
    }

    /// After TPM2_PolicyPassword: the same digest as PolicyAuthValue (Part 3 §23.18).
    pub fn password(self) -> Self {
        self.auth_value()
    }

    /// After TPM2_PolicyCommandCode (Part 3 §23.11).
    pub fn command_code(mut self, code: TpmCc) -> Self {
        self.extend(TpmCc::POLICY_COMMAND_CODE, &[&code.0.to_be_bytes()]);
        self
    }

    /// After TPM2_PolicyPCR (Part 3 §23.7): `pcr_digest` = H(selected PCR values,
    /// concatenated in selection order).
    ///
    /// # Errors
    /// A selection that does not marshal.
    pub fn pcr(mut self, pcrs: &TpmlPcrSelection, pcr_digest: &[u8]) -> Result<Self> {
        let sel = pcrs.to_bytes()?;
        self.extend(TpmCc::POLICY_PCR, &[&sel, pcr_digest]);
        Ok(self)
    }

    /// After TPM2_PolicySecret with an empty policyRef (Part 3 §23.4): the
    /// authorizing object's Name enters, then H(digest || policyRef).
    pub fn secret(mut self, auth_object_name: &[u8]) -> Self {
        self.extend(TpmCc::POLICY_SECRET, &[auth_object_name]);
        self.digest = self.hash.hash(&[&self.digest]);
        self
    }

    /// After TPM2_PolicyOR (Part 3 §23.6): the digest is reset and the branches enter.
    pub fn or(hash: HashAlg, branches: &[&[u8]]) -> Self {
        let mut p = PolicyDigest::new(hash);
        p.extend(TpmCc::POLICY_OR, branches);
        p
    }
}
