//! Using tpmkey as a library: open a TPM from a TCTI string, load the SRK, make a
//! P-256 key in the TPM, sign a digest and check it with the p256 crate, then seal
//! a secret under PolicyPCR(sha256:16) (plus a PIN when `TPMKEY_EXAMPLE_PIN` is
//! set) and unseal it.
//!
//! ```sh
//! cargo run --example embed -- swtpm:host=127.0.0.1,port=2321
//! TPMKEY_TCTI=device:/dev/tpmrm0 TPMKEY_EXAMPLE_PIN=1234 cargo run --example embed
//! ```
//!
//! Exits with status 1 and a message on any error.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use tpmkey::crypto::hash::HashAlg;
use tpmkey::keys::ops::{create_key, load_key};
use tpmkey::keys::signature::sign_digest;
use tpmkey::keys::sshpub::ec_point;
use tpmkey::keys::templates::{KeyAlgorithm, SrkKind};
use tpmkey::session::start::SessionParams;
use tpmkey::{Auth, Error, PcrSelection, SealedSecret, Srk, Tcti, Tpm};

fn run() -> Result<(), Error> {
    // 1. Open the TPM: the first argument, else TPMKEY_TCTI / TPM2TOOLS_TCTI /
    //    device:/dev/tpmrm0.
    let tcti: Tcti = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|e: tpmkey::tcti::TctiError| Error::Usage(e.to_string()))?,
        None => Tcti::from_env().map_err(|e| Error::Usage(e.to_string()))?,
    };
    let mut tpm = Tpm::open(&tcti)?;
    println!("opened {tcti:?}");

    // 2. The storage root key (persistent at 0x81000001, or derived).
    let srk = Srk::load(&mut tpm, SrkKind::Ecc)?;
    println!(
        "SRK {} Name {}",
        if srk.persistent {
            "at 0x81000001"
        } else {
            "derived (transient)"
        },
        hex(&srk.name)
    );

    // 3. A session salted to the SRK for everything that carries a secret.
    let mut session = tpm.start_session(&SessionParams::salted_hmac(&srk.salt_key()?))?;

    // 4. A P-256 signing key with an authValue, made inside the TPM. The wrapped
    //    key (public + TPM-encrypted private area) can be stored anywhere.
    let key_auth = b"example key auth";
    let wrapped = create_key(&mut tpm, &srk, &mut session, KeyAlgorithm::Ecc256, key_auth)?;
    let key = load_key(&mut tpm, &srk, &mut session, &wrapped)?;
    println!("created and loaded a P-256 key, Name {}", hex(&key.name));

    // 5. Sign a SHA-256 digest (one TPM2_Sign, the authValue proven by HMAC) and
    //    check the signature with the p256 crate.
    let digest = HashAlg::Sha256.hash(&[b"hello from examples/embed.rs"]);
    let sig = sign_digest(
        &mut tpm,
        &key,
        Auth::Session(&mut session, key_auth),
        HashAlg::Sha256,
        &digest,
    )?;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&ec_point(&wrapped.public)?)
        .map_err(|e| Error::Crypto(e.to_string()))?;
    let s = p256::ecdsa::Signature::from_slice(&sig).map_err(|e| Error::Crypto(e.to_string()))?;
    vk.verify_prehash(&digest, &s)
        .map_err(|e| Error::Crypto(format!("signature does not verify: {e}")))?;
    println!("signed, r||s = {}; verified with p256", hex(&sig));
    tpm.flush(key.handle)?;
    tpm.flush_session(&mut session)?;

    // 6. Seal a secret to PCR 16's current value (and a PIN, if given), keep the
    //    file form, and unseal it again from that file.
    let pin = std::env::var("TPMKEY_EXAMPLE_PIN").ok();
    let pin = pin.as_deref().map(str::as_bytes);
    let pcrs = PcrSelection::parse("sha256:16")?;
    let secret = b"the disk key, 32 bytes long.....";
    let sealed = SealedSecret::seal(&mut tpm, &srk, &pcrs, pin, secret)?;
    let file = sealed.to_json()?;
    println!(
        "sealed {} bytes under PCRs {pcrs}{}; policy digest {}; file of {} bytes",
        secret.len(),
        if pin.is_some() { " and a PIN" } else { "" },
        hex(sealed.policy_digest()),
        file.len()
    );
    let sealed = SealedSecret::from_json(file.as_bytes())?;
    let srk = sealed.load_srk(&mut tpm)?;
    let back = sealed.unseal(&mut tpm, &srk, pin)?;
    if &back[..] != secret {
        return Err(Error::Usage("unsealed something else".into()));
    }
    println!("unsealed {} bytes: the same secret", back.len());
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
