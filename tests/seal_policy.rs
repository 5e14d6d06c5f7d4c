//! Sealed data, auth changes and policy sessions against swtpm: the secret comes
//! back only encrypted, a new authValue goes only encrypted, software policy digests
//! equal the TPM's, a PCR policy stops unsealing after an extend, and a tampered
//! response on a policy session is an integrity error.

mod common;

use common::proxy::TpmProxy;
use common::Swtpm;
use sha2::{Digest, Sha256};
use tpm_commands::attributes::TpmaSession;
use tpm_commands::commands::{PcrExtend, PcrRead};
use tpm_commands::constants::{TpmAlgId, TpmCc, TpmHandle};
use tpm_commands::rc::ResponseCode;
use tpm_commands::structures::{TpmlDigestValues, TpmlPcrSelection, TpmsPcrSelection, TpmtHa};
use tpmkey::crypto::hash::HashAlg;
use tpmkey::keys::ops::{change_auth, create_key, load_key, seal, sign, unseal};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
use tpmkey::session::policy::*;
use tpmkey::session::start::SessionParams;
use tpmkey::session::SessionKind;
use tpmkey::{Auth, Error, Tpm};

struct Env {
    tpm: Tpm,
    srk: Srk,
}

fn env(tcti: &str) -> Env {
    let mut tpm = Tpm::open(&tcti.parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    Env { tpm, srk }
}

fn policy_session(e: &mut Env, kind: SessionKind) -> tpmkey::session::AuthSession {
    let salt = e.srk.salt_key().unwrap();
    let mut p = SessionParams::salted_hmac(&salt);
    p.kind = kind;
    e.tpm.start_session(&p).unwrap()
}

fn pcr16() -> TpmlPcrSelection {
    TpmlPcrSelection(vec![TpmsPcrSelection::new(TpmAlgId::SHA256, &[16])])
}

fn pcr16_digest(tpm: &mut Tpm) -> Vec<u8> {
    let r = tpm
        .run(&PcrRead {
            pcr_selection_in: pcr16(),
        })
        .unwrap();
    let values: Vec<&[u8]> = r.pcr_values.0.iter().map(|d| d.as_bytes()).collect();
    HashAlg::Sha256.hash(&values)
}

#[test]
fn seal_unseal_and_change_auth_keep_secrets_off_the_wire() {
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let mut e = env(&proxy.tcti());
    let salt = e.srk.salt_key().unwrap();
    let mut s = e
        .tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let secret = b"disk key 0123456789abcdef";
    let auth = b"seal-pin-555";
    let sealed = seal(&mut e.tpm, &e.srk, &mut s, secret, auth, None).unwrap();
    let loaded = load_key(&mut e.tpm, &e.srk, &mut s, &sealed).unwrap();
    assert_eq!(
        &unseal(&mut e.tpm, &loaded, &mut s, auth).unwrap()[..],
        secret
    );

    let key = create_key(
        &mut e.tpm,
        &e.srk,
        &mut s,
        KeyAlgorithm::Ecc256,
        b"old-pin-1",
    )
    .unwrap();
    let k = load_key(&mut e.tpm, &e.srk, &mut s, &key).unwrap();
    let new = change_auth(&mut e.tpm, &e.srk, &k, &mut s, b"old-pin-1", b"new-pin-22").unwrap();
    e.tpm.flush(k.handle).unwrap();
    let k2 = load_key(&mut e.tpm, &e.srk, &mut s, &new).unwrap();
    let d = Sha256::digest(b"z");
    sign(
        &mut e.tpm,
        &k2,
        &mut s,
        b"new-pin-22",
        &d,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    )
    .unwrap();
    let err = sign(
        &mut e.tpm,
        &k2,
        &mut s,
        b"old-pin-1",
        &d,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    )
    .unwrap_err();
    assert_eq!(err.response_code().unwrap().base(), ResponseCode::AUTH_FAIL);
    drop(e);
    for needle in [&secret[..], &auth[..], b"old-pin-1", b"new-pin-22"] {
        assert!(
            !proxy.saw_bytes(needle),
            "{:?} crossed the wire in clear",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn software_policy_digests_match_the_tpm() {
    let sim = Swtpm::start();
    let mut e = env(&sim.tcti());
    let sha = HashAlg::Sha256;
    let check = |e: &mut Env,
                 expected: Vec<u8>,
                 run: &dyn Fn(&mut Tpm, &mut tpmkey::session::AuthSession)| {
        let mut t = policy_session(e, SessionKind::Trial);
        run(&mut e.tpm, &mut t);
        assert_eq!(e.tpm.policy_get_digest(&t).unwrap(), expected);
        e.tpm.flush_session(&mut t).unwrap();
    };
    check(
        &mut e,
        PolicyDigest::new(sha).auth_value().digest().to_vec(),
        &|tpm, t| tpm.policy_auth_value(t).unwrap(),
    );
    check(
        &mut e,
        PolicyDigest::new(sha).password().digest().to_vec(),
        &|tpm, t| tpm.policy_password(t).unwrap(),
    );
    check(
        &mut e,
        PolicyDigest::new(sha)
            .command_code(TpmCc::SIGN)
            .auth_value()
            .digest()
            .to_vec(),
        &|tpm, t| {
            tpm.policy_command_code(t, TpmCc::SIGN).unwrap();
            tpm.policy_auth_value(t).unwrap();
        },
    );
    let pd = pcr16_digest(&mut e.tpm);
    check(
        &mut e,
        PolicyDigest::new(sha)
            .pcr(&pcr16(), &pd)
            .unwrap()
            .digest()
            .to_vec(),
        &|tpm, t| tpm.policy_pcr(t, &pcr16()).unwrap(),
    );
    let a = PolicyDigest::new(sha).auth_value();
    let b = PolicyDigest::new(sha).command_code(TpmCc::UNSEAL);
    let or = PolicyDigest::or(sha, &[a.digest(), b.digest()]);
    let (ad, bd) = (a.digest().to_vec(), b.digest().to_vec());
    check(&mut e, or.digest().to_vec(), &move |tpm, t| {
        tpm.policy_auth_value(t).unwrap();
        tpm.policy_or(t, &[&ad, &bd]).unwrap();
    });
    let owner = TpmHandle::RH_OWNER.0.to_be_bytes();
    let salt = e.srk.salt_key().unwrap();
    let mut hs = e
        .tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let mut t = policy_session(&mut e, SessionKind::Trial);
    e.tpm
        .policy_secret(&mut t, TpmHandle::RH_OWNER, &owner, &mut hs, b"")
        .unwrap();
    assert_eq!(
        e.tpm.policy_get_digest(&t).unwrap(),
        PolicyDigest::new(sha).secret(&owner).digest()
    );
}

#[test]
fn pcr_policy_unseals_until_the_pcr_changes() {
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let mut e = env(&proxy.tcti());
    let salt = e.srk.salt_key().unwrap();
    let mut s = e
        .tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let pd = pcr16_digest(&mut e.tpm);
    let policy = PolicyDigest::new(HashAlg::Sha256)
        .pcr(&pcr16(), &pd)
        .unwrap()
        .auth_value();
    let secret = b"unlock-the-disk";
    let sealed = seal(
        &mut e.tpm,
        &e.srk,
        &mut s,
        secret,
        b"pin7",
        Some(policy.digest()),
    )
    .unwrap();
    let obj = load_key(&mut e.tpm, &e.srk, &mut s, &sealed).unwrap();

    let mut p = policy_session(&mut e, SessionKind::Policy);
    e.tpm.policy_pcr(&mut p, &pcr16()).unwrap();
    e.tpm.policy_auth_value(&mut p).unwrap();
    p.set_attributes(TpmaSession::empty());
    assert_eq!(
        &unseal(&mut e.tpm, &obj, &mut p, b"pin7").unwrap()[..],
        secret
    );

    // A tampered response on a policy session is an integrity error.
    let mut p = policy_session(&mut e, SessionKind::Policy);
    e.tpm.policy_pcr(&mut p, &pcr16()).unwrap();
    e.tpm.policy_auth_value(&mut p).unwrap();
    proxy.set_tamper(Some(Box::new(|_c: &[u8], r: &mut Vec<u8>| {
        if r.len() > 10 {
            let n = r.len() - 1;
            r[n] ^= 0x80;
        }
    })));
    let err = unseal(&mut e.tpm, &obj, &mut p, b"pin7").unwrap_err();
    proxy.set_tamper(None);
    assert!(matches!(err, Error::Integrity { .. }), "{err:?}");

    // Extend PCR 16: the policy no longer holds.
    let bump = TpmlDigestValues(vec![TpmtHa {
        hash_alg: TpmAlgId::SHA256,
        digest: vec![1; 32],
    }]);
    e.tpm
        .execute(
            &PcrExtend {
                pcr_handle: TpmHandle(16),
                digests: bump,
            },
            &[&16u32.to_be_bytes()],
            &mut [Auth::EmptyPassword],
        )
        .unwrap();
    let mut p = policy_session(&mut e, SessionKind::Policy);
    e.tpm.policy_pcr(&mut p, &pcr16()).unwrap();
    e.tpm.policy_auth_value(&mut p).unwrap();
    let err = unseal(&mut e.tpm, &obj, &mut p, b"pin7").unwrap_err();
    assert_eq!(
        err.response_code().unwrap().base(),
        ResponseCode::POLICY_FAIL,
        "{err}"
    );
    drop(e);
    assert!(
        !proxy.saw_bytes(secret),
        "the sealed secret crossed the wire in clear"
    );
}
