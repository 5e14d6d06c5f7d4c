//! Policy sessions (Part 3 §23): running policy commands on a session, and the
//! software computation of the policy digests they produce (Part 1 §19.7.3,
//! "policyDigest_new = H(policyDigest_old || TPM_CC || arguments)"), so an object's
//! authPolicy can be set without a trial session.

use tpm_commands::buffers::{Tpm2bDigest, Tpm2bNonce};
use tpm_commands::codec::Marshal;
use tpm_commands::commands::{
    PolicyAuthValue, PolicyCommandCode, PolicyGetDigest, PolicyOr, PolicyPassword, PolicyPcr,
    PolicySecret,
};
use tpm_commands::constants::{TpmCc, TpmHandle};
use tpm_commands::structures::{TpmlDigest, TpmlPcrSelection};

use super::{AuthSession, PolicyAuth};
use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::tpm::{Auth, Tpm};

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

fn session_name(s: &AuthSession) -> Vec<u8> {
    s.handle().0.to_be_bytes().to_vec()
}

/// Runs TPM2_PolicyAuthValue: the entity's authValue will enter the HMAC.
///
/// # Errors
/// Transport or TPM errors.
pub fn policy_auth_value(tpm: &mut Tpm, s: &mut AuthSession) -> Result<()> {
    let n = session_name(s);
    tpm.execute(
        &PolicyAuthValue {
            policy_session: s.handle(),
        },
        &[&n],
        &mut [],
    )?;
    s.set_policy_auth(PolicyAuth::AuthValue);
    Ok(())
}

/// Runs TPM2_PolicyPassword: the authValue will be sent in clear in the hmac
/// field. Only for tests and interoperability; tpmkey itself uses PolicyAuthValue.
///
/// # Errors
/// Transport or TPM errors.
pub fn policy_password(tpm: &mut Tpm, s: &mut AuthSession) -> Result<()> {
    let n = session_name(s);
    tpm.execute(
        &PolicyPassword {
            policy_session: s.handle(),
        },
        &[&n],
        &mut [],
    )?;
    s.set_policy_auth(PolicyAuth::Password);
    Ok(())
}

/// Runs TPM2_PolicyCommandCode.
///
/// # Errors
/// Transport or TPM errors.
pub fn policy_command_code(tpm: &mut Tpm, s: &mut AuthSession, code: TpmCc) -> Result<()> {
    let n = session_name(s);
    tpm.execute(
        &PolicyCommandCode {
            policy_session: s.handle(),
            code,
        },
        &[&n],
        &mut [],
    )?;
    Ok(())
}

/// Runs TPM2_PolicyPCR with an empty pcrDigest (the TPM uses the current values).
///
/// # Errors
/// Transport or TPM errors.
pub fn policy_pcr(tpm: &mut Tpm, s: &mut AuthSession, pcrs: &TpmlPcrSelection) -> Result<()> {
    let n = session_name(s);
    tpm.execute(
        &PolicyPcr {
            policy_session: s.handle(),
            pcr_digest: Tpm2bDigest::empty(),
            pcrs: pcrs.clone(),
        },
        &[&n],
        &mut [],
    )?;
    Ok(())
}

/// Runs TPM2_PolicyOR over `branches`.
///
/// # Errors
/// More than 8 branches; transport or TPM errors.
pub fn policy_or(tpm: &mut Tpm, s: &mut AuthSession, branches: &[&[u8]]) -> Result<()> {
    let n = session_name(s);
    let list = branches
        .iter()
        .map(|b| Tpm2bDigest::new(b.to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    tpm.execute(
        &PolicyOr {
            policy_session: s.handle(),
            p_hash_list: TpmlDigest(list),
        },
        &[&n],
        &mut [],
    )?;
    Ok(())
}

/// Runs TPM2_PolicySecret authorized by `auth_session` with the authValue of the
/// permanent entity `auth_handle` (e.g. the owner hierarchy).
///
/// # Errors
/// Transport or TPM errors.
pub fn policy_secret(
    tpm: &mut Tpm,
    s: &mut AuthSession,
    auth_handle: TpmHandle,
    auth_name: &[u8],
    auth_session: &mut AuthSession,
    auth_value: &[u8],
) -> Result<()> {
    if !auth_handle.name_is_handle() && auth_name.len() < 4 {
        return Err(Error::Usage(
            "PolicySecret needs the authorizing entity's Name".into(),
        ));
    }
    let n = session_name(s);
    let cmd = PolicySecret {
        auth_handle,
        policy_session: s.handle(),
        nonce_tpm: Tpm2bNonce::empty(),
        cp_hash_a: Tpm2bDigest::empty(),
        policy_ref: Tpm2bNonce::empty(),
        expiration: 0,
    };
    tpm.execute(
        &cmd,
        &[auth_name, &n],
        &mut [Auth::Session(auth_session, auth_value)],
    )?;
    Ok(())
}

/// Reads the session's current policy digest (TPM2_PolicyGetDigest).
///
/// # Errors
/// Transport or TPM errors.
pub fn policy_get_digest(tpm: &mut Tpm, s: &AuthSession) -> Result<Vec<u8>> {
    let n = session_name(s);
    Ok(tpm
        .execute(
            &PolicyGetDigest {
                policy_session: s.handle(),
            },
            &[&n],
            &mut [],
        )?
        .policy_digest
        .as_bytes()
        .to_vec())
}
