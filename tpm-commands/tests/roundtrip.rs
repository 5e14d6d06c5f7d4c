//! Every wire type: marshal → unmarshal gives the same value, `marshaled_len` equals
//! the bytes written; golden bytes from the standard SRK templates; hostile inputs
//! (truncation at every length, oversized sizes, bad selectors, huge counts) give
//! errors, never panics.

use tpm_commands::attributes::*;
use tpm_commands::buffers::*;
use tpm_commands::codec::{ErrorKind, Marshal, Reader, Unmarshal};
use tpm_commands::commands::*;
use tpm_commands::constants::*;
use tpm_commands::frame::*;
use tpm_commands::structures::*;

fn rt<T: Marshal + Unmarshal + PartialEq + core::fmt::Debug>(v: T) -> Vec<u8> {
    let bytes = v.to_bytes().expect("marshal");
    assert_eq!(v.marshaled_len(), bytes.len(), "marshaled_len of {v:?}");
    let back = T::from_bytes(&bytes).unwrap_or_else(|e| panic!("unmarshal {v:?}: {e}"));
    assert_eq!(back, v);
    // Every strict prefix must fail cleanly.
    for n in 0..bytes.len() {
        assert!(
            T::from_bytes(&bytes[..n]).is_err(),
            "prefix {n} of {v:?} parsed"
        );
    }
    // One byte too many is trailing data.
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        T::from_bytes(&long).unwrap_err().kind,
        ErrorKind::TrailingBytes { count: 1 }
    ));
    bytes
}

fn d(n: usize, b: u8) -> Vec<u8> {
    vec![b; n]
}

/// TCG Provisioning Guidance §7.5.1 SRK templates (EK Credential Profile Annex B),
/// as marshalled by tpm2-tools 5.4: ECC P-256 and RSA-2048, unique empty ("H").
const ECC_SRK_H: &str = "0023000b00030472000000060080004300100003001000000000";
const RSA_SRK_H: &str = "0001000b00030472000000060080004300100800000000000000";
/// The same with zero-filled unique ("L" style, go-tpm's SRK templates).
const ECC_SRK_L: &str = "0023000b0003047200000006008000430010000300100020000000000000000000000000000000000000000000000000000000000000000000200000000000000000000000000000000000000000000000000000000000000000";

fn srk_attrs() -> TpmaObject {
    TpmaObject::FIXED_TPM
        | TpmaObject::FIXED_PARENT
        | TpmaObject::SENSITIVE_DATA_ORIGIN
        | TpmaObject::USER_WITH_AUTH
        | TpmaObject::NO_DA
        | TpmaObject::RESTRICTED
        | TpmaObject::DECRYPT
}

fn ecc_srk(unique: usize) -> TpmtPublic {
    TpmtPublic {
        name_alg: TpmAlgId::SHA256,
        object_attributes: srk_attrs(),
        auth_policy: Tpm2bDigest::empty(),
        params: PublicParams::Ecc {
            parms: TpmsEccParms {
                symmetric: TpmtSymDef::aes_cfb(128),
                scheme: TpmtScheme::Null,
                curve_id: TpmEccCurve::NIST_P256,
                kdf: TpmtScheme::Null,
            },
            unique: TpmsEccPoint {
                x: Tpm2bEccParameter::new(d(unique, 0)).unwrap(),
                y: Tpm2bEccParameter::new(d(unique, 0)).unwrap(),
            },
        },
    }
}

#[test]
fn srk_templates_are_byte_exact() {
    assert_eq!(hex::encode(rt(ecc_srk(0))), ECC_SRK_H);
    assert_eq!(hex::encode(rt(ecc_srk(32))), ECC_SRK_L);
    let rsa = TpmtPublic {
        name_alg: TpmAlgId::SHA256,
        object_attributes: srk_attrs(),
        auth_policy: Tpm2bDigest::empty(),
        params: PublicParams::Rsa {
            parms: TpmsRsaParms {
                symmetric: TpmtSymDef::aes_cfb(128),
                scheme: TpmtScheme::Null,
                key_bits: 2048,
                exponent: 0,
            },
            unique: Tpm2bPublicKeyRsa::empty(),
        },
    };
    assert_eq!(hex::encode(rt(rsa.clone())), RSA_SRK_H);
    // TPM2B_PUBLIC prefixes the size.
    assert_eq!(
        hex::encode(rt(Tpm2bPublic::new(rsa))),
        format!("001a{RSA_SRK_H}")
    );
}

#[test]
fn primitives_and_enums() {
    rt(0u8);
    rt(0xBEEFu16);
    rt(0xDEAD_BEEFu32);
    rt(0x0102_0304_0506_0708u64);
    rt(true);
    rt(TpmAlgId::SHA256);
    rt(TpmAlgId(0x7777));
    rt(TpmCc::SIGN);
    rt(TpmSt::SESSIONS);
    rt(TpmSu::STATE);
    rt(TpmSe::POLICY);
    rt(TpmCap::ALGS);
    rt(TpmPt::MANUFACTURER);
    rt(TpmHandle::RH_OWNER);
    rt(TpmEccCurve::NIST_P384);
    rt(TpmaSession::CONTINUE_SESSION | TpmaSession::ENCRYPT);
    rt(TpmaObject::from_bits_retain(0xFFFF_FFFF));
    rt(TpmaAlgorithm::HASH);
    rt(TpmaPermanent::IN_LOCKOUT);
    rt(TpmaStartupClear::ORDERLY);
}

#[test]
fn buffers() {
    rt(Tpm2bDigest::new(d(32, 1)).unwrap());
    rt(Tpm2bData::new(d(10, 2)).unwrap());
    rt(Tpm2bNonce::new(d(16, 3)).unwrap());
    rt(Tpm2bAuth::new(d(32, 4)).unwrap());
    rt(Tpm2bSensitiveData::new(d(128, 5)).unwrap());
    rt(Tpm2bPublicKeyRsa::new(d(256, 6)).unwrap());
    rt(Tpm2bRsaPlaintext::new(d(190, 6)).unwrap());
    rt(Tpm2bPrivateKeyRsa::new(d(128, 7)).unwrap());
    rt(Tpm2bEccParameter::new(d(48, 8)).unwrap());
    rt(Tpm2bEccPrivate::new(d(32, 9)).unwrap());
    rt(Tpm2bSymKey::new(d(16, 10)).unwrap());
    rt(Tpm2bEncryptedSecret::new(d(68, 11)).unwrap());
    rt(Tpm2bPrivate::new(d(200, 12)).unwrap());
    rt(Tpm2bName::new(d(34, 13)).unwrap());
    rt(Tpm2bMaxBuffer::new(d(1024, 14)).unwrap());
    rt(Tpm2bContextData::new(d(500, 15)).unwrap());
    rt(Tpm2bCreationData::new(d(50, 16)).unwrap());
    rt(Tpm2bTimeout::new(d(8, 17)).unwrap());
    rt(Tpm2bOperand::new(d(32, 18)).unwrap());
    rt(Tpm2bIdObject::new(d(40, 19)).unwrap());
    assert!(Tpm2bDigest::new(d(65, 0)).is_err(), "over the spec maximum");
}

#[test]
fn secrets_do_not_print() {
    let a = Tpm2bAuth::new(b"hunter2hunter2".to_vec()).unwrap();
    let s = format!("{a:?}");
    assert!(!s.contains("68756e74") && !s.contains("hunter2"), "{s}");
    assert!(s.contains("redacted"));
}

#[test]
fn structures_and_unions() {
    rt(TpmtHa {
        hash_alg: TpmAlgId::SHA384,
        digest: d(48, 1),
    });
    rt(TpmtHa {
        hash_alg: TpmAlgId::NULL,
        digest: vec![],
    });
    rt(TpmtSymDef::Null);
    rt(TpmtSymDef::Xor {
        hash: TpmAlgId::SHA256,
    });
    rt(TpmtSymDef::aes_cfb(256));
    for s in [
        TpmtScheme::Null,
        TpmtScheme::Rsaes,
        TpmtScheme::with_hash(TpmAlgId::RSASSA, TpmAlgId::SHA256),
        TpmtScheme::with_hash(TpmAlgId::RSAPSS, TpmAlgId::SHA512),
        TpmtScheme::with_hash(TpmAlgId::ECDSA, TpmAlgId::SHA384),
        TpmtScheme::with_hash(TpmAlgId::OAEP, TpmAlgId::SHA256),
        TpmtScheme::with_hash(TpmAlgId::KDF1_SP800_108, TpmAlgId::SHA256),
        TpmtScheme::Ecdaa {
            hash: TpmAlgId::SHA256,
            count: 7,
        },
        TpmtScheme::Xor {
            hash: TpmAlgId::SHA256,
            kdf: TpmAlgId::KDF1_SP800_108,
        },
    ] {
        rt(s);
    }
    rt(TpmsRsaParms {
        symmetric: TpmtSymDef::Null,
        scheme: TpmtScheme::with_hash(TpmAlgId::RSAPSS, TpmAlgId::SHA256),
        key_bits: 3072,
        exponent: 65537,
    });
    rt(TpmsEccParms {
        symmetric: TpmtSymDef::Null,
        scheme: TpmtScheme::with_hash(TpmAlgId::ECDSA, TpmAlgId::SHA256),
        curve_id: TpmEccCurve::NIST_P256,
        kdf: TpmtScheme::Null,
    });
    let point = TpmsEccPoint {
        x: Tpm2bEccParameter::new(d(32, 1)).unwrap(),
        y: Tpm2bEccParameter::new(d(32, 2)).unwrap(),
    };
    rt(point.clone());
    rt(Tpm2bEccPoint::new(point));
    rt(Tpm2bEccPoint(None));
    let secret = TpmsEccSecretPoint {
        x: Tpm2bEccPrivate::new(d(32, 3)).unwrap(),
        y: Tpm2bEccPrivate::new(d(32, 4)).unwrap(),
    };
    // The same bytes as a public point; Debug shows neither coordinate.
    assert_eq!(
        rt(Tpm2bEccSecretPoint::new(secret.clone())),
        rt(Tpm2bEccPoint::new(TpmsEccPoint {
            x: Tpm2bEccParameter::new(d(32, 3)).unwrap(),
            y: Tpm2bEccParameter::new(d(32, 4)).unwrap(),
        }))
    );
    let shown = format!("{secret:?}");
    assert!(
        shown.contains("redacted") && !shown.contains("0303"),
        "{shown}"
    );
    rt(TpmtPublic {
        name_alg: TpmAlgId::SHA256,
        object_attributes: TpmaObject::USER_WITH_AUTH,
        auth_policy: Tpm2bDigest::new(d(32, 9)).unwrap(),
        params: PublicParams::KeyedHash {
            scheme: TpmtScheme::Null,
            unique: Tpm2bDigest::new(d(32, 1)).unwrap(),
        },
    });
    rt(TpmtPublic {
        name_alg: TpmAlgId::SHA256,
        object_attributes: TpmaObject::DECRYPT,
        auth_policy: Tpm2bDigest::empty(),
        params: PublicParams::SymCipher {
            sym: TpmtSymDef::aes_cfb(128),
            unique: Tpm2bDigest::empty(),
        },
    });
    rt(TpmtPublicParms::Ecc(TpmsEccParms {
        curve_id: TpmEccCurve::NIST_P384,
        ..Default::default()
    }));
    rt(TpmtPublicParms::Rsa(TpmsRsaParms {
        key_bits: 4096,
        ..Default::default()
    }));
    rt(TpmtPublicParms::KeyedHash(TpmtScheme::with_hash(
        TpmAlgId::HMAC,
        TpmAlgId::SHA256,
    )));
    rt(TpmtPublicParms::SymCipher(TpmtSymDef::aes_cfb(128)));
    let create = TpmsSensitiveCreate {
        user_auth: Tpm2bAuth::new(d(32, 1)).unwrap(),
        data: Tpm2bSensitiveData::new(d(16, 2)).unwrap(),
    };
    rt(create.clone());
    rt(Tpm2bSensitiveCreate::new(create));
    for sensitive in [
        SensitiveComposite::Rsa(Tpm2bPrivateKeyRsa::new(d(128, 1)).unwrap()),
        SensitiveComposite::Ecc(Tpm2bEccPrivate::new(d(32, 2)).unwrap()),
        SensitiveComposite::Bits(Tpm2bSensitiveData::new(d(20, 3)).unwrap()),
        SensitiveComposite::Sym(Tpm2bSymKey::new(d(16, 4)).unwrap()),
    ] {
        let s = TpmtSensitive {
            auth_value: Tpm2bAuth::new(d(8, 5)).unwrap(),
            seed_value: Tpm2bDigest::empty(),
            sensitive,
        };
        rt(s.clone());
        rt(Tpm2bSensitive::new(s));
    }
    rt(TpmsPcrSelection::new(TpmAlgId::SHA256, &[0, 7, 16, 23]));
    assert_eq!(
        TpmsPcrSelection::new(TpmAlgId::SHA256, &[7, 16]).pcrs(),
        vec![7, 16]
    );
    rt(TpmlPcrSelection(vec![
        TpmsPcrSelection::new(TpmAlgId::SHA1, &[1]),
        TpmsPcrSelection::new(TpmAlgId::SHA256, &[2]),
    ]));
    rt(TpmlDigest(vec![
        Tpm2bDigest::new(d(32, 1)).unwrap(),
        Tpm2bDigest::new(d(32, 2)).unwrap(),
    ]));
    rt(TpmlDigestValues(vec![TpmtHa {
        hash_alg: TpmAlgId::SHA256,
        digest: d(32, 1),
    }]));
    rt(TpmlHandle(vec![TpmHandle::SRK]));
    rt(TpmlCc(vec![TpmCc::SIGN]));
    rt(TpmlEccCurve(vec![TpmEccCurve::NIST_P256]));
    rt(TpmsAlgProperty {
        alg: TpmAlgId::AES,
        alg_properties: TpmaAlgorithm::SYMMETRIC,
    });
    rt(TpmsTaggedProperty {
        property: TpmPt::LEVEL,
        value: 0,
    });
    rt(TpmsTaggedPcrSelect {
        tag: 1,
        pcr_select: vec![0xFF, 0xFF, 0xFF],
    });
    for cap in [
        TpmsCapabilityData::Algs(TpmlAlgProperty(vec![TpmsAlgProperty {
            alg: TpmAlgId::RSA,
            alg_properties: TpmaAlgorithm::ASYMMETRIC | TpmaAlgorithm::OBJECT,
        }])),
        TpmsCapabilityData::Handles(TpmlHandle(vec![TpmHandle::SRK])),
        TpmsCapabilityData::Commands(vec![0x0200_015D]),
        TpmsCapabilityData::PpCommands(TpmlCc(vec![TpmCc::CLEAR])),
        TpmsCapabilityData::AuditCommands(TpmlCc(vec![])),
        TpmsCapabilityData::Pcrs(TpmlPcrSelection(vec![TpmsPcrSelection::new(
            TpmAlgId::SHA256,
            &[0],
        )])),
        TpmsCapabilityData::TpmProperties(TpmlTaggedTpmProperty(vec![TpmsTaggedProperty {
            property: TpmPt::MANUFACTURER,
            value: 0x4942_4D00,
        }])),
        TpmsCapabilityData::PcrProperties(TpmlTaggedPcrProperty(vec![TpmsTaggedPcrSelect {
            tag: 0,
            pcr_select: vec![1, 2, 3],
        }])),
        TpmsCapabilityData::EccCurves(TpmlEccCurve(vec![
            TpmEccCurve::NIST_P256,
            TpmEccCurve::NIST_P384,
        ])),
    ] {
        rt(cap);
    }
    rt(TpmtTicket::null_hashcheck());
    rt(TpmtTicket {
        tag: TpmSt::CREATION,
        hierarchy: TpmHandle::RH_OWNER,
        digest: Tpm2bDigest::new(d(32, 1)).unwrap(),
    });
    rt(TpmtSignature::Null);
    rt(TpmtSignature::Rsa {
        scheme: TpmAlgId::RSASSA,
        hash: TpmAlgId::SHA256,
        sig: Tpm2bPublicKeyRsa::new(d(256, 1)).unwrap(),
    });
    rt(TpmtSignature::Ecc {
        scheme: TpmAlgId::ECDSA,
        hash: TpmAlgId::SHA256,
        r: Tpm2bEccParameter::new(d(32, 1)).unwrap(),
        s: Tpm2bEccParameter::new(d(32, 2)).unwrap(),
    });
    rt(TpmtSignature::Hmac(TpmtHa {
        hash_alg: TpmAlgId::SHA256,
        digest: d(32, 3),
    }));
    rt(TpmsContext {
        sequence: 5,
        saved_handle: TpmHandle(0x8000_0000),
        hierarchy: TpmHandle::RH_OWNER,
        context_blob: Tpm2bContextData::new(d(100, 1)).unwrap(),
    });
    rt(TpmsAuthCommand {
        session_handle: TpmHandle::RS_PW,
        nonce: Tpm2bNonce::empty(),
        session_attributes: TpmaSession::CONTINUE_SESSION,
        hmac: Tpm2bAuth::empty(),
    });
    rt(TpmsAuthResponse {
        nonce: Tpm2bNonce::new(d(32, 1)).unwrap(),
        session_attributes: TpmaSession::CONTINUE_SESSION,
        hmac: Tpm2bAuth::new(d(32, 2)).unwrap(),
    });
}

#[test]
fn bad_selectors_are_errors() {
    let bad_public = hex::decode("0099000b0003047200000000").unwrap();
    let e = TpmtPublic::from_bytes(&bad_public).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadSelector { value: 0x99 });
    assert_eq!(e.offset, 0);
    assert_eq!(e.ty, "TPMT_PUBLIC");
    assert!(TpmtSignature::from_bytes(&[0x00, 0x01]).is_err());
    assert!(TpmtSymDef::from_bytes(&[0x00, 0x0B]).is_err());
    assert!(TpmsCapabilityData::from_bytes(&[0, 0, 0, 0x77, 0, 0, 0, 0]).is_err());
    assert!(
        TpmtHa::from_bytes(&[0x00, 0x06]).is_err(),
        "AES is not a hash"
    );
    assert!(bool::from_bytes(&[7]).is_err());
}

#[test]
fn oversized_sizes_are_refused_before_reading() {
    // TPM2B_DIGEST claiming 65 bytes (max 64), with 65 bytes present.
    let mut b = vec![0x00, 0x41];
    b.extend(d(65, 0));
    let e = Tpm2bDigest::from_bytes(&b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge { size: 65, max: 64 });
    // TPMS_PCR_SELECTION with sizeofSelect 200.
    assert!(TpmsPcrSelection::from_bytes(&[0x00, 0x0B, 200, 0, 0]).is_err());
    // TPML_DIGEST with count 0xFFFFFFFF: refused on the count, nothing allocated.
    let e = TpmlDigest::from_bytes(&[0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::TooLarge { .. }), "{e:?}");
    // TPML_HANDLE with a legal count but no bytes behind it.
    let e = TpmlHandle::from_bytes(&[0, 0, 0, 200]).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated { .. }), "{e:?}");
}

#[test]
fn errors_carry_absolute_offsets() {
    // A TPMT_PUBLIC whose auth policy claims 40 bytes but the buffer ends early.
    let mut b = hex::decode("0023000b00030472").unwrap();
    b.extend([0x00, 0x28, 1, 2, 3]);
    let e = TpmtPublic::from_bytes(&b).unwrap_err();
    assert_eq!(e.offset, 10);
    assert!(matches!(
        e.kind,
        ErrorKind::Truncated {
            needed: 40,
            available: 3
        }
    ));
}

#[test]
fn command_table_facts() {
    // (command, handle auth roles, response handles, decryptable, encryptable) per Part 3.
    let expect: &[(TpmCc, &[bool], usize, bool, bool)] = &[
        (TpmCc::CREATE_PRIMARY, &[true], 1, true, true),
        (TpmCc::CREATE, &[true], 0, true, true),
        (TpmCc::LOAD, &[true], 1, true, true),
        (TpmCc::LOAD_EXTERNAL, &[], 1, true, true),
        (TpmCc::IMPORT, &[true], 0, true, true),
        (TpmCc::DUPLICATE, &[true, false], 0, true, true),
        (TpmCc::OBJECT_CHANGE_AUTH, &[true, false], 0, true, true),
        (TpmCc::UNSEAL, &[true], 0, false, true),
        (TpmCc::SIGN, &[true], 0, true, false),
        (TpmCc::VERIFY_SIGNATURE, &[false], 0, true, false),
        (TpmCc::RSA_DECRYPT, &[true], 0, true, true),
        (TpmCc::ECDH_ZGEN, &[true], 0, true, true),
        (TpmCc::START_AUTH_SESSION, &[false, false], 1, true, true),
        (TpmCc::EVICT_CONTROL, &[true, false], 0, false, false),
        (TpmCc::FLUSH_CONTEXT, &[], 0, false, false),
        (TpmCc::CONTEXT_SAVE, &[false], 0, false, false),
        (TpmCc::CONTEXT_LOAD, &[], 1, false, false),
        (TpmCc::GET_CAPABILITY, &[], 0, false, false),
        (TpmCc::GET_RANDOM, &[], 0, false, true),
        (TpmCc::READ_PUBLIC, &[false], 0, false, true),
        (TpmCc::POLICY_SECRET, &[true, false], 0, true, true),
        (TpmCc::POLICY_PCR, &[false], 0, true, false),
        (TpmCc::POLICY_GET_DIGEST, &[false], 0, false, true),
        (TpmCc::PCR_READ, &[], 0, false, false),
        (TpmCc::PCR_EXTEND, &[true], 0, false, false),
        (TpmCc::HIERARCHY_CHANGE_AUTH, &[true], 0, true, false),
        (
            TpmCc::DICTIONARY_ATTACK_PARAMETERS,
            &[true],
            0,
            false,
            false,
        ),
        (TpmCc::TEST_PARMS, &[], 0, false, false),
    ];
    for (cc, auth, rh, dec, enc) in expect {
        let info = command_info(*cc).unwrap_or_else(|| panic!("{cc} missing from the table"));
        assert_eq!(info.handle_auth, *auth, "{cc} handle auth");
        assert_eq!(info.response_handles, *rh, "{cc} response handles");
        assert_eq!(info.decryptable, *dec, "{cc} decryptable");
        assert_eq!(info.encryptable, *enc, "{cc} encryptable");
    }
    // Every named command of the mission is in the table.
    assert!(COMMANDS.len() >= 45, "{} commands", COMMANDS.len());
}

#[test]
fn command_areas_round_trip() {
    let sign = Sign {
        key_handle: TpmHandle(0x8000_0001),
        digest: Tpm2bDigest::new(d(32, 7)).unwrap(),
        in_scheme: TpmtScheme::with_hash(TpmAlgId::ECDSA, TpmAlgId::SHA256),
        validation: TpmtTicket::null_hashcheck(),
    };
    let params = sign.params_bytes().unwrap();
    let handles: Vec<u8> = sign
        .handles()
        .iter()
        .flat_map(|h| h.0.to_be_bytes())
        .collect();
    let back =
        Sign::unmarshal_areas(&mut Reader::new(&handles), &mut Reader::new(&params)).unwrap();
    assert_eq!(back, sign);
    let frame = build_command(Sign::CC, &sign.handles(), &[], &params).unwrap();
    let parsed = parse_command(&frame, 1).unwrap();
    let any = AnyCommand::parse(
        parsed.cc,
        &mut Reader::new(&frame[10..14]),
        &mut Reader::new(parsed.params),
    )
    .unwrap()
    .unwrap();
    assert_eq!(any, AnyCommand::Sign(sign));
}
