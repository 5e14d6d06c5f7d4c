//! Unit tests of the TSS2 key file codec and of what tpmkey accepts, on files
//! tpm2-openssl wrote and on edits of them.

use super::asn1::{Boolean, PolicyAsn1, TpmKeyAsn1};
use super::*;
use crate::keys::templates::{KeyAlgorithm, SrkKind};
use der::asn1::Any;
use der::asn1::OctetString;
use tpm_commands::attributes::TpmaObject;
use tpm_commands::constants::TpmAlgId;
use tpm_commands::constants::TpmEccCurve;
use tpm_commands::structures::{PublicParams, TpmtScheme};

/// Written by tpm2-openssl 1.1.1 (`openssl genpkey -provider tpm2`) on swtpm 0.7.1.
const P256_EMPTY: &str =
    include_str!("../../../vendor-testvectors/tss2/tpm2-openssl-p256-emptyauth.pem");
const P256_PASSWORD: &str =
    include_str!("../../../vendor-testvectors/tss2/tpm2-openssl-p256-password.pem");
const RSA_EMPTY: &str =
    include_str!("../../../vendor-testvectors/tss2/tpm2-openssl-rsa2048-emptyauth.pem");

fn der_of(pem: &str) -> Vec<u8> {
    der::pem::decode_vec(pem.as_bytes()).unwrap().1
}

fn err(r: Result<Tss2Key>) -> String {
    r.expect_err("must be refused").to_string()
}

/// Replaces the first occurrence of `from` (which must occur once) by `to`.
fn splice(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = find(der, from).expect("pattern present");
    assert!(find(&der[at + 1..], from).is_none(), "pattern unique");
    [&der[..at], to, &der[at + from.len()..]].concat()
}

/// A SEQUENCE header for `len` content bytes (DER length, short or long form).
fn seq_header(len: usize) -> Vec<u8> {
    match len {
        0..=0x7F => vec![0x30, len as u8],
        0x80..=0xFF => vec![0x30, 0x81, len as u8],
        _ => vec![0x30, 0x82, (len >> 8) as u8, len as u8],
    }
}

/// The content of the outer SEQUENCE.
fn content(der: &[u8]) -> &[u8] {
    let hl = match der[1] {
        0x81 => 3,
        0x82 => 4,
        _ => 2,
    };
    &der[hl..]
}

fn reseq(content: &[u8]) -> Vec<u8> {
    [seq_header(content.len()).as_slice(), content].concat()
}

#[test]
fn tpm2_openssl_p256_file_reads() {
    let key = Tss2Key::from_pem(P256_EMPTY.as_bytes()).unwrap();
    assert_eq!(key.key_type, KeyType::Loadable);
    assert!(key.empty_auth);
    assert_eq!(key.parent, TpmHandle::RH_OWNER);
    assert!(!key.rsa_parent && key.policy.is_empty() && key.description.is_none());
    assert_eq!(key.public.name_alg, TpmAlgId::SHA256);
    assert_eq!(key.usable_algorithm().unwrap(), KeyAlgorithm::Ecc256);
    key.check_parent(SrkKind::Ecc).unwrap();
    assert!(key
        .check_parent(SrkKind::Rsa)
        .unwrap_err()
        .to_string()
        .contains("0x40000001 with the ECC P-256 template"));
}

#[test]
fn tpm2_openssl_password_and_rsa_files_read() {
    let key = Tss2Key::from_pem(P256_PASSWORD.as_bytes()).unwrap();
    assert!(!key.empty_auth);
    assert_eq!(key.usable_algorithm().unwrap(), KeyAlgorithm::Ecc256);
    let key = Tss2Key::from_pem(RSA_EMPTY.as_bytes()).unwrap();
    assert!(key.empty_auth);
    assert_eq!(key.usable_algorithm().unwrap(), KeyAlgorithm::Rsa2048);
}

/// Our encoding of a tpm2-openssl key is its file byte for byte, except the one
/// place where tpm2-openssl departs from DER: emptyAuth TRUE is `01` there and
/// `FF` (DER) here. A password key's file is identical.
#[test]
fn writer_matches_tpm2_openssl_but_for_the_emptyauth_boolean() {
    for pem in [P256_EMPTY, RSA_EMPTY] {
        let theirs = der_of(pem);
        let ours = Tss2Key::from_pem(pem.as_bytes()).unwrap().to_der().unwrap();
        assert_eq!(
            ours,
            splice(&theirs, &[0xA0, 3, 1, 1, 0x01], &[0xA0, 3, 1, 1, 0xFF])
        );
    }
    let theirs = der_of(P256_PASSWORD);
    let ours = Tss2Key::from_pem(P256_PASSWORD.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(ours, theirs);
    // And the PEM is the same 64-column armour with the draft's label.
    let pem = Tss2Key::from_pem(RSA_EMPTY.as_bytes())
        .unwrap()
        .to_pem()
        .unwrap();
    assert!(pem.starts_with("-----BEGIN TSS2 PRIVATE KEY-----\n"));
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_eq!(Tss2Key::from_pem(pem.as_bytes()).unwrap(), {
        Tss2Key::from_pem(RSA_EMPTY.as_bytes()).unwrap()
    });
}

#[test]
fn every_truncation_is_an_error() {
    let der = der_of(P256_EMPTY);
    for n in 0..der.len() {
        assert!(Tss2Key::from_der(&der[..n]).is_err(), "prefix {n}");
    }
}

#[test]
fn lengths_that_lie_and_trailing_bytes_are_errors() {
    let der = der_of(P256_EMPTY);
    // Outer length larger than the data (an "oversized" file).
    let mut long = der.clone();
    long[2] = long[2].wrapping_add(1);
    assert!(err(Tss2Key::from_der(&long)).contains("DER"));
    // Bytes after the structure.
    let trailing = [der.as_slice(), &[0]].concat();
    assert!(Tss2Key::from_der(&trailing).is_err());
    // A huge file is refused before decoding.
    let huge = vec![b'A'; MAX_FILE_LEN + 1];
    assert!(err(Tss2Key::from_pem(&huge)).contains("more than any TPM key file"));
}

#[test]
fn a_tpm2b_public_whose_size_lies_is_an_error() {
    let der = der_of(P256_EMPTY);
    // pubkey OCTET STRING (88 bytes) holds TPM2B_PUBLIC size 0x0056.
    for size in [[0x00, 0x57], [0x00, 0x55], [0xFF, 0xFF], [0x00, 0x00]] {
        let bad = splice(
            &der,
            &[0x04, 0x58, 0x00, 0x56],
            &[0x04, 0x58, size[0], size[1]],
        );
        let msg = err(Tss2Key::from_der(&bad));
        assert!(msg.contains("pubkey"), "{size:?}: {msg}");
    }
    // TPM2B_PRIVATE size 0x007e in an OCTET STRING of 128.
    let bad = splice(
        &der,
        &[0x04, 0x81, 0x80, 0x00, 0x7E],
        &[0x04, 0x81, 0x80, 0x00, 0x7F],
    );
    assert!(err(Tss2Key::from_der(&bad)).contains("privkey"));
}

#[test]
fn unknown_and_other_type_oids() {
    let der = der_of(P256_EMPTY);
    let oid = [0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x03];
    let wrong = splice(
        &der,
        &oid,
        &[0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x09],
    );
    assert!(err(Tss2Key::from_der(&wrong)).contains("unknown key type 2.23.133.10.1.9"));
    // An RSA private key OID (1.2.840.113549.1.1.1) where the type goes.
    let rsa = [
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
    ];
    let wrong = reseq(&splice(content(&der), &oid, &rsa));
    assert!(err(Tss2Key::from_der(&wrong)).contains("unknown key type"));
    let sealed = splice(
        &der,
        &oid,
        &[0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x05],
    );
    let key = Tss2Key::from_der(&sealed).unwrap();
    assert!(key
        .usable_algorithm()
        .unwrap_err()
        .to_string()
        .contains("sealed"));
    let old = reseq(&splice(
        content(&der),
        &oid,
        &[0x06, 0x05, 0x67, 0x81, 0x05, 0x0A, 0x02],
    ));
    assert_eq!(Tss2Key::from_der(&old).unwrap().key_type, KeyType::Loadable);
}

#[test]
fn parents_other_than_the_srk_are_named() {
    let der = der_of(P256_EMPTY);
    let owner = [0x02, 0x04, 0x40, 0x00, 0x00, 0x01];
    let ffff = [0x02, 0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF];
    let key = Tss2Key::from_der(&reseq(&splice(content(&der), &owner, &ffff))).unwrap();
    let msg = key.check_parent(SrkKind::Ecc).unwrap_err().to_string();
    assert!(msg.contains("0xffffffff"), "{msg}");
    let persistent = [0x02, 0x05, 0x00, 0x81, 0x00, 0x00, 0x01];
    let key = Tss2Key::from_der(&reseq(&splice(content(&der), &owner, &persistent))).unwrap();
    assert_eq!(key.parent, TpmHandle::SRK);
    key.check_parent(SrkKind::Ecc).unwrap();
    key.check_parent(SrkKind::Rsa).unwrap();
    // Not a 32-bit handle: negative, or 2^32.
    for bad in [&[0x02, 0x01, 0xFF][..], &[0x02, 0x05, 0x01, 0, 0, 0, 0]] {
        assert!(Tss2Key::from_der(&reseq(&splice(content(&der), &owner, bad))).is_err());
    }
}

#[test]
fn duplicated_and_unknown_fields_are_errors() {
    let der = der_of(P256_EMPTY);
    let empty_auth = [0xA0, 3, 1, 1, 1];
    let twice = reseq(&splice(
        content(&der),
        &empty_auth,
        &[empty_auth, empty_auth].concat(),
    ));
    assert!(err(Tss2Key::from_der(&twice)).contains("DER"));
    // [6] (a field this reader does not know) before the parent.
    let owner = [0x02, 0x04, 0x40, 0x00, 0x00, 0x01];
    let unknown = reseq(&splice(
        content(&der),
        &owner,
        &[&[0xA6, 0x03, 0x04, 0x01, 0x00][..], &owner].concat(),
    ));
    assert!(err(Tss2Key::from_der(&unknown)).contains("DER"));
}

fn key_with(f: impl FnOnce(&mut Tss2Key)) -> Tss2Key {
    let mut k = Tss2Key::from_pem(P256_EMPTY.as_bytes()).unwrap();
    f(&mut k);
    k
}

#[test]
fn keys_tpmkey_cannot_use_are_refused_with_the_reason() {
    let refused = |k: Tss2Key| k.usable_algorithm().unwrap_err().to_string();
    let msg = refused(key_with(|k| {
        k.policy = vec![
            PolicyStep {
                command: TpmCc::POLICY_PCR,
                body: vec![],
            },
            PolicyStep {
                command: TpmCc::POLICY_AUTH_VALUE,
                body: vec![],
            },
        ]
    }));
    assert!(
        msg.contains("TPM2_PolicyPCR, TPM2_PolicyAuthValue"),
        "{msg}"
    );
    let msg = refused(key_with(|k| {
        k.public.auth_policy = tpm_commands::buffers::Tpm2bDigest::new(vec![1; 32]).unwrap()
    }));
    assert!(msg.contains("authorization policy"), "{msg}");
    assert!(refused(key_with(|k| k.key_type = KeyType::Importable))
        .contains("without its import secret"));
    assert!(refused(key_with(|k| k.secret = Some(vec![0, 0])))
        .contains("loadable key with an import secret"));
    let importable = key_with(|k| {
        k.key_type = KeyType::Importable;
        k.secret = Some(vec![0, 0]);
    });
    assert_eq!(importable.usable_algorithm().unwrap(), KeyAlgorithm::Ecc256);
    let msg = refused(key_with(|k| {
        k.public.object_attributes |= TpmaObject::RESTRICTED
    }));
    assert!(msg.contains("restricted"), "{msg}");
    let msg = refused(key_with(|k| {
        k.public.object_attributes.remove(TpmaObject::SIGN_ENCRYPT)
    }));
    assert!(msg.contains("cannot sign"), "{msg}");
    let msg = refused(key_with(|k| {
        k.public
            .object_attributes
            .remove(TpmaObject::USER_WITH_AUTH)
    }));
    assert!(msg.contains("policy only"), "{msg}");
    let msg = refused(key_with(|k| {
        if let PublicParams::Ecc { parms, .. } = &mut k.public.params {
            parms.scheme = TpmtScheme::Hash {
                scheme: TpmAlgId::ECDSA,
                hash: TpmAlgId::SHA256,
            };
        }
    }));
    assert!(msg.contains("fixed to one signature scheme"), "{msg}");
    let msg = refused(key_with(|k| {
        if let PublicParams::Ecc { parms, .. } = &mut k.public.params {
            parms.curve_id = TpmEccCurve::NIST_P521;
        }
    }));
    assert!(msg.contains("P-256 and P-384"), "{msg}");
}

/// TPMAuthPolicy (draft §5.1): a signed policy for TPM2_PolicyAuthorize.
#[derive(Clone, Debug, PartialEq, Eq, der::Sequence)]
struct AuthPolicyAsn1 {
    #[asn1(context_specific = "0", optional = "true")]
    name: Option<String>,
    #[asn1(context_specific = "1")]
    policy: Vec<PolicyAsn1>,
}

/// The draft's structure with every optional field, encoded independently of
/// [`Tss2Key::to_der`], reads back field by field.
#[test]
fn all_optional_fields_read() {
    let base = Tss2Key::from_pem(P256_EMPTY.as_bytes()).unwrap();
    let asn1 = TpmKeyAsn1 {
        key_type: OID_LOADABLE,
        empty_auth: Some(Boolean::der(true)),
        policy: Some(vec![PolicyAsn1 {
            command_code: TpmCc::POLICY_AUTH_VALUE.0,
            command_policy: OctetString::new(Vec::new()).unwrap(),
        }]),
        secret: None,
        auth_policy: Some(vec![Any::from_der(
            &AuthPolicyAsn1 {
                name: Some("kernel 6.1".into()),
                policy: vec![PolicyAsn1 {
                    command_code: TpmCc::POLICY_PCR.0,
                    command_policy: OctetString::new(vec![0, 0]).unwrap(),
                }],
            }
            .to_der()
            .unwrap(),
        )
        .unwrap()]),
        description: Some("alice@laptop".into()),
        rsa_parent: Some(Boolean::der(true)),
        parent: TpmHandle::RH_OWNER.0,
        pubkey: OctetString::new(Tpm2bPublic::new(base.public.clone()).to_bytes().unwrap())
            .unwrap(),
        privkey: OctetString::new(base.private.to_bytes().unwrap()).unwrap(),
    };
    let key = Tss2Key::from_der(&asn1.to_der().unwrap()).unwrap();
    assert_eq!(key.description.as_deref(), Some("alice@laptop"));
    assert!(key.rsa_parent && key.empty_auth);
    assert_eq!(key.auth_policies, 1);
    assert_eq!(key.policy[0].command, TpmCc::POLICY_AUTH_VALUE);
    assert_eq!(key.public, base.public);
    key.check_parent(SrkKind::Rsa).unwrap();
    assert!(key.check_parent(SrkKind::Ecc).is_err());
}

/// The older label "TSS2 KEY BLOB" with the draft's structure reads; the older
/// layout (parent, pubkey as [1], [2] EXPLICIT) is refused, saying so.
#[test]
fn old_key_blob_label() {
    let der = der_of(P256_PASSWORD);
    let pem = der::pem::encode_string(OLD_PEM_LABEL, der::pem::LineEnding::LF, &der).unwrap();
    assert!(is_tss2_pem(pem.as_bytes()));
    assert_eq!(
        Tss2Key::from_pem(pem.as_bytes()).unwrap(),
        Tss2Key::from_pem(P256_PASSWORD.as_bytes()).unwrap()
    );
    // SEQUENCE { OID 2.23.133.10.2, [1] { INTEGER 0x81000001 }, [2] { OCTET STRING },
    // OCTET STRING }
    let key = Tss2Key::from_pem(P256_PASSWORD.as_bytes()).unwrap();
    let pubkey = Tpm2bPublic::new(key.public).to_bytes().unwrap();
    let privkey = key.private.to_bytes().unwrap();
    let mut old = vec![0x06, 0x05, 0x67, 0x81, 0x05, 0x0A, 0x02];
    old.extend([0xA1, 0x07, 0x02, 0x05, 0x00, 0x81, 0x00, 0x00, 0x01]);
    old.extend([0xA2, 0x02 + pubkey.len() as u8, 0x04, pubkey.len() as u8]);
    old.extend(&pubkey);
    old.extend([0x04, 0x81, privkey.len() as u8]);
    old.extend(&privkey);
    let pem =
        der::pem::encode_string(OLD_PEM_LABEL, der::pem::LineEnding::LF, &reseq(&old)).unwrap();
    assert!(err(Tss2Key::from_pem(pem.as_bytes())).contains("layout before the draft"));
}

#[test]
fn text_around_the_block_and_other_pem_files() {
    let text = format!("a key from tpm2-openssl\n{P256_EMPTY}\ntrailing words\n");
    assert!(Tss2Key::from_pem(text.as_bytes()).is_ok());
    let other = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(!is_tss2_pem(other.as_bytes()));
    let broken = P256_EMPTY.replace('M', "!");
    assert!(err(Tss2Key::from_pem(broken.as_bytes())).contains("PEM"));
}
