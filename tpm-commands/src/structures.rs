//! Structures and unions (Part 2 §10–§15). Unions are Rust enums keyed by their
//! selector: unmarshalling reads the selector and picks the variant; marshalling
//! derives the selector from the variant, so the two cannot disagree.
//!
//! Irregular shapes written by hand here: TPMT_PUBLIC (one selector, two unions),
//! TPMT_SENSITIVE (selector, two TPM2Bs, then the union), TPMT_SYM_DEF (NULL has no
//! key bits or mode), TPMS_PCR_SELECT (one-byte size), TPMT_HA (size from the hash).

use crate::attributes::{TpmaAlgorithm, TpmaObject};
use crate::buffers::*;
use crate::codec::{ErrorKind, Marshal, Reader, Unmarshal, UnmarshalError, Writer};
use crate::constants::{TpmAlgId, TpmCap, TpmCc, TpmEccCurve, TpmHandle, TpmPt, TpmSt};

/// Digest size of a hash algorithm (Part 2 §10.3.1 TPMU_HA), `None` for others.
pub fn digest_size(alg: TpmAlgId) -> Option<usize> {
    match alg {
        TpmAlgId::SHA1 => Some(20),
        TpmAlgId::SHA256 | TpmAlgId::SM3_256 | TpmAlgId::SHA3_256 => Some(32),
        TpmAlgId::SHA384 | TpmAlgId::SHA3_384 => Some(48),
        TpmAlgId::SHA512 | TpmAlgId::SHA3_512 => Some(64),
        _ => None,
    }
}

fn bad_selector(r: &Reader<'_>, ty: &'static str, v: u32) -> UnmarshalError {
    r.error(ty, ErrorKind::BadSelector { value: v })
}

/// TPMT_HA (Part 2 §10.3.2): a hash algorithm and a digest of its size.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TpmtHa {
    /// The hash algorithm.
    pub hash_alg: TpmAlgId,
    /// The digest (exactly the algorithm's size; empty for TPM_ALG_NULL).
    pub digest: Vec<u8>,
}

impl Marshal for TpmtHa {
    fn marshal(&self, w: &mut Writer) {
        self.hash_alg.marshal(w);
        w.bytes(&self.digest);
    }
}

impl Unmarshal for TpmtHa {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        let hash_alg = TpmAlgId::unmarshal(r)?;
        let size = match hash_alg {
            TpmAlgId::NULL => 0,
            a => digest_size(a).ok_or_else(|| bad_selector(&at, "TPMT_HA", u32::from(a.0)))?,
        };
        Ok(TpmtHa {
            hash_alg,
            digest: r.take(size, "TPMT_HA")?.to_vec(),
        })
    }
}

/// TPMT_SYM_DEF and TPMT_SYM_DEF_OBJECT (Part 2 §11.1.6, §11.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TpmtSymDef {
    /// TPM_ALG_NULL: no key bits, no mode.
    #[default]
    Null,
    /// TPM_ALG_XOR with its hash (TPMT_SYM_DEF only).
    Xor {
        /// The hash for the XOR mask.
        hash: TpmAlgId,
    },
    /// A block cipher (AES, SM4, CAMELLIA) with key size and mode.
    Cipher {
        /// The cipher.
        algorithm: TpmAlgId,
        /// Key size in bits.
        key_bits: u16,
        /// The mode (TPM_ALG_CFB for sessions and storage keys).
        mode: TpmAlgId,
    },
}

impl TpmtSymDef {
    /// AES in CFB mode with `key_bits` (what storage keys and sessions use).
    pub fn aes_cfb(key_bits: u16) -> Self {
        TpmtSymDef::Cipher {
            algorithm: TpmAlgId::AES,
            key_bits,
            mode: TpmAlgId::CFB,
        }
    }
}

/// TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7): same wire shape as TPMT_SYM_DEF.
pub type TpmtSymDefObject = TpmtSymDef;

impl Marshal for TpmtSymDef {
    fn marshal(&self, w: &mut Writer) {
        match *self {
            TpmtSymDef::Null => TpmAlgId::NULL.marshal(w),
            TpmtSymDef::Xor { hash } => {
                TpmAlgId::XOR.marshal(w);
                hash.marshal(w);
            }
            TpmtSymDef::Cipher {
                algorithm,
                key_bits,
                mode,
            } => {
                algorithm.marshal(w);
                w.u16(key_bits);
                mode.marshal(w);
            }
        }
    }
}

impl Unmarshal for TpmtSymDef {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        match TpmAlgId::unmarshal(r)? {
            TpmAlgId::NULL => Ok(TpmtSymDef::Null),
            TpmAlgId::XOR => Ok(TpmtSymDef::Xor {
                hash: TpmAlgId::unmarshal(r)?,
            }),
            a @ (TpmAlgId::AES | TpmAlgId::SM4 | TpmAlgId::CAMELLIA | TpmAlgId::TDES) => {
                Ok(TpmtSymDef::Cipher {
                    algorithm: a,
                    key_bits: r.u16("TPMT_SYM_DEF")?,
                    mode: TpmAlgId::unmarshal(r)?,
                })
            }
            a => Err(bad_selector(&at, "TPMT_SYM_DEF", u32::from(a.0))),
        }
    }
}

/// A scheme with its details: TPMT_RSA_SCHEME, TPMT_ECC_SCHEME, TPMT_SIG_SCHEME,
/// TPMT_KEYEDHASH_SCHEME, TPMT_KDF_SCHEME, TPMT_RSA_DECRYPT (Part 2 §11.1.x,
/// §11.2.x). The details union is keyed by the scheme algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TpmtScheme {
    /// TPM_ALG_NULL: no details.
    #[default]
    Null,
    /// TPM_ALG_RSAES: empty details.
    Rsaes,
    /// A scheme whose details are one hash (RSASSA, RSAPSS, ECDSA, SM2, ECSCHNORR,
    /// OAEP, ECDH, ECMQV, HMAC, MGF1, the KDFs).
    Hash {
        /// The scheme.
        scheme: TpmAlgId,
        /// Its hash.
        hash: TpmAlgId,
    },
    /// TPM_ALG_ECDAA: hash and commit count.
    Ecdaa {
        /// The hash.
        hash: TpmAlgId,
        /// The commit counter.
        count: u16,
    },
    /// TPM_ALG_XOR (keyed-hash objects): hash and KDF.
    Xor {
        /// The hash.
        hash: TpmAlgId,
        /// The KDF.
        kdf: TpmAlgId,
    },
}

impl TpmtScheme {
    /// A scheme with a hash detail.
    pub fn with_hash(scheme: TpmAlgId, hash: TpmAlgId) -> Self {
        TpmtScheme::Hash { scheme, hash }
    }

    /// The scheme algorithm (TPM_ALG_NULL for [`TpmtScheme::Null`]).
    pub fn scheme(&self) -> TpmAlgId {
        match *self {
            TpmtScheme::Null => TpmAlgId::NULL,
            TpmtScheme::Rsaes => TpmAlgId::RSAES,
            TpmtScheme::Hash { scheme, .. } => scheme,
            TpmtScheme::Ecdaa { .. } => TpmAlgId::ECDAA,
            TpmtScheme::Xor { .. } => TpmAlgId::XOR,
        }
    }

    /// The hash of the scheme, if it has one.
    pub fn hash(&self) -> Option<TpmAlgId> {
        match *self {
            TpmtScheme::Hash { hash, .. }
            | TpmtScheme::Ecdaa { hash, .. }
            | TpmtScheme::Xor { hash, .. } => Some(hash),
            _ => None,
        }
    }
}

impl Marshal for TpmtScheme {
    fn marshal(&self, w: &mut Writer) {
        self.scheme().marshal(w);
        match *self {
            TpmtScheme::Null | TpmtScheme::Rsaes => {}
            TpmtScheme::Hash { hash, .. } => hash.marshal(w),
            TpmtScheme::Ecdaa { hash, count } => {
                hash.marshal(w);
                w.u16(count);
            }
            TpmtScheme::Xor { hash, kdf } => {
                hash.marshal(w);
                kdf.marshal(w);
            }
        }
    }
}

impl Unmarshal for TpmtScheme {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        let scheme = TpmAlgId::unmarshal(r)?;
        Ok(match scheme {
            TpmAlgId::NULL => TpmtScheme::Null,
            TpmAlgId::RSAES => TpmtScheme::Rsaes,
            TpmAlgId::ECDAA => TpmtScheme::Ecdaa {
                hash: TpmAlgId::unmarshal(r)?,
                count: r.u16("TPMS_SCHEME_ECDAA")?,
            },
            TpmAlgId::XOR => TpmtScheme::Xor {
                hash: TpmAlgId::unmarshal(r)?,
                kdf: TpmAlgId::unmarshal(r)?,
            },
            TpmAlgId::RSASSA
            | TpmAlgId::RSAPSS
            | TpmAlgId::ECDSA
            | TpmAlgId::SM2
            | TpmAlgId::ECSCHNORR
            | TpmAlgId::OAEP
            | TpmAlgId::ECDH
            | TpmAlgId::ECMQV
            | TpmAlgId::HMAC
            | TpmAlgId::MGF1
            | TpmAlgId::KDF1_SP800_56A
            | TpmAlgId::KDF2
            | TpmAlgId::KDF1_SP800_108 => TpmtScheme::Hash {
                scheme,
                hash: TpmAlgId::unmarshal(r)?,
            },
            a => return Err(bad_selector(&at, "TPMT_SCHEME", u32::from(a.0))),
        })
    }
}

/// TPMT_RSA_SCHEME (Part 2 §11.2.4.2).
pub type TpmtRsaScheme = TpmtScheme;
/// TPMT_ECC_SCHEME (Part 2 §11.2.5.6).
pub type TpmtEccScheme = TpmtScheme;
/// TPMT_SIG_SCHEME (Part 2 §11.2.1.5).
pub type TpmtSigScheme = TpmtScheme;
/// TPMT_KDF_SCHEME (Part 2 §11.2.3.3).
pub type TpmtKdfScheme = TpmtScheme;
/// TPMT_KEYEDHASH_SCHEME (Part 2 §11.1.23).
pub type TpmtKeyedhashScheme = TpmtScheme;
/// TPMT_RSA_DECRYPT (Part 2 §11.2.4.3).
pub type TpmtRsaDecrypt = TpmtScheme;

tpm_struct! {
    /// TPMS_RSA_PARMS (Part 2 §12.2.3.5).
    pub struct TpmsRsaParms as "TPMS_RSA_PARMS" {
        pub symmetric: TpmtSymDefObject,
        pub scheme: TpmtRsaScheme,
        pub key_bits: u16,
        pub exponent: u32,
    }
}

tpm_struct! {
    /// TPMS_ECC_PARMS (Part 2 §12.2.3.6).
    pub struct TpmsEccParms as "TPMS_ECC_PARMS" {
        pub symmetric: TpmtSymDefObject,
        pub scheme: TpmtEccScheme,
        pub curve_id: TpmEccCurve,
        pub kdf: TpmtKdfScheme,
    }
}

tpm_struct! {
    /// TPMS_ECC_POINT (Part 2 §11.2.5.2).
    pub struct TpmsEccPoint as "TPMS_ECC_POINT" {
        pub x: Tpm2bEccParameter,
        pub y: Tpm2bEccParameter,
    }
}

tpm2b_struct! {
    /// TPM2B_ECC_POINT (Part 2 §11.2.5.3).
    Tpm2bEccPoint(TpmsEccPoint), "TPM2B_ECC_POINT", max = 4 + 2 * MAX_ECC_KEY_BYTES
}

tpm_struct! {
    /// TPMS_ECC_POINT holding a shared secret (Part 3 §14.5 TPM2_ECDH_ZGen's
    /// `outPoint`, whose x coordinate is the ECDH secret Z). Secret: both
    /// coordinates zeroize on drop and never print.
    pub struct TpmsEccSecretPoint as "TPMS_ECC_POINT" {
        pub x: Tpm2bEccPrivate,
        pub y: Tpm2bEccPrivate,
    }
}

tpm2b_struct! {
    /// TPM2B_ECC_POINT holding a shared secret (see [`TpmsEccSecretPoint`]).
    Tpm2bEccSecretPoint(TpmsEccSecretPoint), "TPM2B_ECC_POINT", max = 4 + 2 * MAX_ECC_KEY_BYTES
}

/// TPMT_PUBLIC's type-dependent part: TPMU_PUBLIC_PARMS and TPMU_PUBLIC_ID, both
/// selected by the one `type` field (Part 2 §12.2.3.7, §12.2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicParams {
    /// TPM_ALG_RSA.
    Rsa {
        /// TPMS_RSA_PARMS.
        parms: TpmsRsaParms,
        /// The modulus.
        unique: Tpm2bPublicKeyRsa,
    },
    /// TPM_ALG_ECC.
    Ecc {
        /// TPMS_ECC_PARMS.
        parms: TpmsEccParms,
        /// The public point.
        unique: TpmsEccPoint,
    },
    /// TPM_ALG_KEYEDHASH.
    KeyedHash {
        /// TPMS_KEYEDHASH_PARMS (its scheme).
        scheme: TpmtKeyedhashScheme,
        /// H(seed || data).
        unique: Tpm2bDigest,
    },
    /// TPM_ALG_SYMCIPHER.
    SymCipher {
        /// TPMS_SYMCIPHER_PARMS.
        sym: TpmtSymDefObject,
        /// H(seed || key).
        unique: Tpm2bDigest,
    },
}

impl PublicParams {
    /// The `type` selector.
    pub fn alg(&self) -> TpmAlgId {
        match self {
            PublicParams::Rsa { .. } => TpmAlgId::RSA,
            PublicParams::Ecc { .. } => TpmAlgId::ECC,
            PublicParams::KeyedHash { .. } => TpmAlgId::KEYEDHASH,
            PublicParams::SymCipher { .. } => TpmAlgId::SYMCIPHER,
        }
    }
}

/// TPMT_PUBLIC (Part 2 §12.2.4): hand-written because `type` selects both the
/// parameters and the unique field, with three fields between selector and unions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmtPublic {
    /// The Name algorithm.
    pub name_alg: TpmAlgId,
    /// TPMA_OBJECT.
    pub object_attributes: TpmaObject,
    /// The authorization policy digest (empty for none).
    pub auth_policy: Tpm2bDigest,
    /// The type, its parameters and its unique field.
    pub params: PublicParams,
}

impl Marshal for TpmtPublic {
    fn marshal(&self, w: &mut Writer) {
        self.params.alg().marshal(w);
        self.name_alg.marshal(w);
        self.object_attributes.marshal(w);
        self.auth_policy.marshal(w);
        match &self.params {
            PublicParams::Rsa { parms, unique } => {
                parms.marshal(w);
                unique.marshal(w);
            }
            PublicParams::Ecc { parms, unique } => {
                parms.marshal(w);
                unique.marshal(w);
            }
            PublicParams::KeyedHash { scheme, unique } => {
                scheme.marshal(w);
                unique.marshal(w);
            }
            PublicParams::SymCipher { sym, unique } => {
                sym.marshal(w);
                unique.marshal(w);
            }
        }
    }
}

impl Unmarshal for TpmtPublic {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        let alg = TpmAlgId::unmarshal(r)?;
        let name_alg = TpmAlgId::unmarshal(r)?;
        let object_attributes = TpmaObject::unmarshal(r)?;
        let auth_policy = Tpm2bDigest::unmarshal(r)?;
        let params = match alg {
            TpmAlgId::RSA => PublicParams::Rsa {
                parms: TpmsRsaParms::unmarshal(r)?,
                unique: Tpm2bPublicKeyRsa::unmarshal(r)?,
            },
            TpmAlgId::ECC => PublicParams::Ecc {
                parms: TpmsEccParms::unmarshal(r)?,
                unique: TpmsEccPoint::unmarshal(r)?,
            },
            TpmAlgId::KEYEDHASH => PublicParams::KeyedHash {
                scheme: TpmtScheme::unmarshal(r)?,
                unique: Tpm2bDigest::unmarshal(r)?,
            },
            TpmAlgId::SYMCIPHER => PublicParams::SymCipher {
                sym: TpmtSymDef::unmarshal(r)?,
                unique: Tpm2bDigest::unmarshal(r)?,
            },
            a => return Err(bad_selector(&at, "TPMT_PUBLIC", u32::from(a.0))),
        };
        Ok(TpmtPublic {
            name_alg,
            object_attributes,
            auth_policy,
            params,
        })
    }
}

tpm2b_struct! {
    /// TPM2B_PUBLIC (Part 2 §12.2.5).
    Tpm2bPublic(TpmtPublic), "TPM2B_PUBLIC", max = MAX_FRAME
}

tpm2b_struct! {
    /// TPM2B_TEMPLATE (Part 2 §12.2.6) as used by CreateLoaded: a TPMT_PUBLIC.
    Tpm2bTemplate(TpmtPublic), "TPM2B_TEMPLATE", max = MAX_FRAME
}

/// TPMT_PUBLIC_PARMS (Part 2 §12.2.3.8), for TPM2_TestParms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmtPublicParms {
    /// RSA parameters.
    Rsa(TpmsRsaParms),
    /// ECC parameters.
    Ecc(TpmsEccParms),
    /// Keyed-hash scheme.
    KeyedHash(TpmtKeyedhashScheme),
    /// Symmetric cipher.
    SymCipher(TpmtSymDefObject),
}

impl Marshal for TpmtPublicParms {
    fn marshal(&self, w: &mut Writer) {
        match self {
            TpmtPublicParms::Rsa(p) => {
                TpmAlgId::RSA.marshal(w);
                p.marshal(w);
            }
            TpmtPublicParms::Ecc(p) => {
                TpmAlgId::ECC.marshal(w);
                p.marshal(w);
            }
            TpmtPublicParms::KeyedHash(p) => {
                TpmAlgId::KEYEDHASH.marshal(w);
                p.marshal(w);
            }
            TpmtPublicParms::SymCipher(p) => {
                TpmAlgId::SYMCIPHER.marshal(w);
                p.marshal(w);
            }
        }
    }
}

impl Unmarshal for TpmtPublicParms {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        Ok(match TpmAlgId::unmarshal(r)? {
            TpmAlgId::RSA => TpmtPublicParms::Rsa(TpmsRsaParms::unmarshal(r)?),
            TpmAlgId::ECC => TpmtPublicParms::Ecc(TpmsEccParms::unmarshal(r)?),
            TpmAlgId::KEYEDHASH => TpmtPublicParms::KeyedHash(TpmtScheme::unmarshal(r)?),
            TpmAlgId::SYMCIPHER => TpmtPublicParms::SymCipher(TpmtSymDef::unmarshal(r)?),
            a => return Err(bad_selector(&at, "TPMT_PUBLIC_PARMS", u32::from(a.0))),
        })
    }
}

tpm_struct! {
    /// TPMS_SENSITIVE_CREATE (Part 2 §11.1.15).
    pub struct TpmsSensitiveCreate as "TPMS_SENSITIVE_CREATE" {
        pub user_auth: Tpm2bAuth,
        pub data: Tpm2bSensitiveData,
    }
}

tpm2b_struct! {
    /// TPM2B_SENSITIVE_CREATE (Part 2 §11.1.16).
    Tpm2bSensitiveCreate(TpmsSensitiveCreate), "TPM2B_SENSITIVE_CREATE", max = MAX_FRAME
}

/// TPMU_SENSITIVE_COMPOSITE (Part 2 §12.3.2.2), keyed by TPMT_SENSITIVE's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SensitiveComposite {
    /// RSA: one prime.
    Rsa(Tpm2bPrivateKeyRsa),
    /// ECC: the private scalar.
    Ecc(Tpm2bEccPrivate),
    /// Keyed hash: the data or HMAC key.
    Bits(Tpm2bSensitiveData),
    /// Symmetric key.
    Sym(Tpm2bSymKey),
}

/// TPMT_SENSITIVE (Part 2 §12.3.2.4): hand-written, the selector comes before two
/// TPM2Bs and then its union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmtSensitive {
    /// The object's authValue.
    pub auth_value: Tpm2bAuth,
    /// The seed (for storage keys) or obfuscation value.
    pub seed_value: Tpm2bDigest,
    /// The private part.
    pub sensitive: SensitiveComposite,
}

impl Marshal for TpmtSensitive {
    fn marshal(&self, w: &mut Writer) {
        let alg = match self.sensitive {
            SensitiveComposite::Rsa(_) => TpmAlgId::RSA,
            SensitiveComposite::Ecc(_) => TpmAlgId::ECC,
            SensitiveComposite::Bits(_) => TpmAlgId::KEYEDHASH,
            SensitiveComposite::Sym(_) => TpmAlgId::SYMCIPHER,
        };
        alg.marshal(w);
        self.auth_value.marshal(w);
        self.seed_value.marshal(w);
        match &self.sensitive {
            SensitiveComposite::Rsa(v) => v.marshal(w),
            SensitiveComposite::Ecc(v) => v.marshal(w),
            SensitiveComposite::Bits(v) => v.marshal(w),
            SensitiveComposite::Sym(v) => v.marshal(w),
        }
    }
}

impl Unmarshal for TpmtSensitive {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        let alg = TpmAlgId::unmarshal(r)?;
        let auth_value = Tpm2bAuth::unmarshal(r)?;
        let seed_value = Tpm2bDigest::unmarshal(r)?;
        let sensitive = match alg {
            TpmAlgId::RSA => SensitiveComposite::Rsa(Tpm2bPrivateKeyRsa::unmarshal(r)?),
            TpmAlgId::ECC => SensitiveComposite::Ecc(Tpm2bEccPrivate::unmarshal(r)?),
            TpmAlgId::KEYEDHASH => SensitiveComposite::Bits(Tpm2bSensitiveData::unmarshal(r)?),
            TpmAlgId::SYMCIPHER => SensitiveComposite::Sym(Tpm2bSymKey::unmarshal(r)?),
            a => return Err(bad_selector(&at, "TPMT_SENSITIVE", u32::from(a.0))),
        };
        Ok(TpmtSensitive {
            auth_value,
            seed_value,
            sensitive,
        })
    }
}

tpm2b_struct! {
    /// TPM2B_SENSITIVE (Part 2 §12.3.3), for TPM2_LoadExternal.
    Tpm2bSensitive(TpmtSensitive), "TPM2B_SENSITIVE", max = MAX_FRAME
}

/// TPMS_PCR_SELECTION (Part 2 §10.6.2): a hash and a bitmap with a one-byte size.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TpmsPcrSelection {
    /// The PCR bank.
    pub hash: TpmAlgId,
    /// Bit n of byte n/8 selects PCR n.
    pub pcr_select: Vec<u8>,
}

/// PCR_SELECT_MAX: up to 32 PCRs.
pub const PCR_SELECT_MAX: usize = 4;

impl TpmsPcrSelection {
    /// A selection of `pcrs` in bank `hash` (3-byte bitmap, 24 PCRs, or larger).
    pub fn new(hash: TpmAlgId, pcrs: &[u8]) -> Self {
        let len = pcrs
            .iter()
            .map(|p| usize::from(*p) / 8 + 1)
            .max()
            .unwrap_or(0)
            .max(3);
        let mut pcr_select = vec![0u8; len.min(PCR_SELECT_MAX)];
        for p in pcrs {
            if let Some(b) = pcr_select.get_mut(usize::from(*p) / 8) {
                *b |= 1 << (p % 8);
            }
        }
        TpmsPcrSelection { hash, pcr_select }
    }

    /// The selected PCR numbers.
    pub fn pcrs(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for (i, b) in self.pcr_select.iter().enumerate() {
            for bit in 0..8 {
                if b & (1 << bit) != 0 {
                    v.push((i * 8 + bit) as u32);
                }
            }
        }
        v
    }
}

impl Marshal for TpmsPcrSelection {
    fn marshal(&self, w: &mut Writer) {
        self.hash.marshal(w);
        if self.pcr_select.len() > PCR_SELECT_MAX {
            w.fail(crate::codec::MarshalError {
                size: self.pcr_select.len(),
                max: PCR_SELECT_MAX,
            });
        }
        w.u8(self.pcr_select.len() as u8);
        w.bytes(&self.pcr_select);
    }
}

impl Unmarshal for TpmsPcrSelection {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let hash = TpmAlgId::unmarshal(r)?;
        let at = r.clone();
        let size = usize::from(r.u8("TPMS_PCR_SELECTION")?);
        if size > PCR_SELECT_MAX {
            return Err(at.error(
                "TPMS_PCR_SELECTION",
                ErrorKind::TooLarge {
                    size,
                    max: PCR_SELECT_MAX,
                },
            ));
        }
        Ok(TpmsPcrSelection {
            hash,
            pcr_select: r.take(size, "TPMS_PCR_SELECTION")?.to_vec(),
        })
    }
}

/// HASH_COUNT: the most PCR banks / digests a list carries.
pub const HASH_COUNT: usize = 16;

tpml! {
    /// TPML_PCR_SELECTION (Part 2 §10.9.7).
    TpmlPcrSelection(TpmsPcrSelection), "TPML_PCR_SELECTION", max = HASH_COUNT, min_elem = 3
}
tpml! {
    /// TPML_DIGEST (Part 2 §10.9.3): at most 8 digests.
    TpmlDigest(Tpm2bDigest), "TPML_DIGEST", max = 8, min_elem = 2
}
tpml! {
    /// TPML_DIGEST_VALUES (Part 2 §10.9.4).
    TpmlDigestValues(TpmtHa), "TPML_DIGEST_VALUES", max = HASH_COUNT, min_elem = 2
}
tpml! {
    /// TPML_HANDLE (Part 2 §10.9.2).
    TpmlHandle(TpmHandle), "TPML_HANDLE", max = 254, min_elem = 4
}
tpml! {
    /// TPML_CC (Part 2 §10.9.5).
    TpmlCc(TpmCc), "TPML_CC", max = 256, min_elem = 4
}
tpml! {
    /// TPML_ECC_CURVE (Part 2 §10.9.12).
    TpmlEccCurve(TpmEccCurve), "TPML_ECC_CURVE", max = 512, min_elem = 2
}

tpm_struct! {
    /// TPMS_ALG_PROPERTY (Part 2 §10.8.1).
    pub struct TpmsAlgProperty as "TPMS_ALG_PROPERTY" {
        pub alg: TpmAlgId,
        pub alg_properties: TpmaAlgorithm,
    }
}
tpml! {
    /// TPML_ALG_PROPERTY (Part 2 §10.9.8).
    TpmlAlgProperty(TpmsAlgProperty), "TPML_ALG_PROPERTY", max = 169, min_elem = 6
}

tpm_struct! {
    /// TPMS_TAGGED_PROPERTY (Part 2 §10.8.2).
    pub struct TpmsTaggedProperty as "TPMS_TAGGED_PROPERTY" {
        pub property: TpmPt,
        pub value: u32,
    }
}
tpml! {
    /// TPML_TAGGED_TPM_PROPERTY (Part 2 §10.9.9).
    TpmlTaggedTpmProperty(TpmsTaggedProperty), "TPML_TAGGED_TPM_PROPERTY", max = 127, min_elem = 8
}

/// TPMS_TAGGED_PCR_SELECT (Part 2 §10.8.3): a PCR property and its bitmap.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TpmsTaggedPcrSelect {
    /// TPM_PT_PCR.
    pub tag: u32,
    /// The PCRs with that property.
    pub pcr_select: Vec<u8>,
}

impl Marshal for TpmsTaggedPcrSelect {
    fn marshal(&self, w: &mut Writer) {
        w.u32(self.tag);
        w.u8(self.pcr_select.len() as u8);
        w.bytes(&self.pcr_select);
    }
}

impl Unmarshal for TpmsTaggedPcrSelect {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let tag = r.u32("TPMS_TAGGED_PCR_SELECT")?;
        let at = r.clone();
        let size = usize::from(r.u8("TPMS_TAGGED_PCR_SELECT")?);
        if size > PCR_SELECT_MAX {
            return Err(at.error(
                "TPMS_TAGGED_PCR_SELECT",
                ErrorKind::TooLarge {
                    size,
                    max: PCR_SELECT_MAX,
                },
            ));
        }
        Ok(TpmsTaggedPcrSelect {
            tag,
            pcr_select: r.take(size, "TPMS_TAGGED_PCR_SELECT")?.to_vec(),
        })
    }
}

tpml! {
    /// TPML_TAGGED_PCR_PROPERTY (Part 2 §10.9.10).
    TpmlTaggedPcrProperty(TpmsTaggedPcrSelect), "TPML_TAGGED_PCR_PROPERTY", max = 84, min_elem = 5
}

/// TPMS_CAPABILITY_DATA (Part 2 §10.10.2) with TPMU_CAPABILITIES keyed by TPM_CAP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmsCapabilityData {
    /// TPM_CAP_ALGS.
    Algs(TpmlAlgProperty),
    /// TPM_CAP_HANDLES.
    Handles(TpmlHandle),
    /// TPM_CAP_COMMANDS: TPMA_CC values.
    Commands(Vec<u32>),
    /// TPM_CAP_PP_COMMANDS.
    PpCommands(TpmlCc),
    /// TPM_CAP_AUDIT_COMMANDS.
    AuditCommands(TpmlCc),
    /// TPM_CAP_PCRS.
    Pcrs(TpmlPcrSelection),
    /// TPM_CAP_TPM_PROPERTIES.
    TpmProperties(TpmlTaggedTpmProperty),
    /// TPM_CAP_PCR_PROPERTIES.
    PcrProperties(TpmlTaggedPcrProperty),
    /// TPM_CAP_ECC_CURVES.
    EccCurves(TpmlEccCurve),
}

impl TpmsCapabilityData {
    /// The TPM_CAP selector.
    pub fn capability(&self) -> TpmCap {
        match self {
            TpmsCapabilityData::Algs(_) => TpmCap::ALGS,
            TpmsCapabilityData::Handles(_) => TpmCap::HANDLES,
            TpmsCapabilityData::Commands(_) => TpmCap::COMMANDS,
            TpmsCapabilityData::PpCommands(_) => TpmCap::PP_COMMANDS,
            TpmsCapabilityData::AuditCommands(_) => TpmCap::AUDIT_COMMANDS,
            TpmsCapabilityData::Pcrs(_) => TpmCap::PCRS,
            TpmsCapabilityData::TpmProperties(_) => TpmCap::TPM_PROPERTIES,
            TpmsCapabilityData::PcrProperties(_) => TpmCap::PCR_PROPERTIES,
            TpmsCapabilityData::EccCurves(_) => TpmCap::ECC_CURVES,
        }
    }
}

impl Marshal for TpmsCapabilityData {
    fn marshal(&self, w: &mut Writer) {
        self.capability().marshal(w);
        match self {
            TpmsCapabilityData::Algs(v) => v.marshal(w),
            TpmsCapabilityData::Handles(v) => v.marshal(w),
            TpmsCapabilityData::Commands(v) => {
                w.u32(v.len() as u32);
                for c in v {
                    w.u32(*c);
                }
            }
            TpmsCapabilityData::PpCommands(v) | TpmsCapabilityData::AuditCommands(v) => {
                v.marshal(w)
            }
            TpmsCapabilityData::Pcrs(v) => v.marshal(w),
            TpmsCapabilityData::TpmProperties(v) => v.marshal(w),
            TpmsCapabilityData::PcrProperties(v) => v.marshal(w),
            TpmsCapabilityData::EccCurves(v) => v.marshal(w),
        }
    }
}

impl Unmarshal for TpmsCapabilityData {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        Ok(match TpmCap::unmarshal(r)? {
            TpmCap::ALGS => TpmsCapabilityData::Algs(Unmarshal::unmarshal(r)?),
            TpmCap::HANDLES => TpmsCapabilityData::Handles(Unmarshal::unmarshal(r)?),
            TpmCap::COMMANDS => {
                TpmsCapabilityData::Commands(r.list_u32(256, 4, "TPML_CCA", |r| r.u32("TPMA_CC"))?)
            }
            TpmCap::PP_COMMANDS => TpmsCapabilityData::PpCommands(Unmarshal::unmarshal(r)?),
            TpmCap::AUDIT_COMMANDS => TpmsCapabilityData::AuditCommands(Unmarshal::unmarshal(r)?),
            TpmCap::PCRS => TpmsCapabilityData::Pcrs(Unmarshal::unmarshal(r)?),
            TpmCap::TPM_PROPERTIES => TpmsCapabilityData::TpmProperties(Unmarshal::unmarshal(r)?),
            TpmCap::PCR_PROPERTIES => TpmsCapabilityData::PcrProperties(Unmarshal::unmarshal(r)?),
            TpmCap::ECC_CURVES => TpmsCapabilityData::EccCurves(Unmarshal::unmarshal(r)?),
            c => return Err(bad_selector(&at, "TPMS_CAPABILITY_DATA", c.0)),
        })
    }
}

/// A ticket: TPMT_TK_CREATION, TPMT_TK_VERIFIED, TPMT_TK_AUTH, TPMT_TK_HASHCHECK
/// (Part 2 §10.7): tag, hierarchy, digest.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TpmtTicket {
    /// The ticket tag.
    pub tag: TpmSt,
    /// The hierarchy.
    pub hierarchy: TpmHandle,
    /// The HMAC (empty for a NULL ticket).
    pub digest: Tpm2bDigest,
}

impl TpmtTicket {
    /// The NULL hash-check ticket Sign takes for digests not made by the TPM.
    pub fn null_hashcheck() -> Self {
        TpmtTicket {
            tag: TpmSt::HASHCHECK,
            hierarchy: TpmHandle::RH_NULL,
            digest: Tpm2bDigest::empty(),
        }
    }
}

impl Marshal for TpmtTicket {
    fn marshal(&self, w: &mut Writer) {
        self.tag.marshal(w);
        self.hierarchy.marshal(w);
        self.digest.marshal(w);
    }
}

impl Unmarshal for TpmtTicket {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        Ok(TpmtTicket {
            tag: TpmSt::unmarshal(r)?,
            hierarchy: TpmHandle::unmarshal(r)?,
            digest: Tpm2bDigest::unmarshal(r)?,
        })
    }
}

/// TPMT_TK_CREATION (Part 2 §10.7.3).
pub type TpmtTkCreation = TpmtTicket;
/// TPMT_TK_VERIFIED (Part 2 §10.7.4).
pub type TpmtTkVerified = TpmtTicket;
/// TPMT_TK_AUTH (Part 2 §10.7.5).
pub type TpmtTkAuth = TpmtTicket;
/// TPMT_TK_HASHCHECK (Part 2 §10.7.6).
pub type TpmtTkHashcheck = TpmtTicket;

/// TPMT_SIGNATURE (Part 2 §11.3.4) with TPMU_SIGNATURE keyed by sigAlg.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum TpmtSignature {
    /// TPM_ALG_NULL.
    #[default]
    Null,
    /// RSASSA or RSAPSS: TPMS_SIGNATURE_RSA.
    Rsa {
        /// TPM_ALG_RSASSA or TPM_ALG_RSAPSS.
        scheme: TpmAlgId,
        /// The hash.
        hash: TpmAlgId,
        /// The signature.
        sig: Tpm2bPublicKeyRsa,
    },
    /// ECDSA, ECDAA, SM2, ECSCHNORR: TPMS_SIGNATURE_ECC.
    Ecc {
        /// The scheme.
        scheme: TpmAlgId,
        /// The hash.
        hash: TpmAlgId,
        /// r.
        r: Tpm2bEccParameter,
        /// s.
        s: Tpm2bEccParameter,
    },
    /// HMAC: a TPMT_HA.
    Hmac(TpmtHa),
}

impl Marshal for TpmtSignature {
    fn marshal(&self, w: &mut Writer) {
        match self {
            TpmtSignature::Null => TpmAlgId::NULL.marshal(w),
            TpmtSignature::Rsa { scheme, hash, sig } => {
                scheme.marshal(w);
                hash.marshal(w);
                sig.marshal(w);
            }
            TpmtSignature::Ecc { scheme, hash, r, s } => {
                scheme.marshal(w);
                hash.marshal(w);
                r.marshal(w);
                s.marshal(w);
            }
            TpmtSignature::Hmac(ha) => {
                TpmAlgId::HMAC.marshal(w);
                ha.marshal(w);
            }
        }
    }
}

impl Unmarshal for TpmtSignature {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        Ok(match TpmAlgId::unmarshal(r)? {
            TpmAlgId::NULL => TpmtSignature::Null,
            scheme @ (TpmAlgId::RSASSA | TpmAlgId::RSAPSS) => TpmtSignature::Rsa {
                scheme,
                hash: TpmAlgId::unmarshal(r)?,
                sig: Tpm2bPublicKeyRsa::unmarshal(r)?,
            },
            scheme @ (TpmAlgId::ECDSA | TpmAlgId::ECDAA | TpmAlgId::SM2 | TpmAlgId::ECSCHNORR) => {
                TpmtSignature::Ecc {
                    scheme,
                    hash: TpmAlgId::unmarshal(r)?,
                    r: Tpm2bEccParameter::unmarshal(r)?,
                    s: Tpm2bEccParameter::unmarshal(r)?,
                }
            }
            TpmAlgId::HMAC => TpmtSignature::Hmac(TpmtHa::unmarshal(r)?),
            a => return Err(bad_selector(&at, "TPMT_SIGNATURE", u32::from(a.0))),
        })
    }
}

tpm_struct! {
    /// TPMS_CONTEXT (Part 2 §14.5).
    pub struct TpmsContext as "TPMS_CONTEXT" {
        pub sequence: u64,
        pub saved_handle: TpmHandle,
        pub hierarchy: TpmHandle,
        pub context_blob: Tpm2bContextData,
    }
}
