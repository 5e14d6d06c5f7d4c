//! Importing existing private keys with TPM2_Import and a real outer wrapper: the
//! imported key's public key is the original's, its signatures verify against the
//! original, and the private key never appears on the wire.

mod common;

use common::proxy::TpmProxy;
use common::Swtpm;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};
use tpm_commands::constants::TpmAlgId;
use tpm_commands::structures::{PublicParams, TpmtSignature};
use tpmkey::keys::import::{import_key, PrivateKey};
use tpmkey::keys::ops::{load_key, sign};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
use tpmkey::session::start::SessionParams;
use tpmkey::Tpm;
use zeroize::Zeroizing;

#[test]
fn imported_p256_key_signs_for_its_original_public_key() {
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    for kind in [SrkKind::Ecc, SrkKind::Rsa] {
        let original = p256::SecretKey::random(&mut rand_core::OsRng);
        let d = original.to_bytes().to_vec();
        let point = original.public_key().to_encoded_point(false);
        let key = PrivateKey::Ecc {
            alg: KeyAlgorithm::Ecc256,
            d: Zeroizing::new(d.clone()),
            x: point.x().unwrap().to_vec(),
            y: point.y().unwrap().to_vec(),
        };

        let mut tpm = Tpm::open(&proxy.tcti().parse().unwrap()).unwrap();
        let srk = Srk::load(&mut tpm, kind).unwrap();
        let salt = srk.salt_key().unwrap();
        let mut s = tpm
            .start_session(&SessionParams::salted_hmac(&salt))
            .unwrap();
        let pin = b"import-pin-99";
        let wrapped = import_key(&mut tpm, &srk, &mut s, &key, pin).unwrap();
        let PublicParams::Ecc { unique, .. } = &wrapped.public.params else {
            panic!()
        };
        assert_eq!(unique.x.as_bytes(), point.x().unwrap().as_slice());
        assert_eq!(unique.y.as_bytes(), point.y().unwrap().as_slice());

        let loaded = load_key(&mut tpm, &srk, &mut s, &wrapped).unwrap();
        let digest = Sha256::digest(b"imported");
        let sig = sign(
            &mut tpm,
            &loaded,
            &mut s,
            pin,
            &digest,
            TpmAlgId::ECDSA,
            TpmAlgId::SHA256,
        )
        .unwrap();
        let TpmtSignature::Ecc { r, s: sv, .. } = sig else {
            panic!()
        };
        let sig = p256::ecdsa::Signature::from_scalars(
            *p256::FieldBytes::from_slice(r.as_bytes()),
            *p256::FieldBytes::from_slice(sv.as_bytes()),
        )
        .unwrap();
        p256::ecdsa::VerifyingKey::from(original.public_key())
            .verify_prehash(&digest, &sig)
            .expect("verifies against the original key");
        drop(tpm);

        assert!(
            !proxy.saw_bytes(&d),
            "{kind:?}: the private scalar crossed the wire in clear"
        );
        assert!(
            !proxy.saw_bytes(&d[..16]),
            "{kind:?}: part of the private scalar crossed the wire"
        );
        assert!(!proxy.saw_bytes(pin), "{kind:?}: the PIN crossed the wire");
        proxy.clear();
    }
}

#[test]
fn another_tpms_key_blob_does_not_load_here() {
    // A key wrapped by another TPM (its SRK seed) fails this TPM's integrity check.
    let sim = Swtpm::start();
    let other = Swtpm::start();
    let original = p256::SecretKey::random(&mut rand_core::OsRng);
    let point = original.public_key().to_encoded_point(false);
    let key = PrivateKey::Ecc {
        alg: KeyAlgorithm::Ecc256,
        d: Zeroizing::new(original.to_bytes().to_vec()),
        x: point.x().unwrap().to_vec(),
        y: point.y().unwrap().to_vec(),
    };
    let mut tpm = Tpm::open(&sim.tcti().parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&srk.salt_key().unwrap()))
        .unwrap();
    // Wrap to the other TPM's SRK public key, then hand the result to this TPM.
    let mut tpm2 = Tpm::open(&other.tcti().parse().unwrap()).unwrap();
    let srk2 = Srk::load(&mut tpm2, SrkKind::Ecc).unwrap();
    let mut s2 = tpm2
        .start_session(&SessionParams::salted_hmac(&srk2.salt_key().unwrap()))
        .unwrap();
    let wrapped = import_key(&mut tpm2, &srk2, &mut s2, &key, b"").unwrap();
    let e = load_key(&mut tpm, &srk, &mut s, &wrapped).unwrap_err();
    assert!(e.response_code().is_some(), "{e}");
}

#[test]
fn imported_p384_and_rsa_keys_sign_for_their_original_public_keys() {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts, SignatureScheme};
    use sha2::Sha384;
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let mut tpm = Tpm::open(&proxy.tcti().parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&srk.salt_key().unwrap()))
        .unwrap();

    // P-384.
    let original = p384::SecretKey::random(&mut rand_core::OsRng);
    let d384 = original.to_bytes().to_vec();
    let point = original.public_key().to_encoded_point(false);
    let key = PrivateKey::Ecc {
        alg: KeyAlgorithm::Ecc384,
        d: Zeroizing::new(d384.clone()),
        x: point.x().unwrap().to_vec(),
        y: point.y().unwrap().to_vec(),
    };
    let wrapped = import_key(&mut tpm, &srk, &mut s, &key, b"p384-pin").unwrap();
    let loaded = load_key(&mut tpm, &srk, &mut s, &wrapped).unwrap();
    let digest = Sha384::digest(b"imported p384");
    let TpmtSignature::Ecc { r, s: sv, .. } = sign(
        &mut tpm,
        &loaded,
        &mut s,
        b"p384-pin",
        &digest,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA384,
    )
    .unwrap() else {
        panic!()
    };
    let sig = p384::ecdsa::Signature::from_scalars(
        *p384::FieldBytes::from_slice(r.as_bytes()),
        *p384::FieldBytes::from_slice(sv.as_bytes()),
    )
    .unwrap();
    p384::ecdsa::VerifyingKey::from(original.public_key())
        .verify_prehash(&digest, &sig)
        .expect("P-384 signature verifies against the original key");
    tpm.flush(loaded.handle).unwrap();

    // RSA-2048.
    let original = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let p = original.primes()[0].to_bytes_be();
    let key = PrivateKey::Rsa {
        alg: KeyAlgorithm::Rsa2048,
        n: original.n().to_bytes_be(),
        e: original
            .e()
            .to_bytes_be()
            .iter()
            .fold(0u32, |a, b| (a << 8) | u32::from(*b)),
        p: Zeroizing::new(p.clone()),
    };
    let wrapped = import_key(&mut tpm, &srk, &mut s, &key, b"").unwrap();
    let PublicParams::Rsa { unique, .. } = &wrapped.public.params else {
        panic!()
    };
    assert_eq!(
        unique.as_bytes(),
        original.n().to_bytes_be().as_slice(),
        "modulus"
    );
    let loaded = load_key(&mut tpm, &srk, &mut s, &wrapped).unwrap();
    let digest = Sha256::digest(b"imported rsa");
    let TpmtSignature::Rsa { sig, .. } = sign(
        &mut tpm,
        &loaded,
        &mut s,
        b"",
        &digest,
        TpmAlgId::RSASSA,
        TpmAlgId::SHA256,
    )
    .unwrap() else {
        panic!()
    };
    rsa::Pkcs1v15Sign::new::<Sha256>()
        .verify(&original.to_public_key(), &digest, sig.as_bytes())
        .expect("RSA signature verifies against the original key");
    drop(tpm);
    assert!(!proxy.saw_bytes(&d384[..16]), "P-384 scalar on the wire");
    assert!(!proxy.saw_bytes(&p[..16]), "RSA prime on the wire");
}
