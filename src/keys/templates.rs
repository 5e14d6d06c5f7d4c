//! Object templates: the standard SRKs (TCG Provisioning Guidance 1.0 §7.5.1 over
//! the EK Credential Profile Annex B templates) and tpmkey's keys, which sign,
//! decrypt (RSA) or agree on secrets (ECDH), as their [`KeyUsage`] says.

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

/// What a key may do, as its TPM object attributes `sign` and `decrypt` say
/// (Part 2 §8.3.3.1 TPMA_OBJECT). The TPM enforces it: TPM2_Sign needs `sign`
/// (TPM_RC_KEY otherwise), TPM2_RSA_Decrypt and TPM2_ECDH_ZGen need `decrypt`
/// (TPM_RC_ATTRIBUTES otherwise). For an ECC key, `decrypt` means ECDH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUsage {
    /// Signs (`sign` set).
    pub sign: bool,
    /// Decrypts (RSA) or derives shared secrets (ECDH) (`decrypt` set).
    pub decrypt: bool,
}

impl KeyUsage {
    /// Signing only: tpmkey's default, and every key made before usages existed.
    pub const SIGN: KeyUsage = KeyUsage {
        sign: true,
        decrypt: false,
    };
    /// Decryption (RSA) or ECDH (ECC) only.
    pub const DECRYPT: KeyUsage = KeyUsage {
        sign: false,
        decrypt: true,
    };
    /// Both.
    pub const SIGN_DECRYPT: KeyUsage = KeyUsage {
        sign: true,
        decrypt: true,
    };

    /// The usage a public area's attributes grant.
    pub fn of(attributes: TpmaObject) -> KeyUsage {
        KeyUsage {
            sign: attributes.contains(TpmaObject::SIGN_ENCRYPT),
            decrypt: attributes.contains(TpmaObject::DECRYPT),
        }
    }

    /// The TPMA_OBJECT bits for this usage.
    pub fn attributes(self) -> TpmaObject {
        let mut a = TpmaObject::empty();
        if self.sign {
            a |= TpmaObject::SIGN_ENCRYPT;
        }
        if self.decrypt {
            a |= TpmaObject::DECRYPT;
        }
        a
    }

    /// Parses `sign`, `decrypt`, `sign,decrypt` (either order; `derive` is a
    /// synonym of `decrypt`, the name PKCS#11 gives ECDH).
    pub fn parse(s: &str) -> Option<KeyUsage> {
        let mut u = KeyUsage {
            sign: false,
            decrypt: false,
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "sign" => u.sign = true,
                "decrypt" | "derive" => u.decrypt = true,
                _ => return None,
            }
        }
        (u.sign || u.decrypt).then_some(u)
    }

    /// `sign`, `decrypt` or `sign,decrypt`.
    pub fn name(self) -> &'static str {
        match (self.sign, self.decrypt) {
            (true, true) => "sign,decrypt",
            (false, true) => "decrypt",
            (true, false) => "sign",
            (false, false) => "none",
        }
    }
}

/// Attributes of a signing key: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, sign; dictionary-attack protected unless `no_da`.
pub fn signing_attributes(no_da: bool) -> TpmaObject {
    key_attributes(KeyUsage::SIGN, no_da)
}

/// Attributes of a key made in the TPM: fixedTPM, fixedParent,
/// sensitiveDataOrigin, userWithAuth, and `sign` and/or `decrypt` as `usage`
/// says; dictionary-attack protected unless `no_da`.
pub fn key_attributes(usage: KeyUsage, no_da: bool) -> TpmaObject {
    let mut a = TpmaObject::FIXED_TPM
        | TpmaObject::FIXED_PARENT
        | TpmaObject::SENSITIVE_DATA_ORIGIN
        | TpmaObject::USER_WITH_AUTH
        | usage.attributes();
    if no_da {
        a |= TpmaObject::NO_DA;
    }
    a
}

/// An unrestricted signing key template (scheme NULL: the scheme is chosen per
/// signature, so one key serves ECDSA with any hash, or RSASSA and RSAPSS).
pub fn signing_template(alg: KeyAlgorithm, no_da: bool) -> TpmtPublic {
    key_template(alg, KeyUsage::SIGN, no_da)
}

/// An unrestricted key template for `usage`. Scheme, symmetric and KDF are NULL
/// (Part 2 §12.2.3.5: a key that both signs and decrypts must leave the scheme
/// open), so each use names its own: ECDSA or RSASSA/RSAPSS per signature, OAEP,
/// RSAES or none per decryption, ECDH per ZGen.
pub fn key_template(alg: KeyAlgorithm, usage: KeyUsage, no_da: bool) -> TpmtPublic {
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
        object_attributes: key_attributes(usage, no_da),
        auth_policy: Tpm2bDigest::empty(),
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_names_and_attributes_round_trip() {
        for (text, u) in [
            ("sign", KeyUsage::SIGN),
            ("decrypt", KeyUsage::DECRYPT),
            ("derive", KeyUsage::DECRYPT),
            ("sign,decrypt", KeyUsage::SIGN_DECRYPT),
            ("decrypt,sign", KeyUsage::SIGN_DECRYPT),
        ] {
            assert_eq!(KeyUsage::parse(text), Some(u), "{text}");
            assert_eq!(KeyUsage::parse(u.name()), Some(u));
            assert_eq!(KeyUsage::of(key_attributes(u, false)), u);
        }
        for bad in ["", "sign,", "wrap", "sign,verify"] {
            assert_eq!(KeyUsage::parse(bad), None, "{bad}");
        }
        let t = key_template(KeyAlgorithm::Ecc256, KeyUsage::DECRYPT, true);
        assert!(t
            .object_attributes
            .contains(TpmaObject::DECRYPT | TpmaObject::NO_DA));
        assert!(!t.object_attributes.contains(TpmaObject::SIGN_ENCRYPT));
        assert_eq!(
            signing_template(KeyAlgorithm::Rsa2048, false).object_attributes,
            signing_attributes(false)
        );
    }
}
