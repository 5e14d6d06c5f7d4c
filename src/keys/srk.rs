//! The storage root key: taken from the persistent handle 0x81000001 when it holds
//! a standard SRK, else derived with TPM2_CreatePrimary from the standard template.
//! Its Name is pinned by the caller: every salted session is encrypted to that
//! public key, so a substituted TPM fails instead of being trusted. Making it
//! persistent is [`super::persist::make_srk_persistent`] (this module calls no other
//! key module but `public` and `templates`).

use tpm_commands::buffers::Tpm2bData;
use tpm_commands::commands::{CreatePrimary, ReadPublic};
use tpm_commands::constants::TpmHandle;
use tpm_commands::rc::ResponseCode;
use tpm_commands::structures::{
    PublicParams, Tpm2bPublic, Tpm2bSensitiveCreate, TpmlPcrSelection, TpmtPublic,
};

use super::public::{object_name, SaltKey};
use super::templates::{srk_template, SrkKind};
use crate::error::{Error, Result};
use crate::tpm::{Auth, Tpm};

/// A loaded SRK.
#[derive(Clone, Debug)]
pub struct Srk {
    /// Its handle (persistent, or transient and flushed when the Tpm drops).
    pub handle: TpmHandle,
    /// Its public area.
    pub public: TpmtPublic,
    /// Its Name, computed here from the public area.
    pub name: Vec<u8>,
    /// True when found at 0x81000001.
    pub persistent: bool,
    /// ECC or RSA.
    pub kind: SrkKind,
}

/// True when `public` is the standard SRK template of `kind` in everything but
/// `unique` (which holds the key itself).
fn matches_template(public: &TpmtPublic, kind: SrkKind) -> bool {
    let t = srk_template(kind);
    let same_params = match (&public.params, &t.params) {
        (PublicParams::Ecc { parms: a, .. }, PublicParams::Ecc { parms: b, .. }) => a == b,
        (PublicParams::Rsa { parms: a, .. }, PublicParams::Rsa { parms: b, .. }) => a == b,
        _ => false,
    };
    same_params
        && public.name_alg == t.name_alg
        && public.object_attributes == t.object_attributes
        && public.auth_policy == t.auth_policy
}

impl Srk {
    /// The persistent SRK at 0x81000001 if it is a standard `kind` SRK, else a
    /// transient one from the standard template (owner hierarchy, empty owner auth).
    ///
    /// # Errors
    /// Transport or TPM errors (TPM_RC_BAD_AUTH when the owner hierarchy has a
    /// password).
    pub fn load(tpm: &mut Tpm, kind: SrkKind) -> Result<Srk> {
        match tpm.run(&ReadPublic {
            object_handle: TpmHandle::SRK,
        }) {
            Ok(rsp) => {
                if let Some(public) = rsp.out_public.0 {
                    if matches_template(&public, kind) {
                        let name = object_name(&public)?;
                        if name != rsp.name.as_bytes() {
                            return Err(Error::Integrity {
                                cc: tpm_commands::constants::TpmCc::READ_PUBLIC,
                                what: "the persistent SRK's Name does not match its public area",
                            });
                        }
                        return Ok(Srk {
                            handle: TpmHandle::SRK,
                            public,
                            name,
                            persistent: true,
                            kind,
                        });
                    }
                }
            }
            Err(Error::Tpm { rc, .. }) if rc.base() == ResponseCode::HANDLE => {}
            Err(e) => return Err(e),
        }
        Self::create_primary(tpm, kind)
    }

    /// The persistent SRK at 0x81000001 from a public area recorded earlier, with no
    /// TPM command (the caller pins its Name).
    ///
    /// # Errors
    /// A public area that is not a standard `kind` SRK.
    pub fn pinned(public: TpmtPublic, kind: SrkKind) -> Result<Srk> {
        if !matches_template(&public, kind) {
            return Err(Error::Usage(
                "the recorded SRK is not a standard storage root key".into(),
            ));
        }
        let name = object_name(&public)?;
        Ok(Srk {
            handle: TpmHandle::SRK,
            public,
            name,
            persistent: true,
            kind,
        })
    }

    /// Derives the SRK with TPM2_CreatePrimary (deterministic for a given TPM and
    /// template). Nothing secret is sent: the SRK has an empty authValue.
    ///
    /// # Errors
    /// Transport or TPM errors.
    pub fn create_primary(tpm: &mut Tpm, kind: SrkKind) -> Result<Srk> {
        let cmd = CreatePrimary {
            primary_handle: TpmHandle::RH_OWNER,
            in_sensitive: Tpm2bSensitiveCreate::new(Default::default()),
            in_public: Tpm2bPublic::new(srk_template(kind)),
            outside_info: Tpm2bData::empty(),
            creation_pcr: TpmlPcrSelection::default(),
        };
        let owner = TpmHandle::RH_OWNER.0.to_be_bytes();
        let step = crate::progress::step(|| match kind {
            SrkKind::Rsa => {
                "deriving the RSA storage root key (hardware TPMs take up to a minute)".into()
            }
            SrkKind::Ecc => "deriving the ECC storage root key in the TPM".into(),
        });
        let rsp = tpm.execute(&cmd, &[&owner], &mut [Auth::EmptyPassword]);
        drop(step);
        let rsp = rsp?;
        let handle = rsp.object_handle;
        let public = match rsp.out_public.0 {
            Some(p) if matches_template(&p, kind) => p,
            // Not the SRK asked for: do not leave it in a slot.
            other => {
                let _ = tpm.flush(handle);
                return Err(Error::Integrity {
                    cc: tpm_commands::constants::TpmCc::CREATE_PRIMARY,
                    what: if other.is_some() {
                        "the primary key does not match the requested template"
                    } else {
                        "no public area"
                    },
                });
            }
        };
        let name = object_name(&public)?;
        Ok(Srk {
            handle,
            public,
            name,
            persistent: false,
            kind,
        })
    }

    /// The key to salt sessions to.
    ///
    /// # Errors
    /// An SRK type the host cannot encrypt to.
    pub fn salt_key(&self) -> Result<SaltKey> {
        SaltKey::new(self.handle, &self.public)
    }

    /// Fails unless this SRK's Name is `pinned` (the Name recorded when the keys were
    /// made): a different Name means a different TPM, or a cleared one.
    ///
    /// # Errors
    /// [`Error::WrongTpm`].
    pub fn check_pinned(&self, pinned: &[u8]) -> Result<()> {
        if self.name == pinned {
            return Ok(());
        }
        Err(Error::WrongTpm(format!(
            "this TPM is not the one the keys belong to: its storage root key has Name {}, the keys were made under {} (another machine, or the TPM was cleared)",
            hex(&self.name),
            hex(pinned)
        )))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
