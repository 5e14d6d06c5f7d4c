//! Creating, loading and using signing keys (Part 3 §12.2 Create, §12.3 Load,
//! §20.2 Sign). Every command that carries an authValue runs in a salted session:
//! Create with `decrypt` (inSensitive holds the new authValue), Sign authorized by
//! an HMAC over the key's authValue (never the value itself).

use tpm_commands::attributes::TpmaSession;
use tpm_commands::buffers::{Tpm2bAuth, Tpm2bData, Tpm2bDigest, Tpm2bPrivate, Tpm2bSensitiveData};
use tpm_commands::commands::{Create, Load, Sign};
use tpm_commands::constants::{TpmAlgId, TpmHandle};
use tpm_commands::structures::{
    PublicParams, Tpm2bPublic, Tpm2bSensitiveCreate, TpmlPcrSelection, TpmsSensitiveCreate,
    TpmtPublic, TpmtScheme, TpmtSignature, TpmtTicket,
};

use super::public::object_name;
use super::srk::Srk;
use super::templates::{signing_template, KeyAlgorithm};
use crate::error::{Error, Result};
use crate::progress;
use crate::session::AuthSession;
use crate::tpm::{Auth, Tpm};

/// A key made by the TPM and wrapped to the SRK: safe to store on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// The TPM-wrapped private area.
    pub private: Tpm2bPrivate,
    /// The public area.
    pub public: TpmtPublic,
}

/// A loaded key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedKey {
    /// Its transient handle.
    pub handle: TpmHandle,
    /// Its Name (computed from the public area).
    pub name: Vec<u8>,
    /// Its public area.
    pub public: TpmtPublic,
}

fn with_attrs(session: &mut AuthSession, attrs: TpmaSession) {
    session.set_attributes(TpmaSession::CONTINUE_SESSION | attrs);
}

/// Creates a signing key under the SRK with authValue `auth` (empty for none, then
/// marked noDA). `session` must be salted; inSensitive goes encrypted.
///
/// # Errors
/// Transport or TPM errors.
pub fn create_key(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    alg: KeyAlgorithm,
    auth: &[u8],
) -> Result<WrappedKey> {
    create_key_with(
        tpm,
        srk,
        session,
        signing_template(alg, auth.is_empty()),
        auth,
    )
}

/// Creates a key under the SRK from `public` (see
/// [`super::templates::key_template`] for keys that sign, decrypt or do ECDH)
/// with authValue `auth`. `session` must be salted; inSensitive goes encrypted.
///
/// # Errors
/// Transport or TPM errors (TPM_RC_ATTRIBUTES for attributes the TPM refuses).
pub fn create_key_with(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    public: TpmtPublic,
    auth: &[u8],
) -> Result<WrappedKey> {
    let sensitive = TpmsSensitiveCreate {
        user_auth: Tpm2bAuth::new(auth.to_vec())?,
        data: Tpm2bSensitiveData::empty(),
    };
    // RSA key generation (prime search) is the slow one on hardware TPMs.
    let _step = match &public.params {
        PublicParams::Rsa { parms, .. } => Some(progress::step(|| {
            format!(
                "creating an RSA-{} key in the TPM (hardware TPMs take up to a minute)",
                parms.key_bits
            )
        })),
        _ => None,
    };
    create_under_srk(tpm, srk, session, sensitive, public)
}

/// TPM2_Create under the SRK with inSensitive encrypted (`decrypt`): it carries the
/// new object's authValue and, for sealed objects, the secret.
fn create_under_srk(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    sensitive: TpmsSensitiveCreate,
    public: TpmtPublic,
) -> Result<WrappedKey> {
    let cmd = Create {
        parent_handle: srk.handle,
        in_sensitive: Tpm2bSensitiveCreate::new(sensitive),
        in_public: Tpm2bPublic::new(public),
        outside_info: Tpm2bData::empty(),
        creation_pcr: TpmlPcrSelection::default(),
    };
    with_attrs(session, TpmaSession::DECRYPT);
    let rsp = tpm.execute(&cmd, &[&srk.name], &mut [Auth::Session(session, &[])]);
    with_attrs(session, TpmaSession::empty());
    let rsp = rsp?;
    let public = rsp.out_public.0.ok_or(Error::Integrity {
        cc: tpm_commands::constants::TpmCc::CREATE,
        what: "no public area",
    })?;
    Ok(WrappedKey {
        private: rsp.out_private,
        public,
    })
}

/// Loads a wrapped key under the SRK.
///
/// # Errors
/// Transport or TPM errors; TPM_RC_INTEGRITY for a blob of another SRK.
pub fn load_key(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    key: &WrappedKey,
) -> Result<LoadedKey> {
    load_key_with(tpm, srk, Auth::Session(session, &[]), key)
}

/// Loads a wrapped key under the SRK with the given authorization of the SRK
/// (its authValue is empty: [`Auth::EmptyPassword`] sends nothing secret and
/// needs no session).
///
/// # Errors
/// Transport or TPM errors; TPM_RC_INTEGRITY for a blob of another SRK.
pub fn load_key_with(
    tpm: &mut Tpm,
    srk: &Srk,
    parent_auth: Auth<'_>,
    key: &WrappedKey,
) -> Result<LoadedKey> {
    let cmd = Load {
        parent_handle: srk.handle,
        in_private: key.private.clone(),
        in_public: Tpm2bPublic::new(key.public.clone()),
    };
    let rsp = tpm.execute(&cmd, &[&srk.name], &mut [parent_auth])?;
    let name = object_name(&key.public)?;
    if name != rsp.name.as_bytes() {
        // Not the key asked for: do not leave it in a slot.
        let _ = tpm.flush(rsp.object_handle);
        return Err(Error::Integrity {
            cc: tpm_commands::constants::TpmCc::LOAD,
            what: "loaded key's Name does not match its public area",
        });
    }
    Ok(LoadedKey {
        handle: rsp.object_handle,
        name,
        public: key.public.clone(),
    })
}

/// Signs `digest` with a loaded key, authorized through `session` with the key's
/// authValue (one TPM command).
///
/// # Errors
/// Transport or TPM errors; TPM_RC_AUTH_FAIL for a wrong authValue.
pub fn sign(
    tpm: &mut Tpm,
    key: &LoadedKey,
    session: &mut AuthSession,
    auth: &[u8],
    digest: &[u8],
    scheme: TpmAlgId,
    hash: TpmAlgId,
) -> Result<TpmtSignature> {
    sign_with(tpm, key, Auth::Session(session, auth), digest, scheme, hash)
}

/// Signs `digest` with a loaded key under the given authorization: a session
/// with the key's authValue, or [`Auth::EmptyPassword`] for a key whose authValue
/// is empty (nothing secret to protect, so no session is needed).
///
/// # Errors
/// Transport or TPM errors; TPM_RC_AUTH_FAIL for a wrong authValue.
pub fn sign_with(
    tpm: &mut Tpm,
    key: &LoadedKey,
    auth: Auth<'_>,
    digest: &[u8],
    scheme: TpmAlgId,
    hash: TpmAlgId,
) -> Result<TpmtSignature> {
    let cmd = Sign {
        key_handle: key.handle,
        digest: Tpm2bDigest::new(digest.to_vec())?,
        in_scheme: TpmtScheme::with_hash(scheme, hash),
        validation: TpmtTicket::null_hashcheck(),
    };
    Ok(tpm.execute(&cmd, &[&key.name], &mut [auth])?.signature)
}

/// Asks the TPM whether it supports a key algorithm and size (Part 3 §30.3
/// TPM2_TestParms). `Ok(false)` when it answers that it does not.
///
/// # Errors
/// Transport errors and TPM errors other than "unsupported".
pub fn supports(tpm: &mut Tpm, alg: KeyAlgorithm) -> Result<bool> {
    use tpm_commands::commands::TestParms;
    use tpm_commands::structures::{PublicParams, TpmtPublicParms};
    let parameters = match signing_template(alg, false).params {
        PublicParams::Rsa { parms, .. } => TpmtPublicParms::Rsa(parms),
        PublicParams::Ecc { parms, .. } => TpmtPublicParms::Ecc(parms),
        _ => return Ok(false),
    };
    match tpm.run(&TestParms { parameters }) {
        Ok(_) => Ok(true),
        Err(Error::Tpm { rc, .. }) => {
            use tpm_commands::rc::ResponseCode as Rc;
            if matches!(
                rc.base(),
                Rc::VALUE | Rc::KEY_SIZE | Rc::CURVE | Rc::ASYMMETRIC | Rc::SCHEME | Rc::TYPE
            ) {
                Ok(false)
            } else {
                Err(Error::Tpm {
                    cc: tpm_commands::constants::TpmCc::TEST_PARMS,
                    rc,
                })
            }
        }
        Err(e) => Err(e),
    }
}

/// Seals `secret` under the SRK (a keyed-hash object with no sign/decrypt use):
/// with authValue `auth` and, when `policy` is given, that authPolicy (then
/// userWithAuth is clear, so only the policy can unseal); `noDA` exactly when
/// `auth` is empty. Goes in a salted session
/// with `decrypt`: the secret and the authValue never cross the bus in clear.
///
/// # Errors
/// Transport or TPM errors; a secret over 128 bytes.
pub fn seal(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    secret: &[u8],
    auth: &[u8],
    policy: Option<&[u8]>,
) -> Result<WrappedKey> {
    use tpm_commands::attributes::TpmaObject;
    use tpm_commands::structures::PublicParams;
    let mut attrs = TpmaObject::FIXED_TPM | TpmaObject::FIXED_PARENT;
    if policy.is_none() {
        attrs |= TpmaObject::USER_WITH_AUTH;
    }
    if auth.is_empty() {
        // No authValue: nothing to guess, so no dictionary-attack protection
        // (a lockout caused by someone else must not block a PCR-only unseal).
        attrs |= TpmaObject::NO_DA;
    }
    let public = TpmtPublic {
        name_alg: TpmAlgId::SHA256,
        object_attributes: attrs,
        auth_policy: Tpm2bDigest::new(policy.unwrap_or_default().to_vec())?,
        params: PublicParams::KeyedHash {
            scheme: TpmtScheme::Null,
            unique: Tpm2bDigest::empty(),
        },
    };
    let sensitive = TpmsSensitiveCreate {
        user_auth: Tpm2bAuth::new(auth.to_vec())?,
        data: Tpm2bSensitiveData::new(secret.to_vec())?,
    };
    create_under_srk(tpm, srk, session, sensitive, public)
}

/// Unseals a loaded sealed object through `session` (HMAC or satisfied policy
/// session) with `encrypt`: the secret comes back encrypted on the bus.
///
/// # Errors
/// Transport or TPM errors (TPM_RC_POLICY_FAIL when the policy is not met).
pub fn unseal(
    tpm: &mut Tpm,
    object: &LoadedKey,
    session: &mut AuthSession,
    auth: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    use tpm_commands::commands::Unseal;
    let keep = session.attributes();
    session.set_attributes(keep | TpmaSession::ENCRYPT);
    let rsp = tpm.execute(
        &Unseal {
            item_handle: object.handle,
        },
        &[&object.name],
        &mut [Auth::Session(session, auth)],
    );
    session.set_attributes(keep);
    Ok(zeroize::Zeroizing::new(rsp?.out_data.as_bytes().to_vec()))
}

/// Changes a loaded object's authValue (Part 3 §12.8 TPM2_ObjectChangeAuth); the
/// new authValue goes encrypted (`decrypt`), the old one is proven by HMAC. Returns
/// the new private area (the old one still loads with the old authValue).
///
/// # Errors
/// Transport or TPM errors.
pub fn change_auth(
    tpm: &mut Tpm,
    srk: &Srk,
    object: &LoadedKey,
    session: &mut AuthSession,
    old_auth: &[u8],
    new_auth: &[u8],
) -> Result<WrappedKey> {
    use tpm_commands::commands::ObjectChangeAuth;
    let cmd = ObjectChangeAuth {
        object_handle: object.handle,
        parent_handle: srk.handle,
        new_auth: Tpm2bAuth::new(new_auth.to_vec())?,
    };
    with_attrs(session, TpmaSession::DECRYPT);
    let rsp = tpm.execute(
        &cmd,
        &[&object.name, &srk.name],
        &mut [Auth::Session(session, old_auth)],
    );
    with_attrs(session, TpmaSession::empty());
    Ok(WrappedKey {
        private: rsp?.out_private,
        public: object.public.clone(),
    })
}
