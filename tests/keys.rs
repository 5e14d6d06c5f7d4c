//! Signing keys of each algorithm the TPM supports (checked with TPM2_TestParms):
//! created and loaded through a salted session, used to sign with each scheme and
//! hash, and every signature verified in software (p256, p384, rsa crates).

mod common;

use common::Swtpm;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::traits::SignatureScheme;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tpm_commands::constants::TpmAlgId;
use tpm_commands::structures::{PublicParams, TpmtPublic, TpmtSignature};
use tpmkey::keys::ops::{create_key, load_key, sign, supports};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
use tpmkey::session::start::SessionParams;
use tpmkey::Tpm;

fn digests() -> Vec<(TpmAlgId, Vec<u8>)> {
    let m = b"the quick brown fox";
    vec![
        (TpmAlgId::SHA256, Sha256::digest(m).to_vec()),
        (TpmAlgId::SHA384, Sha384::digest(m).to_vec()),
        (TpmAlgId::SHA512, Sha512::digest(m).to_vec()),
    ]
}

fn ecc_point(public: &TpmtPublic) -> Vec<u8> {
    let PublicParams::Ecc { unique, .. } = &public.params else {
        panic!("not ECC")
    };
    let mut p = vec![4u8];
    p.extend(unique.x.as_bytes());
    p.extend(unique.y.as_bytes());
    p
}

fn verify_ecdsa(alg: KeyAlgorithm, public: &TpmtPublic, digest: &[u8], sig: &TpmtSignature) {
    let TpmtSignature::Ecc { r, s, .. } = sig else {
        panic!("not ECDSA")
    };
    let point = ecc_point(public);
    match alg {
        KeyAlgorithm::Ecc256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
            let sig = p256::ecdsa::Signature::from_scalars(
                *p256::FieldBytes::from_slice(r.as_bytes()),
                *p256::FieldBytes::from_slice(s.as_bytes()),
            )
            .unwrap();
            // ECDSA over a longer digest uses its leftmost bits (the TPM does the same).
            vk.verify_prehash(digest, &sig).expect("P-256 signature");
        }
        KeyAlgorithm::Ecc384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
            let sig = p384::ecdsa::Signature::from_scalars(
                *p384::FieldBytes::from_slice(r.as_bytes()),
                *p384::FieldBytes::from_slice(s.as_bytes()),
            )
            .unwrap();
            vk.verify_prehash(digest, &sig).expect("P-384 signature");
        }
        _ => unreachable!(),
    }
}

fn verify_rsa(public: &TpmtPublic, hash: TpmAlgId, digest: &[u8], sig: &TpmtSignature) {
    let PublicParams::Rsa { unique, parms } = &public.params else {
        panic!("not RSA")
    };
    let e = if parms.exponent == 0 {
        65537
    } else {
        parms.exponent
    };
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(unique.as_bytes()),
        rsa::BigUint::from(e),
    )
    .unwrap();
    let TpmtSignature::Rsa { scheme, sig, .. } = sig else {
        panic!("not RSA")
    };
    let s = sig.as_bytes();
    let r = match (*scheme, hash) {
        (TpmAlgId::RSASSA, TpmAlgId::SHA256) => {
            rsa::Pkcs1v15Sign::new::<Sha256>().verify(&key, digest, s)
        }
        (TpmAlgId::RSASSA, TpmAlgId::SHA384) => {
            rsa::Pkcs1v15Sign::new::<Sha384>().verify(&key, digest, s)
        }
        (TpmAlgId::RSASSA, TpmAlgId::SHA512) => {
            rsa::Pkcs1v15Sign::new::<Sha512>().verify(&key, digest, s)
        }
        // The TPM uses the largest salt that fits (ms-tpm) or the digest size; accept any.
        (TpmAlgId::RSAPSS, TpmAlgId::SHA256) => rsa::Pss::new::<Sha256>().verify(&key, digest, s),
        (TpmAlgId::RSAPSS, TpmAlgId::SHA384) => rsa::Pss::new::<Sha384>().verify(&key, digest, s),
        (TpmAlgId::RSAPSS, TpmAlgId::SHA512) => rsa::Pss::new::<Sha512>().verify(&key, digest, s),
        other => panic!("{other:?}"),
    };
    r.unwrap_or_else(|e| panic!("{scheme} {hash} signature: {e}"));
}

#[test]
fn every_supported_algorithm_signs_and_verifies() {
    let sim = Swtpm::start();
    let mut tpm = Tpm::open(&sim.tcti().parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let salt = srk.salt_key().unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let mut tested = Vec::new();
    for alg in [
        KeyAlgorithm::Ecc256,
        KeyAlgorithm::Ecc384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ] {
        if !supports(&mut tpm, alg).unwrap() {
            assert!(
                matches!(alg, KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096),
                "swtpm must support {alg:?}"
            );
            continue;
        }
        let auth = b"pin-1234";
        let key = create_key(&mut tpm, &srk, &mut s, alg, auth).unwrap();
        let loaded = load_key(&mut tpm, &srk, &mut s, &key).unwrap();
        let schemes: &[TpmAlgId] = match alg {
            KeyAlgorithm::Ecc256 | KeyAlgorithm::Ecc384 => &[TpmAlgId::ECDSA],
            _ => &[TpmAlgId::RSASSA, TpmAlgId::RSAPSS],
        };
        for scheme in schemes {
            for (hash, digest) in digests() {
                let sig = sign(&mut tpm, &loaded, &mut s, auth, &digest, *scheme, hash)
                    .unwrap_or_else(|e| panic!("{alg:?} {scheme} {hash}: {e}"));
                match alg {
                    KeyAlgorithm::Ecc256 | KeyAlgorithm::Ecc384 => {
                        verify_ecdsa(alg, &key.public, &digest, &sig)
                    }
                    _ => verify_rsa(&key.public, hash, &digest, &sig),
                }
            }
        }
        tpm.flush(loaded.handle).unwrap();
        tested.push(alg);
    }
    assert!(tested.len() >= 3, "tested {tested:?}");
    eprintln!("algorithms tested: {tested:?}");
}
