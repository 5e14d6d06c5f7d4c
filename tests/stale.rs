//! A TPM without a resource manager keeps what a dead process loaded. When the TPM
//! answers TPM_RC_OBJECT_MEMORY or TPM_RC_SESSION_MEMORY, tpmkey flushes the
//! transient objects and sessions it does not own and retries once.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::Swtpm;
use tpm_commands::attributes::TpmaSession;
use tpm_commands::commands::{Command, CreatePrimary, Load, StartAuthSession};
use tpm_commands::constants::{TpmAlgId, TpmHandle, TpmSe};
use tpm_commands::frame::{build_command, TpmsAuthCommand};
use tpm_commands::structures::{Tpm2bPublic, TpmtSymDef};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{srk_template, SrkKind};
use tpmkey::session::start::SessionParams;

fn raw(port: u16, frame: &[u8]) -> u32 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(frame).unwrap();
    let mut h = [0u8; 10];
    s.read_exact(&mut h).unwrap();
    let size = u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize;
    let mut rest = vec![0u8; size - 10];
    s.read_exact(&mut rest).unwrap();
    u32::from_be_bytes([h[6], h[7], h[8], h[9]])
}

/// Fills the TPM's object and session slots the way crashed processes would.
fn leak_everything(port: u16) {
    let cp = CreatePrimary {
        primary_handle: TpmHandle::RH_OWNER,
        in_sensitive: tpm_commands::structures::Tpm2bSensitiveCreate::new(Default::default()),
        in_public: Tpm2bPublic::new(srk_template(SrkKind::Ecc)),
        outside_info: Default::default(),
        creation_pcr: Default::default(),
    };
    let pw = TpmsAuthCommand {
        session_handle: TpmHandle::RS_PW,
        session_attributes: TpmaSession::CONTINUE_SESSION,
        ..Default::default()
    };
    let frame = build_command(
        CreatePrimary::CC,
        &cp.handles(),
        &[pw],
        &cp.params_bytes().unwrap(),
    )
    .unwrap();
    let mut objects = 0;
    while raw(port, &frame) == 0 {
        objects += 1;
        assert!(objects < 10);
    }
    let sas = StartAuthSession {
        tpm_key: TpmHandle::RH_NULL,
        bind: TpmHandle::RH_NULL,
        nonce_caller: tpm_commands::buffers::Tpm2bNonce::new(vec![7; 16]).unwrap(),
        encrypted_salt: Default::default(),
        session_type: TpmSe::HMAC,
        symmetric: TpmtSymDef::Null,
        auth_hash: TpmAlgId::SHA256,
    };
    let frame = build_command(
        StartAuthSession::CC,
        &sas.handles(),
        &[],
        &sas.params_bytes().unwrap(),
    )
    .unwrap();
    let mut sessions = 0;
    while raw(port, &frame) == 0 {
        sessions += 1;
        assert!(sessions < 100);
    }
    assert!(
        objects >= 3 && sessions >= 3,
        "{objects} objects, {sessions} sessions leaked"
    );
}

#[test]
fn stale_objects_and_sessions_are_flushed_and_the_command_retried() {
    let sim = Swtpm::start();
    leak_everything(sim.data_port());
    let mut tpm = tpmkey::Tpm::open(&sim.tcti().parse().unwrap()).unwrap();
    let srk =
        Srk::load(&mut tpm, SrkKind::Ecc).expect("CreatePrimary after flushing stale objects");
    tpm.start_session(&SessionParams::salted_hmac(&srk.salt_key().unwrap()))
        .expect("StartAuthSession after flushing stale sessions");
}

fn transient_objects(tpm: &mut tpmkey::Tpm) -> usize {
    use tpm_commands::commands::GetCapability;
    use tpm_commands::constants::TpmCap;
    use tpm_commands::structures::TpmsCapabilityData;
    let rsp = tpm
        .run(&GetCapability {
            capability: TpmCap::HANDLES,
            property: 0x8000_0000,
            property_count: 64,
        })
        .unwrap();
    match rsp.capability_data {
        TpmsCapabilityData::Handles(list) => list.0.iter().filter(|h| h.0 >> 24 == 0x80).count(),
        other => panic!("{other:?}"),
    }
}

/// A command that the TPM carried out but whose response fails its check (altered
/// on the bus) still made an object: a long-lived process (the PKCS#11 module) on a
/// TPM with no resource manager must not keep that slot until it exits.
#[test]
fn an_object_whose_load_response_fails_its_hmac_is_flushed_at_once() {
    use common::proxy::TpmProxy;
    use tpmkey::keys::ops::{create_key, load_key};
    use tpmkey::keys::templates::KeyAlgorithm;
    let sim = Swtpm::start();
    let proxy = TpmProxy::start(sim.data_port());
    let mut tpm = tpmkey::Tpm::open(&proxy.tcti().parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&srk.salt_key().unwrap()))
        .unwrap();
    let key = create_key(&mut tpm, &srk, &mut s, KeyAlgorithm::Ecc256, b"pin").unwrap();
    let before = transient_objects(&mut tpm);
    // TPM2_Load's response, last byte (the response HMAC) flipped.
    proxy.set_tamper(Some(Box::new(|cmd: &[u8], rsp: &mut Vec<u8>| {
        if cmd.get(6..10) == Some(&Load::CC.0.to_be_bytes()[..]) && rsp.len() > 10 {
            let last = rsp.len() - 1;
            rsp[last] ^= 1;
        }
    })));
    let e = load_key(&mut tpm, &srk, &mut s, &key).unwrap_err();
    proxy.set_tamper(None);
    assert!(matches!(e, tpmkey::Error::Integrity { .. }), "{e:?}");
    assert_eq!(
        transient_objects(&mut tpm),
        before,
        "the object the altered Load response named is still loaded"
    );
}
