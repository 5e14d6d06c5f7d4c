//! Salted sessions, parameter encryption and signing keys against a real swtpm,
//! watched by a recording proxy (no secret in clear on the wire) and a tampering
//! proxy (a flipped response bit is an integrity error).

mod common;

use common::proxy::TpmProxy;
use common::Swtpm;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};
use tpm_commands::attributes::TpmaSession;
use tpm_commands::commands::GetRandom;
use tpm_commands::constants::TpmAlgId;
use tpm_commands::rc::{RcIndex, ResponseCode};
use tpm_commands::structures::{PublicParams, TpmtSignature};
use tpmkey::keys::ops::{create_key, load_key, sign};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
use tpmkey::session::start::SessionParams;
use tpmkey::{Auth, Error, Tpm};

fn open(tcti: &str) -> Tpm {
    Tpm::open(&tcti.parse().unwrap()).unwrap()
}

fn verify_p256(public: &tpm_commands::structures::TpmtPublic, digest: &[u8], sig: &TpmtSignature) {
    let PublicParams::Ecc { unique, .. } = &public.params else {
        panic!("not ECC")
    };
    let mut sec1 = vec![4u8];
    sec1.extend(unique.x.as_bytes());
    sec1.extend(unique.y.as_bytes());
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let TpmtSignature::Ecc { r, s, .. } = sig else {
        panic!("not ECDSA: {sig:?}")
    };
    let sig = p256::ecdsa::Signature::from_scalars(
        *p256::FieldBytes::from_slice(r.as_bytes()),
        *p256::FieldBytes::from_slice(s.as_bytes()),
    )
    .unwrap();
    vk.verify_prehash(digest, &sig)
        .expect("ECDSA signature verifies in software");
}

#[test]
fn salted_sessions_encrypt_both_ways_ecc_and_rsa_srk() {
    let tpm_sim = Swtpm::start();
    for kind in [SrkKind::Ecc, SrkKind::Rsa] {
        let mut tpm = open(&tpm_sim.tcti());
        let srk = Srk::load(&mut tpm, kind).unwrap();
        assert!(!srk.persistent);
        let salt = srk.salt_key().unwrap();
        let mut s = tpm
            .start_session(&SessionParams::salted_hmac(&salt))
            .unwrap();
        assert!(s.is_salted());
        // GetRandom has no authorized handle: the session rides along to encrypt the
        // response, and its response HMAC is verified.
        s.set_attributes(TpmaSession::CONTINUE_SESSION | TpmaSession::ENCRYPT);
        for _ in 0..3 {
            let r = tpm
                .execute(
                    &GetRandom {
                        bytes_requested: 32,
                    },
                    &[],
                    &mut [Auth::Extra(&mut s)],
                )
                .unwrap();
            assert_eq!(r.random_bytes.len(), 32);
        }
        tpm.flush_session(&mut s).unwrap();
    }
}

#[test]
fn ecdsa_key_signs_and_no_secret_crosses_the_wire() {
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let mut tpm = open(&proxy.tcti());
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let salt = srk.salt_key().unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let pin = b"correct horse 4711";
    let key = create_key(&mut tpm, &srk, &mut s, KeyAlgorithm::Ecc256, pin).unwrap();
    let loaded = load_key(&mut tpm, &srk, &mut s, &key).unwrap();
    let digest = Sha256::digest(b"message to sign");
    // libtpms answers TPM_RC_RETRY to the first authorization of a DA-protected
    // object after startup; the driver resends the identical frame.
    proxy.clear();
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
    verify_p256(&key.public, &digest, &sig);
    let first = proxy.exchanges();
    if first.len() == 2 {
        assert_eq!(first[0].rc(), 0x922, "first try answered TPM_RC_RETRY");
        assert_eq!(
            first[0].command, first[1].command,
            "the retry resends identical bytes"
        );
    }
    // A steady-state signature is exactly one TPM command.
    proxy.clear();
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
    assert_eq!(proxy.command_count(), 1, "commands per signature");
    verify_p256(&key.public, &digest, &sig);
    for _ in 0..3 {
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
        verify_p256(&key.public, &digest, &sig);
    }
    drop(tpm);
    assert!(proxy.exchanges().len() > 3);
    assert!(
        !proxy.saw_bytes(pin),
        "the authValue crossed the wire in clear"
    );
    assert!(
        !proxy.saw_bytes(&pin[..8]),
        "part of the authValue crossed the wire in clear"
    );
}

#[test]
fn wrong_auth_is_auth_fail_on_session_1() {
    let sim = Swtpm::start();
    let mut tpm = open(&sim.tcti());
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let salt = srk.salt_key().unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let key = create_key(&mut tpm, &srk, &mut s, KeyAlgorithm::Ecc256, b"1234").unwrap();
    let loaded = load_key(&mut tpm, &srk, &mut s, &key).unwrap();
    let digest = Sha256::digest(b"x");
    let e = sign(
        &mut tpm,
        &loaded,
        &mut s,
        b"4321",
        &digest,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    )
    .unwrap_err();
    let rc = e
        .response_code()
        .unwrap_or_else(|| panic!("not a TPM error: {e}"));
    assert_eq!(rc.base(), ResponseCode::AUTH_FAIL, "{e}");
    assert_eq!(rc.index(), RcIndex::Session(1));
    assert!(
        e.to_string().contains("TPM_RC_AUTH_FAIL (session 1)"),
        "{e}"
    );
    // The session survives a failed command (nonces did not roll): the right PIN works.
    let sig = sign(
        &mut tpm,
        &loaded,
        &mut s,
        b"1234",
        &digest,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    )
    .unwrap();
    verify_p256(&key.public, &digest, &sig);
}

#[test]
fn tampered_response_is_an_integrity_error() {
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let mut tpm = open(&proxy.tcti());
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let salt = srk.salt_key().unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let key = create_key(&mut tpm, &srk, &mut s, KeyAlgorithm::Ecc256, b"pin").unwrap();
    let loaded = load_key(&mut tpm, &srk, &mut s, &key).unwrap();
    let digest = Sha256::digest(b"y");
    sign(
        &mut tpm,
        &loaded,
        &mut s,
        b"pin",
        &digest,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    )
    .unwrap();
    // Flip one bit of the last byte: the response HMAC; then one bit of the
    // parameter area (just after parameterSize).
    for (what, at) in [("response HMAC", usize::MAX), ("response parameter", 14)] {
        proxy.set_tamper(Some(Box::new(move |_cmd: &[u8], rsp: &mut Vec<u8>| {
            if rsp.len() > 10 {
                let i = if at == usize::MAX {
                    rsp.len() - 1
                } else {
                    at + 1
                };
                rsp[i] ^= 0x01;
            }
        })));
        let e = sign(
            &mut tpm,
            &loaded,
            &mut s,
            b"pin",
            &digest,
            TpmAlgId::ECDSA,
            TpmAlgId::SHA256,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Integrity { .. }), "{what}: {e:?}");
        proxy.set_tamper(None);
        // The session is out of step with the TPM now and refuses further use.
        let e = sign(
            &mut tpm,
            &loaded,
            &mut s,
            b"pin",
            &digest,
            TpmAlgId::ECDSA,
            TpmAlgId::SHA256,
        )
        .unwrap_err();
        assert!(e.to_string().contains("start a new session"), "{e}");
        tpm.flush_session(&mut s).unwrap();
        s = tpm
            .start_session(&SessionParams::salted_hmac(&salt))
            .unwrap();
        sign(
            &mut tpm,
            &loaded,
            &mut s,
            b"pin",
            &digest,
            TpmAlgId::ECDSA,
            TpmAlgId::SHA256,
        )
        .unwrap();
    }
}

#[test]
fn another_tpm_fails_the_pinned_srk_check() {
    let first = Swtpm::start();
    let second = Swtpm::start();
    let pinned = {
        let mut tpm = open(&first.tcti());
        Srk::load(&mut tpm, SrkKind::Ecc).unwrap().name
    };
    let mut same = open(&first.tcti());
    Srk::load(&mut same, SrkKind::Ecc)
        .unwrap()
        .check_pinned(&pinned)
        .expect("same TPM, same SRK Name");
    let mut other = open(&second.tcti());
    let e = Srk::load(&mut other, SrkKind::Ecc)
        .unwrap()
        .check_pinned(&pinned)
        .unwrap_err();
    assert!(
        e.to_string().contains("not the one the keys belong to"),
        "{e}"
    );
}

#[test]
fn bound_sessions_salted_and_unsalted() {
    use tpmkey::keys::ops::{seal, unseal};
    use tpmkey::session::start::BindTo;
    use tpmkey::session::SessionKind;
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let mut tpm = open(&proxy.tcti());
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let salt = srk.salt_key().unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let auth = b"bound-pin-31";
    let secret = b"bound sealed secret";
    let sealed = seal(&mut tpm, &srk, &mut s, secret, auth, None).unwrap();
    let obj = load_key(&mut tpm, &srk, &mut s, &sealed).unwrap();
    let key = create_key(&mut tpm, &srk, &mut s, KeyAlgorithm::Ecc256, auth).unwrap();
    let k = load_key(&mut tpm, &srk, &mut s, &key).unwrap();
    let digest = Sha256::digest(b"bound");
    for salted in [true, false] {
        // Bound to the sealed object: its authValue is left out of the HMAC key when
        // authorizing that object, but kept in the parameter-encryption key; when
        // authorizing another entity (the signing key), that entity's auth is used.
        let params = SessionParams {
            kind: SessionKind::Hmac,
            hash: tpmkey::crypto::hash::HashAlg::Sha256,
            salt_key: if salted { Some(&salt) } else { None },
            bind: Some(BindTo {
                handle: obj.handle,
                name: &obj.name,
                auth,
            }),
            aes_bits: Some(128),
        };
        let mut b = tpm.start_session(&params).unwrap();
        assert_eq!(&unseal(&mut tpm, &obj, &mut b, auth).unwrap()[..], secret);
        let sig = sign(
            &mut tpm,
            &k,
            &mut b,
            auth,
            &digest,
            TpmAlgId::ECDSA,
            TpmAlgId::SHA256,
        )
        .unwrap();
        verify_p256(&key.public, &digest, &sig);
        // Tampering is caught on bound sessions too.
        proxy.set_tamper(Some(Box::new(|_c: &[u8], r: &mut Vec<u8>| {
            if r.len() > 10 {
                let n = r.len() - 3;
                r[n] ^= 0x10;
            }
        })));
        let e = unseal(&mut tpm, &obj, &mut b, auth).unwrap_err();
        proxy.set_tamper(None);
        assert!(matches!(e, Error::Integrity { .. }), "{e:?}");
        tpm.flush_session(&mut b).unwrap();
    }
    drop(tpm);
    // The salted pass keeps everything off the wire. (The unsalted bound session's
    // keys derive from the authValue, which also never travels in clear.)
    assert!(!proxy.saw_bytes(secret), "sealed secret on the wire");
    assert!(!proxy.saw_bytes(auth), "authValue on the wire");
}

#[test]
fn persistent_srk_is_used_when_it_matches_the_template() {
    use tpm_commands::commands::EvictControl;
    use tpm_commands::constants::TpmHandle;
    let sim = Swtpm::start();
    let mut tpm = open(&sim.tcti());
    let transient = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    assert!(!transient.persistent);
    let owner = TpmHandle::RH_OWNER.0.to_be_bytes();
    let evict = EvictControl {
        auth: TpmHandle::RH_OWNER,
        object_handle: transient.handle,
        persistent_handle: TpmHandle::SRK,
    };
    tpm.execute(
        &evict,
        &[&owner, &transient.name],
        &mut [Auth::EmptyPassword],
    )
    .unwrap();
    drop(tpm);
    let mut tpm = open(&sim.tcti());
    let persistent = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    assert!(persistent.persistent);
    assert_eq!(persistent.handle, TpmHandle::SRK);
    assert_eq!(
        persistent.name, transient.name,
        "same template, same TPM: same key"
    );
    persistent.check_pinned(&transient.name).unwrap();
    // An RSA SRK is asked for: 0x81000001 holds an ECC one, so a transient RSA SRK is made.
    let rsa = Srk::load(&mut tpm, SrkKind::Rsa).unwrap();
    assert!(!rsa.persistent);
    // A salted session to the persistent SRK works.
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&persistent.salt_key().unwrap()))
        .unwrap();
    s.set_attributes(TpmaSession::CONTINUE_SESSION | TpmaSession::ENCRYPT);
    tpm.execute(
        &GetRandom { bytes_requested: 8 },
        &[],
        &mut [Auth::Extra(&mut s)],
    )
    .unwrap();
    drop(tpm);
    let (ok, out, err) = common::run_tpmkey(&sim.tcti(), &["info"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("SRK 0x81000001:    ECC TPM_ECC_NIST_P256"),
        "{out}"
    );
}
