//! Token PINs against swtpm: the TPM checks every PIN, the key authValue follows
//! from the token secret, PIN change keeps the keys, the SO PIN resets the user PIN,
//! a no-PIN token needs no login, and a lockout is reported as such.

mod common;

use common::proxy::TpmProxy;
use common::Swtpm;
use sha2::{Digest, Sha256};
use tpm_commands::constants::TpmAlgId;
use tpm_commands::rc::ResponseCode;
use tpmkey::keys::ops::{create_key, load_key, sign};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
use tpmkey::session::start::SessionParams;
use tpmkey::session::AuthSession;
use tpmkey::token::{change_pin, create_token, key_auth, login, pin_auth, reset_pin};
use tpmkey::Tpm;

fn setup(tcti: &str) -> (Tpm, Srk, AuthSession) {
    let mut tpm = Tpm::open(&tcti.parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let s = tpm
        .start_session(&SessionParams::salted_hmac(&srk.salt_key().unwrap()))
        .unwrap();
    (tpm, srk, s)
}

fn rc(e: tpmkey::Error) -> ResponseCode {
    e.response_code()
        .unwrap_or_else(|| panic!("not a TPM error: {e}"))
        .base()
}

#[test]
fn pins_change_reset_and_keys_follow_the_secret() {
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let (mut tpm, srk, mut s) = setup(&proxy.tcti());
    let t = create_token(&mut tpm, &srk, &mut s, Some((b"1234", b"so-secret-99"))).unwrap();
    let so_seal = t.so_seal.clone().unwrap();

    // A key whose authValue derives from the token secret.
    let id = b"\x01\x02";
    let key = create_key(
        &mut tpm,
        &srk,
        &mut s,
        KeyAlgorithm::Ecc256,
        &key_auth(&t.secret, id),
    )
    .unwrap();
    let loaded = load_key(&mut tpm, &srk, &mut s, &key).unwrap();

    // Login with the user PIN gives the same secret, hence the same key auth.
    let secret = login(&mut tpm, &srk, &mut s, &t.user_seal, b"1234").unwrap();
    assert_eq!(secret, t.secret);
    let d = Sha256::digest(b"m");
    sign(
        &mut tpm,
        &loaded,
        &mut s,
        &key_auth(&secret, id),
        &d,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    )
    .unwrap();

    // Wrong PIN: the TPM says no.
    assert_eq!(
        rc(login(&mut tpm, &srk, &mut s, &t.user_seal, b"9999").unwrap_err()),
        ResponseCode::AUTH_FAIL
    );

    // PIN change: the old PIN stops working on the new seal, keys are unchanged.
    let new_seal = change_pin(&mut tpm, &srk, &mut s, &t.user_seal, b"1234", b"4321").unwrap();
    assert_eq!(
        login(&mut tpm, &srk, &mut s, &new_seal, b"4321").unwrap(),
        t.secret
    );
    assert_eq!(
        rc(login(&mut tpm, &srk, &mut s, &new_seal, b"1234").unwrap_err()),
        ResponseCode::AUTH_FAIL
    );

    // SO reset: a new user PIN, same secret.
    let reset_seal =
        reset_pin(&mut tpm, &srk, &mut s, &so_seal, b"so-secret-99", b"777777").unwrap();
    assert_eq!(
        login(&mut tpm, &srk, &mut s, &reset_seal, b"777777").unwrap(),
        t.secret
    );
    drop(tpm);
    for (what, bytes) in [
        ("SO PIN", &b"so-secret-99"[..]),
        ("user PIN", b"777777"),
        ("PIN-derived authValue", &pin_auth(b"1234")[..]),
        ("new PIN-derived authValue", &pin_auth(b"4321")[..]),
        ("token secret", &t.secret[..]),
        ("key authValue", &key_auth(&t.secret, id)[..]),
    ] {
        assert!(
            !proxy.saw_bytes(bytes),
            "the {what} crossed the wire in clear"
        );
    }
}

#[test]
fn no_pin_token_needs_no_login() {
    let sim = Swtpm::start();
    let (mut tpm, srk, mut s) = setup(&sim.tcti());
    let t = create_token(&mut tpm, &srk, &mut s, None).unwrap();
    assert!(t.so_seal.is_none());
    assert_eq!(
        login(&mut tpm, &srk, &mut s, &t.user_seal, b"").unwrap(),
        t.secret
    );
}

#[test]
fn lockout_is_reported_as_lockout() {
    let sim = Swtpm::start();
    let (mut tpm, srk, mut s) = setup(&sim.tcti());
    let t = create_token(&mut tpm, &srk, &mut s, Some((b"1234", b"so"))).unwrap();
    // swtpm allows 3 failures; then the TPM is in lockout and says so, even for
    // the right PIN.
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(rc(
            login(&mut tpm, &srk, &mut s, &t.user_seal, b"0000").unwrap_err()
        ));
    }
    assert!(codes.contains(&ResponseCode::LOCKOUT), "{codes:?}");
    let e = login(&mut tpm, &srk, &mut s, &t.user_seal, b"1234").unwrap_err();
    assert_eq!(rc(e), ResponseCode::LOCKOUT);
    let e = login(&mut tpm, &srk, &mut s, &t.user_seal, b"1234").unwrap_err();
    assert!(e.to_string().contains("dictionary-attack lockout"), "{e}");
}
