//! Object templates: the standard SRKs (TCG Provisioning Guidance 1.0 §7.5.1 over
//! the EK Credential Profile Annex B templates) and tpmkey's signing keys.

use tpm_commands::attributes::TpmaObject;
use tpm_commands::buffers::{Tpm2bDigest, Tpm2bEccParameter, Tpm2bPublicKeyRsa};
use tpm_commands::constants::{TpmAlgId, TpmEccCurve};
use tpm_commands::structures::{
    PublicParams, TpmsEccParms, TpmsEccPoint, TpmsRsaParms, TpmtPublic, TpmtScheme, TpmtSymDef,
};

/// Which SRK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrkKind {
    /// ECC NIST P-256 (the default: fast to derive on real chips).
    Ecc,
    /// RSA 2048 (can take seconds to derive on real chips).
    Rsa,
}

/// SRK attributes: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, noDA,
/// restricted, decrypt (0x00030472).
pub fn srk_attributes() -> TpmaObject {
    TpmaObject::FIXED_TPM
        | TpmaObject::FIXED_PARENT
        | TpmaObject::SENSITIVE_DATA_ORIGIN
        | TpmaObject::USER_WITH_AUTH
        | TpmaObject::NO_DA
        | TpmaObject::RESTRICTED
        | TpmaObject::DECRYPT
}

/// The standard SRK template with an empty `unique` (the convention of tpm2-tools,
/// systemd and TSS2 key files; a zero-filled `unique` gives a different key).
pub fn srk_template(kind: SrkKind) -> TpmtPublic {
    let params = match kind {
        SrkKind::Ecc => PublicParams::Ecc {
            parms: TpmsEccParms {
                symmetric: TpmtSymDef::aes_cfb(128),
                scheme: TpmtScheme::Null,
                curve_id: TpmEccCurve::NIST_P256,
                kdf: TpmtScheme::Null,
            },
            unique: TpmsEccPoint {
                x: Tpm2bEccParameter::empty(),
                y: Tpm2bEccParameter::empty(),
            },
        },
        SrkKind::Rsa => PublicParams::Rsa {
            parms: TpmsRsaParms {
                symmetric: TpmtSymDef::aes_cfb(128),
                scheme: TpmtScheme::Null,
                key_bits: 2048,
                exponent: 0,
            },
            unique: Tpm2bPublicKeyRsa::empty(),
        },
    };
    TpmtPublic {
        name_alg: TpmAlgId::SHA256,
        object_attributes: srk_attributes(),
        auth_policy: Tpm2bDigest::empty(),
        params,
    }
}

/// A signing key algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256.
    Ecc256,
    /// ECDSA on NIST P-384.
    Ecc384,
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
}

/// Attributes of a signing key: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, sign; dictionary-attack protected unless `no_da`.
pub fn signing_attributes(no_da: bool) -> TpmaObject {
    let mut a = TpmaObject::FIXED_TPM
        | TpmaObject::FIXED_PARENT
        | TpmaObject::SENSITIVE_DATA_ORIGIN
        | TpmaObject::USER_WITH_AUTH
        | TpmaObject::SIGN_ENCRYPT;
    if no_da {
        a |= TpmaObject::NO_DA;
    }
    a
}

/// An unrestricted signing key template (scheme NULL: the scheme is chosen per
/// signature, so one key serves ECDSA with any hash, or RSASSA and RSAPSS).
pub fn signing_template(alg: KeyAlgorithm, no_da: bool) -> TpmtPublic {
    let ecc = |curve| PublicParams::Ecc {
        parms: TpmsEccParms {
            symmetric: TpmtSymDef::Null,
            scheme: TpmtScheme::Null,
            curve_id: curve,
            kdf: TpmtScheme::Null,
        },
        unique: TpmsEccPoint::default(),
    };
    let rsa = |bits| PublicParams::Rsa {
        parms: TpmsRsaParms {
            symmetric: TpmtSymDef::Null,
            scheme: TpmtScheme::Null,
            key_bits: bits,
            exponent: 0,
        },
        unique: Tpm2bPublicKeyRsa::empty(),
    };
    let params = match alg {
        KeyAlgorithm::Ecc256 => ecc(TpmEccCurve::NIST_P256),
        KeyAlgorithm::Ecc384 => ecc(TpmEccCurve::NIST_P384),
        KeyAlgorithm::Rsa2048 => rsa(2048),
        KeyAlgorithm::Rsa3072 => rsa(3072),
        KeyAlgorithm::Rsa4096 => rsa(4096),
    };
    TpmtPublic {
        name_alg: TpmAlgId::SHA256,
        object_attributes: signing_attributes(no_da),
        auth_policy: Tpm2bDigest::empty(),
        params,
    }
}
