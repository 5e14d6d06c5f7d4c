//! The mechanism table (C_GetMechanismList, C_GetMechanismInfo) and the signing
//! mechanisms (PKCS#11 2.40 Current Mechanisms §2.3 ECDSA, §2.1.6-2.1.11 RSA
//! PKCS #1 v1.5 and PSS): how each becomes one TPM2_Sign — which scheme, which
//! hash, which digest, and how the TPM's signature is laid out for the caller.
//! Encryption and decryption are in [`super::crypt`], ECDH in [`super::ecdh`],
//! digests in [`super::digest`].

use cryptoki_sys::*;
use sha2::Digest;
use tpm_commands::constants::TpmAlgId;
use tpm_commands::structures::TpmtSignature;

use crate::crypto::hash::HashAlg;
use crate::keys::templates::KeyAlgorithm;

/// Why a signing request cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MechError {
    /// CKR_MECHANISM_INVALID: not a mechanism of this key type.
    Invalid,
    /// CKR_MECHANISM_PARAM_INVALID.
    ParamInvalid,
    /// CKR_DATA_LEN_RANGE: a digest of a size no hash has.
    DataLen,
    /// CKR_DATA_INVALID: input that is not a DigestInfo we know.
    DataInvalid,
    /// CKR_KEY_TYPE_INCONSISTENT: the mechanism is for another key type.
    KeyType,
}

/// Key families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// ECDSA keys.
    Ec,
    /// RSA keys.
    Rsa,
}

/// The family of a key algorithm.
pub fn family(alg: KeyAlgorithm) -> Family {
    match alg {
        KeyAlgorithm::Ecc256 | KeyAlgorithm::Ecc384 => Family::Ec,
        _ => Family::Rsa,
    }
}

/// Every mechanism the module offers, with the key family it works on.
pub const MECHANISMS: &[(CK_MECHANISM_TYPE, Family)] = &[
    (CKM_ECDSA, Family::Ec),
    (CKM_ECDSA_SHA1, Family::Ec),
    (CKM_ECDSA_SHA256, Family::Ec),
    (CKM_ECDSA_SHA384, Family::Ec),
    (CKM_ECDSA_SHA512, Family::Ec),
    (CKM_EC_KEY_PAIR_GEN, Family::Ec),
    (CKM_RSA_PKCS, Family::Rsa),
    (CKM_SHA1_RSA_PKCS, Family::Rsa),
    (CKM_SHA256_RSA_PKCS, Family::Rsa),
    (CKM_SHA384_RSA_PKCS, Family::Rsa),
    (CKM_SHA512_RSA_PKCS, Family::Rsa),
    (CKM_RSA_PKCS_PSS, Family::Rsa),
    (CKM_SHA256_RSA_PKCS_PSS, Family::Rsa),
    (CKM_SHA384_RSA_PKCS_PSS, Family::Rsa),
    (CKM_SHA512_RSA_PKCS_PSS, Family::Rsa),
    (CKM_RSA_PKCS_KEY_PAIR_GEN, Family::Rsa),
];

/// The mechanisms that do not sign: encryption, decryption, key derivation and
/// digests, with the key family they need (None: no key) and what they do.
pub const OTHER_MECHANISMS: &[(CK_MECHANISM_TYPE, Option<Family>, CK_FLAGS)] = &[
    (
        CKM_RSA_PKCS_OAEP,
        Some(Family::Rsa),
        CKF_ENCRYPT | CKF_DECRYPT,
    ),
    (CKM_ECDH1_DERIVE, Some(Family::Ec), CKF_DERIVE),
    (CKM_SHA_1, None, CKF_DIGEST),
    (CKM_SHA256, None, CKF_DIGEST),
    (CKM_SHA384, None, CKF_DIGEST),
    (CKM_SHA512, None, CKF_DIGEST),
];

/// C_GetMechanismList: every mechanism, signing ones first.
pub fn all() -> Vec<CK_MECHANISM_TYPE> {
    MECHANISMS
        .iter()
        .map(|(m, _)| *m)
        .chain(OTHER_MECHANISMS.iter().map(|(m, _, _)| *m))
        .collect()
}

/// The key sizes of a family among `algs` (bits for RSA, field bits for EC).
fn sizes(fam: Family, algs: &[KeyAlgorithm]) -> Option<(CK_ULONG, CK_ULONG)> {
    let bits = |a: &KeyAlgorithm| -> CK_ULONG {
        match a {
            KeyAlgorithm::Ecc256 => 256,
            KeyAlgorithm::Ecc384 => 384,
            KeyAlgorithm::Rsa2048 => 2048,
            KeyAlgorithm::Rsa3072 => 3072,
            KeyAlgorithm::Rsa4096 => 4096,
        }
    };
    let of_fam = algs.iter().filter(|a| family(**a) == fam);
    Some((of_fam.clone().map(bits).min()?, of_fam.map(bits).max()?))
}

/// C_GetMechanismInfo: (min key size, max key size, flags). Sizes are bits (RSA)
/// or field bits (EC), from the key algorithms this TPM makes (`algs`, as
/// TPM2_TestParms answered at `tpmkey init`; None: all of tpmkey's).
pub fn info_for(
    mech: CK_MECHANISM_TYPE,
    algs: Option<&[KeyAlgorithm]>,
) -> Option<(CK_ULONG, CK_ULONG, CK_FLAGS)> {
    let algs = algs.unwrap_or(&crate::tpm_facts::ALL_ALGORITHMS);
    let (fam, mut flags) = match MECHANISMS.iter().find(|(m, _)| *m == mech) {
        Some((_, fam)) => {
            let flags = match mech {
                CKM_EC_KEY_PAIR_GEN | CKM_RSA_PKCS_KEY_PAIR_GEN => CKF_GENERATE_KEY_PAIR,
                CKM_RSA_PKCS => CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT,
                _ => CKF_SIGN | CKF_VERIFY,
            };
            (Some(*fam), flags)
        }
        None => {
            let (_, fam, flags) = OTHER_MECHANISMS.iter().find(|(m, _, _)| *m == mech)?;
            (*fam, *flags)
        }
    };
    let Some(fam) = fam else {
        return Some((0, 0, flags));
    };
    let default = match fam {
        Family::Ec => (256, 384),
        Family::Rsa => (2048, 4096),
    };
    let (min, max) = sizes(fam, algs).unwrap_or(default);
    flags |= CKF_HW;
    if fam == Family::Ec {
        flags |= CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
    }
    Some((min, max, flags))
}

/// C_GetMechanismInfo with every key algorithm of tpmkey: see [`info_for`].
pub fn info(mech: CK_MECHANISM_TYPE) -> Option<(CK_ULONG, CK_ULONG, CK_FLAGS)> {
    info_for(mech, None)
}

/// The return value for a [`MechError`].
pub fn mech_rv_of(e: MechError) -> CK_RV {
    match e {
        MechError::Invalid => CKR_MECHANISM_INVALID,
        MechError::ParamInvalid => CKR_MECHANISM_PARAM_INVALID,
        MechError::DataLen => CKR_DATA_LEN_RANGE,
        MechError::DataInvalid => CKR_DATA_INVALID,
        MechError::KeyType => CKR_KEY_TYPE_INCONSISTENT,
    }
}

/// The hash a mechanism applies itself, if any.
fn builtin_hash(mech: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match mech {
        CKM_ECDSA_SHA1 | CKM_SHA1_RSA_PKCS => HashAlg::Sha1,
        CKM_ECDSA_SHA256 | CKM_SHA256_RSA_PKCS | CKM_SHA256_RSA_PKCS_PSS => HashAlg::Sha256,
        CKM_ECDSA_SHA384 | CKM_SHA384_RSA_PKCS | CKM_SHA384_RSA_PKCS_PSS => HashAlg::Sha384,
        CKM_ECDSA_SHA512 | CKM_SHA512_RSA_PKCS | CKM_SHA512_RSA_PKCS_PSS => HashAlg::Sha512,
        _ => return None,
    })
}

/// PSS parameters as the caller gave them (CK_RSA_PKCS_PSS_PARAMS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PssParams {
    /// CKM_SHA256, …
    pub hash: CK_MECHANISM_TYPE,
    /// CKG_MGF1_SHA256, …
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    /// Salt length in bytes.
    pub salt_len: CK_ULONG,
}

/// The MGF1 that goes with a hash (PKCS#11 Current Mechanisms §2.1.3).
pub(crate) fn mgf_of(h: HashAlg) -> CK_RSA_PKCS_MGF_TYPE {
    match h {
        HashAlg::Sha1 => CKG_MGF1_SHA1,
        HashAlg::Sha256 => CKG_MGF1_SHA256,
        HashAlg::Sha384 => CKG_MGF1_SHA384,
        HashAlg::Sha512 => CKG_MGF1_SHA512,
    }
}

/// A checked mechanism for one key, ready to take data.
#[derive(Clone, Debug)]
pub struct SignPlan {
    /// The mechanism.
    pub mech: CK_MECHANISM_TYPE,
    /// TPM_ALG_ECDSA, TPM_ALG_RSASSA or TPM_ALG_RSAPSS.
    pub scheme: TpmAlgId,
    /// The hash the mechanism applies, or None when the caller sends a digest.
    pub hashes: Option<HashAlg>,
    /// For PSS with a caller's digest: the hash the parameters name.
    pub pss_hash: Option<HashAlg>,
    /// Signature length in bytes.
    pub sig_len: usize,
    /// EC field size in bytes (r and s are padded to it).
    pub field_len: usize,
}

/// Checks `mech` (with its PSS parameters) against a key and says how to sign.
///
/// # Errors
/// [`MechError`] for a mechanism this key or module cannot do.
pub fn plan(
    mech: CK_MECHANISM_TYPE,
    pss: Option<PssParams>,
    alg: KeyAlgorithm,
    modulus_len: usize,
) -> Result<SignPlan, MechError> {
    let Some((_, fam)) = MECHANISMS.iter().find(|(m, _)| *m == mech) else {
        return Err(MechError::Invalid);
    };
    if mech == CKM_EC_KEY_PAIR_GEN || mech == CKM_RSA_PKCS_KEY_PAIR_GEN {
        return Err(MechError::Invalid);
    }
    if *fam != family(alg) {
        return Err(MechError::KeyType);
    }
    let field_len = match alg {
        KeyAlgorithm::Ecc256 => 32,
        KeyAlgorithm::Ecc384 => 48,
        _ => 0,
    };
    let sig_len = if *fam == Family::Ec {
        2 * field_len
    } else {
        modulus_len
    };
    let hashes = builtin_hash(mech);
    let is_pss = matches!(
        mech,
        CKM_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
    );
    let mut pss_hash = None;
    if is_pss {
        // The TPM's RSAPSS uses MGF1 with the signing hash and a salt as long as the
        // digest (Part 1 §B.7, FIPS 186-4 §5.5): only those parameters can be met.
        let p = pss.ok_or(MechError::ParamInvalid)?;
        let h = super::digest::hash_of(p.hash).ok_or(MechError::ParamInvalid)?;
        if hashes.is_some_and(|b| b != h)
            || p.mgf != mgf_of(h)
            || p.salt_len as usize != h.digest_size()
        {
            return Err(MechError::ParamInvalid);
        }
        pss_hash = Some(h);
    } else if pss.is_some() {
        return Err(MechError::ParamInvalid);
    }
    let scheme = match (*fam, is_pss) {
        (Family::Ec, _) => TpmAlgId::ECDSA,
        (Family::Rsa, false) => TpmAlgId::RSASSA,
        (Family::Rsa, true) => TpmAlgId::RSAPSS,
    };
    Ok(SignPlan {
        mech,
        scheme,
        hashes,
        pss_hash,
        sig_len,
        field_len,
    })
}

/// The DER prefix of a DigestInfo (RFC 8017 §9.2 note 1) for each hash.
fn digest_info_prefix(h: HashAlg) -> &'static [u8] {
    match h {
        HashAlg::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        HashAlg::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlg::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlg::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

const ALL_HASHES: [HashAlg; 4] = [
    HashAlg::Sha1,
    HashAlg::Sha256,
    HashAlg::Sha384,
    HashAlg::Sha512,
];

/// Splits a DER DigestInfo into its hash and digest. CKM_RSA_PKCS input is a
/// DigestInfo (OpenSSH sends one for rsa-sha2-256/512 and ssh-rsa); the TPM's
/// RSASSA adds the same DigestInfo itself, so the digest and hash are what it needs.
///
/// # Errors
/// [`MechError::DataInvalid`] for anything else (raw RSA is not possible through
/// TPM2_Sign).
pub fn parse_digest_info(data: &[u8]) -> Result<(HashAlg, &[u8]), MechError> {
    for h in ALL_HASHES {
        let prefix = digest_info_prefix(h);
        if data.len() == prefix.len() + h.digest_size() && data.starts_with(prefix) {
            return Ok((h, &data[prefix.len()..]));
        }
        // The same with the NULL parameters left out (RFC 8017 allows both).
        let mut short = prefix.to_vec();
        if short.len() > 14 {
            short.drain(short.len() - 4..short.len() - 2);
            short[1] -= 2;
            short[3] -= 2;
            if data.len() == short.len() + h.digest_size() && data.starts_with(&short) {
                return Ok((h, &data[short.len()..]));
            }
        }
    }
    Err(MechError::DataInvalid)
}

/// The hash whose digest size is `len` (for CKM_ECDSA, where the caller hashed).
fn hash_by_len(len: usize) -> Option<HashAlg> {
    ALL_HASHES.into_iter().find(|h| h.digest_size() == len)
}

/// An incremental hash for C_SignUpdate, or the collected raw input.
pub enum Input {
    /// The caller's digest or DigestInfo, collected.
    Raw(Vec<u8>),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

/// The largest raw input kept (a SHA-512 DigestInfo is 83 bytes).
const MAX_RAW: usize = 1024;

impl Input {
    /// Empty input for a plan.
    pub fn new(plan: &SignPlan) -> Input {
        match plan.hashes {
            None => Input::Raw(Vec::new()),
            Some(HashAlg::Sha1) => Input::Sha1(sha1::Sha1::new()),
            Some(HashAlg::Sha256) => Input::Sha256(sha2::Sha256::new()),
            Some(HashAlg::Sha384) => Input::Sha384(sha2::Sha384::new()),
            Some(HashAlg::Sha512) => Input::Sha512(sha2::Sha512::new()),
        }
    }

    /// Adds data.
    ///
    /// # Errors
    /// [`MechError::DataLen`] when raw input grows past any digest's size.
    pub fn update(&mut self, data: &[u8]) -> Result<(), MechError> {
        match self {
            Input::Raw(v) => {
                if v.len() + data.len() > MAX_RAW {
                    return Err(MechError::DataLen);
                }
                v.extend_from_slice(data);
            }
            Input::Sha1(h) => h.update(data),
            Input::Sha256(h) => h.update(data),
            Input::Sha384(h) => h.update(data),
            Input::Sha512(h) => h.update(data),
        }
        Ok(())
    }

    /// What TPM2_Sign gets: (hash alg, digest).
    ///
    /// # Errors
    /// Raw input that is not a digest (ECDSA, PSS) or DigestInfo (RSA PKCS #1).
    pub fn finish(self, plan: &SignPlan) -> Result<(HashAlg, Vec<u8>), MechError> {
        Ok(match self {
            Input::Sha1(h) => (HashAlg::Sha1, h.finalize().to_vec()),
            Input::Sha256(h) => (HashAlg::Sha256, h.finalize().to_vec()),
            Input::Sha384(h) => (HashAlg::Sha384, h.finalize().to_vec()),
            Input::Sha512(h) => (HashAlg::Sha512, h.finalize().to_vec()),
            Input::Raw(v) => match plan.scheme {
                TpmAlgId::RSASSA => {
                    let (h, d) = parse_digest_info(&v)?;
                    (h, d.to_vec())
                }
                TpmAlgId::RSAPSS => {
                    let h = plan.pss_hash.ok_or(MechError::ParamInvalid)?;
                    if v.len() != h.digest_size() {
                        return Err(MechError::DataLen);
                    }
                    (h, v)
                }
                _ => {
                    let h = hash_by_len(v.len()).ok_or(MechError::DataLen)?;
                    (h, v)
                }
            },
        })
    }
}

/// Lays the TPM's signature out as PKCS#11 does: r || s, each left-padded to the
/// field size, for ECDSA (§2.3.1); the signature itself for RSA
/// ([`crate::keys::signature::layout`]).
///
/// # Errors
/// A signature of the wrong kind or size (a hostile or broken TPM).
pub fn format_signature(sig: &TpmtSignature, plan: &SignPlan) -> Result<Vec<u8>, &'static str> {
    let len = if plan.scheme == TpmAlgId::ECDSA {
        plan.field_len
    } else {
        plan.sig_len
    };
    crate::keys::signature::layout(sig, plan.scheme, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_plan(mech: CK_MECHANISM_TYPE, alg: KeyAlgorithm) -> SignPlan {
        plan(mech, None, alg, 256).unwrap()
    }

    #[test]
    fn digest_info_round_trip_for_every_hash() {
        for h in ALL_HASHES {
            let digest = vec![0xab; h.digest_size()];
            let mut di = digest_info_prefix(h).to_vec();
            di.extend_from_slice(&digest);
            assert_eq!(parse_digest_info(&di).unwrap(), (h, &digest[..]));
            // One byte short, one byte long, or a changed OID byte: refused.
            assert!(parse_digest_info(&di[..di.len() - 1]).is_err());
            let mut long = di.clone();
            long.push(0);
            assert!(parse_digest_info(&long).is_err());
            let mut bad = di.clone();
            bad[8] ^= 1;
            assert!(parse_digest_info(&bad).is_err());
        }
    }

    #[test]
    fn digest_info_without_null_parameters() {
        // SHA-256 DigestInfo with the NULL omitted: 30 2f 30 0b 06 09 <oid> 04 20.
        let mut di = vec![
            0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x04, 0x20,
        ];
        di.extend_from_slice(&[7; 32]);
        assert_eq!(parse_digest_info(&di).unwrap().0, HashAlg::Sha256);
    }

    #[test]
    fn digest_info_matches_the_rsa_crate() {
        // rsa's Pkcs1v15Sign::new::<Sha384>() carries the same prefix.
        let p = rsa::Pkcs1v15Sign::new::<sha2::Sha384>();
        assert_eq!(p.prefix.as_ref(), digest_info_prefix(HashAlg::Sha384));
        let p = rsa::Pkcs1v15Sign::new::<sha2::Sha512>();
        assert_eq!(p.prefix.as_ref(), digest_info_prefix(HashAlg::Sha512));
        let p = rsa::Pkcs1v15Sign::new::<sha1::Sha1>();
        assert_eq!(p.prefix.as_ref(), digest_info_prefix(HashAlg::Sha1));
    }

    #[test]
    fn ecdsa_raw_digest_picks_hash_by_size() {
        let p = sha256_plan(CKM_ECDSA, KeyAlgorithm::Ecc256);
        for (len, h) in [
            (20, HashAlg::Sha1),
            (32, HashAlg::Sha256),
            (48, HashAlg::Sha384),
        ] {
            let mut i = Input::new(&p);
            i.update(&vec![1; len]).unwrap();
            assert_eq!(i.finish(&p).unwrap().0, h);
        }
        let mut i = Input::new(&p);
        i.update(&[1; 33]).unwrap();
        assert_eq!(i.finish(&p).unwrap_err(), MechError::DataLen);
        let mut i = Input::new(&p);
        assert_eq!(i.update(&[0; 2000]).unwrap_err(), MechError::DataLen);
    }

    #[test]
    fn hashing_mechanisms_hash_in_parts() {
        let p = sha256_plan(CKM_ECDSA_SHA256, KeyAlgorithm::Ecc384);
        let mut i = Input::new(&p);
        i.update(b"hello ").unwrap();
        i.update(b"world").unwrap();
        let (h, d) = i.finish(&p).unwrap();
        assert_eq!(h, HashAlg::Sha256);
        assert_eq!(d, HashAlg::Sha256.hash(&[b"hello world"]));
        assert_eq!(p.sig_len, 96);
    }

    #[test]
    fn key_type_and_params_are_checked() {
        assert_eq!(
            plan(CKM_ECDSA, None, KeyAlgorithm::Rsa2048, 256).unwrap_err(),
            MechError::KeyType
        );
        assert_eq!(
            plan(CKM_RSA_PKCS, None, KeyAlgorithm::Ecc256, 0).unwrap_err(),
            MechError::KeyType
        );
        assert_eq!(
            plan(CKM_AES_CBC, None, KeyAlgorithm::Ecc256, 0).unwrap_err(),
            MechError::Invalid
        );
        assert_eq!(
            plan(CKM_RSA_PKCS_PSS, None, KeyAlgorithm::Rsa2048, 256).unwrap_err(),
            MechError::ParamInvalid
        );
        let good = PssParams {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            salt_len: 32,
        };
        assert!(plan(CKM_RSA_PKCS_PSS, Some(good), KeyAlgorithm::Rsa2048, 256).is_ok());
        assert!(plan(
            CKM_SHA256_RSA_PKCS_PSS,
            Some(good),
            KeyAlgorithm::Rsa2048,
            256
        )
        .is_ok());
        for bad in [
            PssParams {
                salt_len: 20,
                ..good
            },
            PssParams {
                mgf: CKG_MGF1_SHA1,
                ..good
            },
            PssParams {
                hash: CKM_MD5,
                ..good
            },
        ] {
            assert_eq!(
                plan(CKM_RSA_PKCS_PSS, Some(bad), KeyAlgorithm::Rsa2048, 256).unwrap_err(),
                MechError::ParamInvalid
            );
        }
        assert_eq!(
            plan(
                CKM_SHA384_RSA_PKCS_PSS,
                Some(good),
                KeyAlgorithm::Rsa2048,
                256
            )
            .unwrap_err(),
            MechError::ParamInvalid
        );
    }

    #[test]
    fn mechanism_info_follows_what_the_tpm_makes() {
        // swtpm 0.7 makes no RSA-4096 keys: TestParms said so at init.
        let algs = [
            KeyAlgorithm::Ecc256,
            KeyAlgorithm::Ecc384,
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa3072,
        ];
        let (min, max, flags) = info_for(CKM_RSA_PKCS_KEY_PAIR_GEN, Some(&algs)).unwrap();
        assert_eq!((min, max), (2048, 3072));
        assert_eq!(flags, CKF_HW | CKF_GENERATE_KEY_PAIR);
        let (_, max, _) = info_for(CKM_RSA_PKCS_KEY_PAIR_GEN, None).unwrap();
        assert_eq!(max, 4096);
        let (_, _, flags) = info_for(CKM_RSA_PKCS, Some(&algs)).unwrap();
        assert_eq!(
            flags,
            CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT
        );
        let (min, max, flags) = info_for(CKM_ECDH1_DERIVE, Some(&algs[..1])).unwrap();
        assert_eq!((min, max), (256, 256));
        assert!(flags & CKF_DERIVE != 0 && flags & CKF_EC_NAMEDCURVE != 0);
        assert_eq!(info_for(CKM_SHA256, Some(&algs)), Some((0, 0, CKF_DIGEST)));
        assert_eq!(info_for(CKM_RSA_X_509, Some(&algs)), None);
        assert!(all().contains(&CKM_RSA_PKCS_OAEP) && all().contains(&CKM_SHA512));
    }

    #[test]
    fn ecdsa_signature_is_padded_r_then_s() {
        use tpm_commands::buffers::Tpm2bEccParameter;
        let p = sha256_plan(CKM_ECDSA, KeyAlgorithm::Ecc256);
        let sig = TpmtSignature::Ecc {
            scheme: TpmAlgId::ECDSA,
            hash: TpmAlgId::SHA256,
            r: Tpm2bEccParameter::new(vec![1; 31]).unwrap(),
            s: Tpm2bEccParameter::new(vec![2; 32]).unwrap(),
        };
        let out = format_signature(&sig, &p).unwrap();
        assert_eq!(out.len(), 64);
        assert_eq!(out[0], 0);
        assert_eq!(&out[1..32], &[1; 31]);
        assert_eq!(&out[32..], &[2; 32]);
        let big = TpmtSignature::Ecc {
            scheme: TpmAlgId::ECDSA,
            hash: TpmAlgId::SHA256,
            r: Tpm2bEccParameter::new(vec![1; 33]).unwrap(),
            s: Tpm2bEccParameter::new(vec![2; 32]).unwrap(),
        };
        assert!(format_signature(&big, &p).is_err());
        assert!(format_signature(&TpmtSignature::Null, &p).is_err());
    }
}
