//! Signature cost with a loaded key: TPM commands per ECDSA P-256 signature
//! (counted by a proxy) and time per signature (timed without the proxy), next to a
//! bare TPM2_Sign authorized by an empty password on the same swtpm (the floor).
//!
//! `cargo bench --bench sign` (needs swtpm).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::proxy::TpmProxy;
use common::Swtpm;
use sha2::{Digest, Sha256};
use tpm_commands::constants::TpmAlgId;
use tpmkey::keys::ops::{create_key, load_key, sign, LoadedKey};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
use tpmkey::session::start::SessionParams;
use tpmkey::session::AuthSession;
use tpmkey::Tpm;

const N: u32 = 500;

struct Setup {
    tpm: Tpm,
    session: AuthSession,
    key: LoadedKey,
    no_auth_key: LoadedKey,
}

fn setup(tcti: &str) -> Setup {
    let mut tpm = Tpm::open(&tcti.parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let salt = srk.salt_key().unwrap();
    let mut session = tpm
        .start_session(&SessionParams::salted_hmac(&salt))
        .unwrap();
    let wrapped = create_key(
        &mut tpm,
        &srk,
        &mut session,
        KeyAlgorithm::Ecc256,
        b"123456",
    )
    .unwrap();
    let key = load_key(&mut tpm, &srk, &mut session, &wrapped).unwrap();
    let wrapped = create_key(&mut tpm, &srk, &mut session, KeyAlgorithm::Ecc256, b"").unwrap();
    let no_auth_key = load_key(&mut tpm, &srk, &mut session, &wrapped).unwrap();
    Setup {
        tpm,
        session,
        key,
        no_auth_key,
    }
}

fn bare_sign(tpm: &mut Tpm, key: &LoadedKey, digest: &[u8]) {
    use tpm_commands::buffers::Tpm2bDigest;
    use tpm_commands::commands::Sign;
    use tpm_commands::structures::{TpmtScheme, TpmtTicket};
    let cmd = Sign {
        key_handle: key.handle,
        digest: Tpm2bDigest::new(digest.to_vec()).unwrap(),
        in_scheme: TpmtScheme::with_hash(TpmAlgId::ECDSA, TpmAlgId::SHA256),
        validation: TpmtTicket::null_hashcheck(),
    };
    tpm.execute(&cmd, &[&key.name], &mut [tpmkey::Auth::EmptyPassword])
        .unwrap();
}

fn main() {
    let digest = Sha256::digest(b"bench");
    let sim = Swtpm::start();

    // Commands per signature, through a counting proxy.
    let proxy = TpmProxy::start(sim.data_port());
    let mut s = setup(&proxy.tcti());
    sign(
        &mut s.tpm,
        &s.key,
        &mut s.session,
        b"123456",
        &digest,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    )
    .unwrap();
    proxy.clear();
    for _ in 0..10 {
        sign(
            &mut s.tpm,
            &s.key,
            &mut s.session,
            b"123456",
            &digest,
            TpmAlgId::ECDSA,
            TpmAlgId::SHA256,
        )
        .unwrap();
    }
    let per_sig = proxy.command_count() as f64 / 10.0;
    drop(s);
    drop(proxy);

    // Time, straight to swtpm.
    let mut s = setup(&sim.tcti());
    sign(
        &mut s.tpm,
        &s.key,
        &mut s.session,
        b"123456",
        &digest,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    )
    .unwrap();
    bare_sign(&mut s.tpm, &s.no_auth_key, &digest);
    let t = Instant::now();
    for _ in 0..N {
        sign(
            &mut s.tpm,
            &s.key,
            &mut s.session,
            b"123456",
            &digest,
            TpmAlgId::ECDSA,
            TpmAlgId::SHA256,
        )
        .unwrap();
    }
    let ours = t.elapsed().as_secs_f64() * 1000.0 / f64::from(N);
    let t = Instant::now();
    for _ in 0..N {
        bare_sign(&mut s.tpm, &s.no_auth_key, &digest);
    }
    let bare = t.elapsed().as_secs_f64() * 1000.0 / f64::from(N);

    println!("ECDSA P-256 signature with a loaded key, salted HMAC session, PIN-protected key (swtpm, {N} signatures):");
    println!("  TPM commands per signature: {per_sig}");
    println!("  tpmkey sign:                {ours:.3} ms");
    println!("  bare TPM2_Sign (password):  {bare:.3} ms");
    println!("  ratio tpmkey / bare:        {:.2}", ours / bare);
}
