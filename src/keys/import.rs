//! Importing an existing private key into the TPM (Part 3 §13.3 TPM2_Import) with a
//! real outer wrapper: a fresh seed encrypted to the pinned SRK ("DUPLICATE"), the
//! sensitive area encrypted with the "STORAGE" key and protected by the "INTEGRITY"
//! HMAC. Nothing is fixed or reused (CVE-2021-3565 was a fixed wrapping key).

use rand_core::{OsRng, RngCore};
use tpm_commands::attributes::TpmaObject;
use tpm_commands::buffers::{
    Tpm2bAuth, Tpm2bData, Tpm2bDigest, Tpm2bEccParameter, Tpm2bEccPrivate, Tpm2bEncryptedSecret,
    Tpm2bPrivate, Tpm2bPrivateKeyRsa, Tpm2bPublicKeyRsa,
};
use tpm_commands::codec::Marshal;
use tpm_commands::commands::Import;
use tpm_commands::structures::{
    PublicParams, SensitiveComposite, Tpm2bPublic, Tpm2bSensitive, TpmsEccPoint, TpmtPublic,
    TpmtSensitive, TpmtSymDef,
};
use zeroize::Zeroizing;

use super::ops::WrappedKey;
use super::public::{object_name, SaltKey};
use super::srk::Srk;
use super::templates::{key_template, KeyAlgorithm, KeyUsage};
use crate::crypto::duplicate::outer_wrap;
use crate::crypto::hash::HashAlg;
use crate::crypto::secret;
use crate::error::{Error, Result};
use crate::session::AuthSession;
use crate::tpm::{Auth, Tpm};

/// An existing private key, in the parts the TPM needs.
pub enum PrivateKey {
    /// ECC: the private scalar and the public point, fixed-width.
    Ecc {
        /// P-256 or P-384.
        alg: KeyAlgorithm,
        /// The private scalar.
        d: Zeroizing<Vec<u8>>,
        /// Public x.
        x: Vec<u8>,
        /// Public y.
        y: Vec<u8>,
    },
    /// RSA: modulus, public exponent and one prime.
    Rsa {
        /// RSA 2048, 3072 or 4096.
        alg: KeyAlgorithm,
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: u32,
        /// One prime factor.
        p: Zeroizing<Vec<u8>>,
    },
}

/// Imported objects: the TPM did not make the key, and it can move between parents
/// only under its own policy, so fixedTPM, fixedParent and sensitiveDataOrigin are
/// clear (Part 1 §23.3.2 requires fixedTPM and fixedParent clear for Import);
/// `sign` and `decrypt` as `usage` says.
fn imported_attributes(usage: KeyUsage, no_da: bool) -> TpmaObject {
    let mut a = TpmaObject::USER_WITH_AUTH | usage.attributes();
    if no_da {
        a |= TpmaObject::NO_DA;
    }
    a
}

fn public_area(key: &PrivateKey, usage: KeyUsage, no_da: bool) -> Result<TpmtPublic> {
    let (alg, unique_params) = match key {
        PrivateKey::Ecc { alg, x, y, .. } => (*alg, Some((x, y))),
        PrivateKey::Rsa { alg, .. } => (*alg, None),
    };
    let mut public = key_template(alg, usage, no_da);
    public.object_attributes = imported_attributes(usage, no_da);
    match (&mut public.params, key, unique_params) {
        (PublicParams::Ecc { unique, .. }, _, Some((x, y))) => {
            *unique = TpmsEccPoint {
                x: Tpm2bEccParameter::new(x.clone())?,
                y: Tpm2bEccParameter::new(y.clone())?,
            };
        }
        (PublicParams::Rsa { unique, parms }, PrivateKey::Rsa { n, e, .. }, _) => {
            *unique = Tpm2bPublicKeyRsa::new(n.clone())?;
            parms.exponent = if *e == 65537 { 0 } else { *e };
        }
        _ => {
            return Err(Error::Usage(
                "key algorithm does not match the key material".into(),
            ))
        }
    }
    Ok(public)
}

/// Imports `key` under the SRK with authValue `auth` (empty: no PIN, noDA). The
/// session (salted to the SRK) authorizes the SRK; the private key travels only
/// inside the outer wrapper, whose seed only this TPM's SRK can recover.
///
/// # Errors
/// Host crypto or TPM errors (TPM_RC_INTEGRITY if the wrapper is wrong).
pub fn import_key(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    key: &PrivateKey,
    auth: &[u8],
) -> Result<WrappedKey> {
    import_key_for(tpm, srk, session, key, KeyUsage::SIGN, auth)
}

/// [`import_key`] for a key that may do what `usage` says (the TPM object's
/// `sign` and `decrypt` attributes follow it).
///
/// # Errors
/// As [`import_key`].
pub fn import_key_for(
    tpm: &mut Tpm,
    srk: &Srk,
    session: &mut AuthSession,
    key: &PrivateKey,
    usage: KeyUsage,
    auth: &[u8],
) -> Result<WrappedKey> {
    let public = public_area(key, usage, auth.is_empty())?;
    let name = object_name(&public)?;
    let sensitive = TpmtSensitive {
        auth_value: Tpm2bAuth::new(auth.to_vec())?,
        seed_value: Tpm2bDigest::empty(),
        sensitive: match key {
            PrivateKey::Ecc { d, .. } => SensitiveComposite::Ecc(Tpm2bEccPrivate::new(d.to_vec())?),
            PrivateKey::Rsa { p, .. } => {
                SensitiveComposite::Rsa(Tpm2bPrivateKeyRsa::new(p.to_vec())?)
            }
        },
    };
    let sensitive_bytes = Zeroizing::new(Tpm2bSensitive::new(sensitive).to_bytes()?);

    let parent_alg = HashAlg::from_alg_id(srk.public.name_alg.0)
        .ok_or_else(|| Error::Crypto("SRK nameAlg".into()))?;
    let sym_bits = match &srk.public.params {
        PublicParams::Ecc { parms, .. } => parms.symmetric,
        PublicParams::Rsa { parms, .. } => parms.symmetric,
        _ => TpmtSymDef::Null,
    };
    let TpmtSymDef::Cipher { key_bits, .. } = sym_bits else {
        return Err(Error::Crypto("the SRK has no symmetric key".into()));
    };
    let crypto_err = |e: crate::crypto::CryptoError| Error::Crypto(e.to_string());
    let (seed, in_sym_seed) = match srk.salt_key()? {
        SaltKey::Ecc {
            curve,
            x,
            y,
            name_alg,
            ..
        } => {
            let (seed, ex, ey) =
                secret::ecc_encapsulate(curve, &x, &y, name_alg, b"DUPLICATE", &mut OsRng)
                    .map_err(crypto_err)?;
            (seed, secret::ecc_point_bytes(&ex, &ey))
        }
        SaltKey::Rsa {
            modulus,
            exponent,
            name_alg,
            ..
        } => {
            let mut seed = Zeroizing::new(vec![0u8; name_alg.digest_size()]);
            OsRng.fill_bytes(&mut seed);
            let enc = secret::rsa_encapsulate(
                &modulus,
                exponent,
                name_alg,
                b"DUPLICATE\0",
                &seed,
                &mut OsRng,
            )
            .map_err(crypto_err)?;
            (seed, enc)
        }
    };
    let duplicate =
        outer_wrap(parent_alg, key_bits, &seed, &name, &sensitive_bytes).map_err(crypto_err)?;

    let cmd = Import {
        parent_handle: srk.handle,
        encryption_key: Tpm2bData::empty(),
        object_public: Tpm2bPublic::new(public.clone()),
        duplicate: Tpm2bPrivate::new(duplicate)?,
        in_sym_seed: Tpm2bEncryptedSecret::new(in_sym_seed)?,
        symmetric_alg: TpmtSymDef::Null,
    };
    let rsp = tpm.execute(&cmd, &[&srk.name], &mut [Auth::Session(session, &[])])?;
    Ok(WrappedKey {
        private: rsp.out_private,
        public,
    })
}
