//! Policy commands on a policy session (Part 3 §23). The session is the state
//! ([`crate::session::AuthSession`]); the digest these commands produce can be
//! computed in software with [`crate::session::policy::PolicyDigest`].

use tpm_commands::buffers::{Tpm2bDigest, Tpm2bNonce};
use tpm_commands::commands::{
    PolicyAuthValue, PolicyCommandCode, PolicyGetDigest, PolicyOr, PolicyPassword, PolicyPcr,
    PolicySecret,
};
use tpm_commands::constants::{TpmCc, TpmHandle};
use tpm_commands::structures::{TpmlDigest, TpmlPcrSelection};

use super::{Auth, Tpm};
use crate::error::{Error, Result};
use crate::session::{AuthSession, PolicyAuth};

fn session_name(s: &AuthSession) -> Vec<u8> {
    s.handle().0.to_be_bytes().to_vec()
}

impl Tpm {
    /// Runs TPM2_PolicyAuthValue: the entity's authValue will enter the HMAC.
    ///
    /// # Errors
    /// Transport or TPM errors.
    pub fn policy_auth_value(&mut self, s: &mut AuthSession) -> Result<()> {
        let n = session_name(s);
        self.execute(
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
    pub fn policy_password(&mut self, s: &mut AuthSession) -> Result<()> {
        let n = session_name(s);
        self.execute(
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
    pub fn policy_command_code(&mut self, s: &mut AuthSession, code: TpmCc) -> Result<()> {
        let n = session_name(s);
        self.execute(
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
    pub fn policy_pcr(&mut self, s: &mut AuthSession, pcrs: &TpmlPcrSelection) -> Result<()> {
        let n = session_name(s);
        self.execute(
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
    pub fn policy_or(&mut self, s: &mut AuthSession, branches: &[&[u8]]) -> Result<()> {
        let n = session_name(s);
        let list = branches
            .iter()
            .map(|b| Tpm2bDigest::new(b.to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.execute(
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
        &mut self,
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
        self.execute(
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
    pub fn policy_get_digest(&mut self, s: &AuthSession) -> Result<Vec<u8>> {
        let n = session_name(s);
        Ok(self
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
}
