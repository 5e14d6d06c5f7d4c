//! The floor for benches/pkcs11.sh: a bare TPM2_Sign on an already loaded key,
//! authorized by an empty password (no session, no PIN), one command per signature,
//! on the TPM that `TPMKEY_TCTI` names. Creates a no-auth ECC P-256 and RSA-2048 key
//! under the SRK (the persistent one if there is one), loads them, times `-n`
//! signatures each, and flushes everything it loaded on exit.
//!
//! Prints `raw ec ms_per_op=M ops_per_s=R` and `raw rsa ms_per_op=M ops_per_s=R`.
//!
//! `TPMKEY_TCTI=swtpm:host=127.0.0.1,port=2321 cargo run --release --example tpm_raw_sign -- -n 200`

use std::time::Instant;

use tpmkey::keys::ops::{create_key, load_key, sign_with};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
use tpmkey::session::start::SessionParams;
use tpmkey::tpm_commands::constants::TpmAlgId;
use tpmkey::{Auth, Tpm};

fn main() -> tpmkey::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = match args.iter().position(|a| a == "-n") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("-n COUNT"),
        None => 200,
    };
    let mut tpm = Tpm::from_env()?;
    let srk = Srk::load(&mut tpm, SrkKind::Ecc)?;
    let salt = srk.salt_key()?;
    let mut session = tpm.start_session(&SessionParams::salted_hmac(&salt))?;
    let digest = [0x5au8; 32];
    for (label, alg, scheme) in [
        ("ec", KeyAlgorithm::Ecc256, TpmAlgId::ECDSA),
        ("rsa", KeyAlgorithm::Rsa2048, TpmAlgId::RSASSA),
    ] {
        let wrapped = create_key(&mut tpm, &srk, &mut session, alg, b"")?;
        let key = load_key(&mut tpm, &srk, &mut session, &wrapped)?;
        let sign = |tpm: &mut Tpm| {
            sign_with(
                tpm,
                &key,
                Auth::EmptyPassword,
                &digest,
                scheme,
                TpmAlgId::SHA256,
            )
        };
        sign(&mut tpm)?; // warm-up
        let t = Instant::now();
        for _ in 0..n {
            sign(&mut tpm)?;
        }
        let total = t.elapsed().as_secs_f64();
        tpm.flush(key.handle)?;
        let n = f64::from(n.max(1));
        println!(
            "raw {label} ms_per_op={:.3} ops_per_s={:.1}",
            total * 1e3 / n,
            n / total
        );
    }
    tpm.flush_session(&mut session)?;
    Ok(())
}
