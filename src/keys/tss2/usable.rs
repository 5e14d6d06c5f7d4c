//! What tpmkey takes from a TSS2 key file: the kinds of key it can use, and the
//! parents it can load them under. Everything else is refused with the reason.

use tpm_commands::attributes::TpmaObject;
use tpm_commands::constants::{TpmEccCurve, TpmHandle};
use tpm_commands::structures::{PublicParams, TpmtScheme};

use super::{bad, KeyType, Tss2Key};
use crate::error::{Error, Result};
use crate::keys::templates::{KeyAlgorithm, SrkKind};

fn refuse(why: impl Into<String>) -> Error {
    Error::Usage(why.into())
}

const SEALED: &str = "a sealed data object (id-sealedkey), not a key: tpmkey holds signing keys; unseal it with the tool that made it";
const SECOND_WAY_IN: &str = "a policy is a second way to use the key besides its password, and tpmkey's PIN must be the only one; make a key without a policy";
const RESTRICTED: &str = "a restricted key (an attestation key or a storage parent): it signs only what the TPM hashed itself, so tpmkey cannot use it";
const NO_SIGN: &str =
    "the key cannot sign (its sign attribute is clear); tpmkey holds signing keys";
const POLICY_ONLY: &str = "the key is authorized by policy only (userWithAuth clear or adminWithPolicy set); tpmkey authorizes keys with their password";

impl Tss2Key {
    /// What tpmkey can take from this file: a loadable (or importable, with its
    /// import secret) signing key without a policy, of an algorithm tpmkey uses,
    /// that can sign data it did not hash itself (not restricted) with a scheme
    /// chosen per signature (scheme NULL), authorized by its authValue alone
    /// (userWithAuth set, adminWithPolicy clear, no policy digest). Returns its
    /// algorithm.
    ///
    /// Policies are refused because a policy is a second way in: a PolicyPCR-only
    /// branch would let the key sign with no PIN at all, and tpmkey's PIN is the
    /// key's only authorization. Sealed objects are not keys.
    ///
    /// # Errors
    /// Each refusal names what was found and why.
    pub fn usable_algorithm(&self) -> Result<KeyAlgorithm> {
        match (self.key_type, &self.secret) {
            (KeyType::Loadable, None) | (KeyType::Importable, Some(_)) => {}
            (KeyType::Loadable, Some(_)) => {
                return Err(bad("a loadable key with an import secret"))
            }
            (KeyType::Importable, None) => {
                return Err(bad("an importable key without its import secret"))
            }
            (KeyType::Sealed, _) => return Err(refuse(SEALED)),
        }
        self.check_no_policy()?;
        self.check_attributes()?;
        self.algorithm()
    }

    /// No policy steps, no signed policies, no policy digest in the key.
    fn check_no_policy(&self) -> Result<()> {
        if !self.policy.is_empty() || self.auth_policies != 0 {
            let mut found: Vec<String> =
                self.policy.iter().map(|p| p.command.to_string()).collect();
            if self.auth_policies != 0 {
                found.push(format!("{} signed policies", self.auth_policies));
            }
            return Err(refuse(format!(
                "the key has a policy ({}): {SECOND_WAY_IN}",
                found.join(", ")
            )));
        }
        if !self.public.auth_policy.as_bytes().is_empty() {
            return Err(refuse(format!(
                "the key has an authorization policy digest (its file lists no policy steps): {SECOND_WAY_IN}"
            )));
        }
        Ok(())
    }

    /// An unrestricted signing key that its authValue authorizes.
    fn check_attributes(&self) -> Result<()> {
        let attrs = self.public.object_attributes;
        if attrs.contains(TpmaObject::RESTRICTED) {
            return Err(refuse(RESTRICTED));
        }
        if !attrs.contains(TpmaObject::SIGN_ENCRYPT) {
            return Err(refuse(NO_SIGN));
        }
        if !attrs.contains(TpmaObject::USER_WITH_AUTH)
            || attrs.contains(TpmaObject::ADMIN_WITH_POLICY)
        {
            return Err(refuse(POLICY_ONLY));
        }
        Ok(())
    }

    /// ECC P-256/P-384 or RSA 2048/3072/4096, with scheme NULL.
    fn algorithm(&self) -> Result<KeyAlgorithm> {
        let (alg, scheme) = match &self.public.params {
            PublicParams::Ecc { parms, .. } => match parms.curve_id {
                TpmEccCurve::NIST_P256 => (KeyAlgorithm::Ecc256, parms.scheme),
                TpmEccCurve::NIST_P384 => (KeyAlgorithm::Ecc384, parms.scheme),
                c => {
                    return Err(refuse(format!(
                        "an ECC key on curve {c}: tpmkey uses NIST P-256 and P-384 keys"
                    )))
                }
            },
            PublicParams::Rsa { parms, .. } => match parms.key_bits {
                2048 => (KeyAlgorithm::Rsa2048, parms.scheme),
                3072 => (KeyAlgorithm::Rsa3072, parms.scheme),
                4096 => (KeyAlgorithm::Rsa4096, parms.scheme),
                b => {
                    return Err(refuse(format!(
                        "an RSA-{b} key: tpmkey uses RSA 2048, 3072 and 4096"
                    )))
                }
            },
            other => {
                return Err(refuse(format!(
                    "a {} object, not an ECC or RSA key",
                    other.alg()
                )))
            }
        };
        if scheme != TpmtScheme::Null {
            let name = match scheme {
                TpmtScheme::Hash { scheme, hash } => format!("{scheme} with {hash}"),
                other => format!("{other:?}"),
            };
            return Err(refuse(format!(
                "the key is fixed to one signature scheme ({name}); tpmkey chooses the scheme and hash per signature (ECDSA, RSASSA or RSA-PSS with SHA-1/256/384/512) and needs keys whose scheme is NULL"
            )));
        }
        Ok(alg)
    }

    /// Fails unless the key's parent is the store's SRK `kind` (persistent or not):
    /// 0x81000001, or the owner-hierarchy primary of the standard template
    /// (0x40000001: the P-256 SRK, or the RSA-2048 one when `rsaParent` is set).
    /// Whether 0x81000001 really holds that SRK, TPM2_Load tells.
    ///
    /// # Errors
    /// Any other parent, named.
    pub fn check_parent(&self, kind: SrkKind) -> Result<()> {
        let name = |k: SrkKind| match k {
            SrkKind::Ecc => ("ECC P-256", "ecc"),
            SrkKind::Rsa => ("RSA-2048", "rsa"),
        };
        match self.parent {
            TpmHandle::SRK => Ok(()),
            TpmHandle::RH_OWNER => {
                let file = if self.rsa_parent {
                    SrkKind::Rsa
                } else {
                    SrkKind::Ecc
                };
                if file == kind {
                    return Ok(());
                }
                Err(refuse(format!(
                    "the key's parent is 0x40000001 with the {} template, but this store's keys live under the {} storage root key (`tpmkey init --srk {}`)",
                    name(file).0,
                    name(kind).0,
                    name(kind).1,
                )))
            }
            TpmHandle(h) => Err(refuse(format!(
                "the key's parent is 0x{h:08x}; tpmkey loads keys only under its storage root key (persistent handle 0x81000001, or the owner-hierarchy primary 0x40000001 of the standard template), so this key cannot move into the store"
            ))),
        }
    }
}
