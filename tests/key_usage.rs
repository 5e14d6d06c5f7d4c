//! Key usages are the TPM object's own attributes (Part 2 §8.3.3.1 TPMA_OBJECT sign
//! and decrypt), so the TPM itself refuses what a key was not made for: a signing
//! key cannot decrypt or do ECDH, a decryption key cannot sign. Made with
//! `create_key_with`/`key_template`, imported with `import_key_for`, and through the
//! CLI's `--usage`; what decrypts, decrypts (keys::decrypt, one command each).

mod common;

use common::{run_tpmkey_in, Swtpm, TempDir};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::traits::PublicKeyParts;
use tpm_commands::attributes::TpmaObject;
use tpm_commands::constants::TpmAlgId;
use tpm_commands::rc::ResponseCode;
use tpm_commands::structures::PublicParams;
use tpmkey::crypto::hash::HashAlg;
use tpmkey::keys::decrypt::{ecdh_zgen, rsa_decrypt, RsaPadding};
use tpmkey::keys::import::{import_key_for, PrivateKey};
use tpmkey::keys::ops::{create_key_with, load_key, sign};
use tpmkey::keys::srk::Srk;
use tpmkey::keys::templates::{key_template, KeyAlgorithm, KeyUsage, SrkKind};
use tpmkey::session::start::SessionParams;
use tpmkey::{Error, Tpm};
use zeroize::Zeroizing;

fn rc_of<T: std::fmt::Debug>(r: Result<T, Error>) -> ResponseCode {
    match r {
        Err(Error::Tpm { rc, .. }) => rc.base(),
        other => panic!("expected a TPM error, got {other:?}"),
    }
}

#[test]
fn the_tpm_enforces_each_key_usage() {
    let sim = Swtpm::start();
    let mut tpm = Tpm::open(&sim.tcti().parse().unwrap()).unwrap();
    let srk = Srk::load(&mut tpm, SrkKind::Ecc).unwrap();
    let mut s = tpm
        .start_session(&SessionParams::salted_hmac(&srk.salt_key().unwrap()))
        .unwrap();
    let auth = b"usage-pin";
    let digest = HashAlg::Sha256.hash(&[b"data"]);
    let mut rng = rand_core::OsRng;

    // RSA: sign only, decrypt only, both.
    for usage in [KeyUsage::SIGN, KeyUsage::DECRYPT, KeyUsage::SIGN_DECRYPT] {
        let public = key_template(KeyAlgorithm::Rsa2048, usage, false);
        let key = create_key_with(&mut tpm, &srk, &mut s, public, auth).unwrap();
        assert_eq!(KeyUsage::of(key.public.object_attributes), usage);
        assert!(!key.public.object_attributes.contains(TpmaObject::NO_DA));
        let loaded = load_key(&mut tpm, &srk, &mut s, &key).unwrap();
        let PublicParams::Rsa { unique, .. } = &key.public.params else {
            panic!()
        };
        let pk = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(unique.as_bytes()),
            rsa::BigUint::from(65537u32),
        )
        .unwrap();
        let ct = pk
            .encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha256>(), b"in the TPM")
            .unwrap();
        let decrypted = rsa_decrypt(
            &mut tpm,
            &loaded,
            &mut s,
            auth,
            &ct,
            RsaPadding::Oaep(HashAlg::Sha256),
            b"",
        );
        let signed = sign(
            &mut tpm,
            &loaded,
            &mut s,
            auth,
            &digest,
            TpmAlgId::RSASSA,
            TpmAlgId::SHA256,
        );
        if usage.decrypt {
            assert_eq!(&decrypted.unwrap()[..], b"in the TPM");
            // The raw block (no padding), as the module decodes labels the TPM
            // refuses: OAEP-decoded on the host, it is the message.
            let raw =
                rsa_decrypt(&mut tpm, &loaded, &mut s, auth, &ct, RsaPadding::Raw, b"").unwrap();
            assert!(raw.len() <= pk.size());
            let mut em = vec![0u8; pk.size() - raw.len()];
            em.extend_from_slice(&raw);
            let m = tpmkey::crypto::secret::oaep_decode(HashAlg::Sha256, b"", &em).unwrap();
            assert_eq!(&m[..], b"in the TPM");
        } else {
            assert_eq!(rc_of(decrypted), ResponseCode::ATTRIBUTES, "{usage:?}");
        }
        if usage.sign {
            signed.unwrap();
        } else {
            assert_eq!(rc_of(signed), ResponseCode::KEY, "{usage:?}");
        }
        tpm.flush(loaded.handle).unwrap();
    }

    // ECC: ECDH needs `decrypt`.
    let peer = p256::SecretKey::random(&mut rng);
    let peer_point = peer.public_key().to_encoded_point(false);
    for usage in [KeyUsage::SIGN, KeyUsage::DECRYPT] {
        let public = key_template(KeyAlgorithm::Ecc256, usage, false);
        let key = create_key_with(&mut tpm, &srk, &mut s, public, auth).unwrap();
        let loaded = load_key(&mut tpm, &srk, &mut s, &key).unwrap();
        let z = ecdh_zgen(
            &mut tpm,
            &loaded,
            &mut s,
            auth,
            peer_point.x().unwrap(),
            peer_point.y().unwrap(),
            32,
        );
        if usage.decrypt {
            let PublicParams::Ecc { unique, .. } = &key.public.params else {
                panic!()
            };
            let mut sec1 = vec![4];
            sec1.extend_from_slice(unique.x.as_bytes());
            sec1.extend_from_slice(unique.y.as_bytes());
            let theirs = p256::ecdh::diffie_hellman(
                peer.to_nonzero_scalar(),
                p256::PublicKey::from_sec1_bytes(&sec1).unwrap().as_affine(),
            );
            assert_eq!(&z.unwrap()[..], &theirs.raw_secret_bytes()[..]);
        } else {
            assert_eq!(rc_of(z), ResponseCode::ATTRIBUTES);
        }
        tpm.flush(loaded.handle).unwrap();
    }

    // An imported key gets the usage asked for.
    let original = p256::SecretKey::random(&mut rng);
    let point = original.public_key().to_encoded_point(false);
    let key = PrivateKey::Ecc {
        alg: KeyAlgorithm::Ecc256,
        d: Zeroizing::new(original.to_bytes().to_vec()),
        x: point.x().unwrap().to_vec(),
        y: point.y().unwrap().to_vec(),
    };
    let wrapped = import_key_for(&mut tpm, &srk, &mut s, &key, KeyUsage::DECRYPT, auth).unwrap();
    assert_eq!(
        KeyUsage::of(wrapped.public.object_attributes),
        KeyUsage::DECRYPT
    );
    let loaded = load_key(&mut tpm, &srk, &mut s, &wrapped).unwrap();
    let z = ecdh_zgen(
        &mut tpm,
        &loaded,
        &mut s,
        auth,
        peer_point.x().unwrap(),
        peer_point.y().unwrap(),
        32,
    )
    .unwrap();
    let theirs =
        p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), original.public_key().as_affine());
    assert_eq!(&z[..], &theirs.raw_secret_bytes()[..]);
    let signed = sign(
        &mut tpm,
        &loaded,
        &mut s,
        auth,
        &digest,
        TpmAlgId::ECDSA,
        TpmAlgId::SHA256,
    );
    assert_eq!(rc_of(signed), ResponseCode::KEY);
    tpm.flush(loaded.handle).unwrap();
}

#[test]
fn cli_usage_for_made_and_imported_keys() {
    let sim = Swtpm::start();
    let dir = TempDir::new("usage");
    let store = dir.path().join("store");
    let tk = |args: &[&str]| run_tpmkey_in(&sim.tcti(), &store, args);
    assert!(tk(&["init"]).0);
    assert!(tk(&["token", "add", "--label", "t", "--no-pin"]).0);
    let (ok, out, err) = tk(&[
        "key",
        "add",
        "--token",
        "t",
        "--label",
        "d",
        "--algorithm",
        "ecc256",
        "--usage",
        "decrypt",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("(ecc256, decrypt)"), "{out}");
    // An RSA key from a PEM file, imported to sign and decrypt.
    let pem = dir.path().join("rsa.pem");
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    std::fs::write(
        &pem,
        rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&rsa_key, rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let (ok, _, err) = tk(&[
        "key",
        "import",
        "--token",
        "t",
        "--label",
        "imp",
        "--usage",
        "sign,decrypt",
        pem.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = tk(&["key", "list", "--json"]);
    assert!(ok);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    let usage = |label: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["label"] == label)
            .map(|k| k["usage"].clone())
            .unwrap()
    };
    assert_eq!(usage("d"), "decrypt");
    assert_eq!(usage("imp"), "sign,decrypt");
    let (_, list, _) = tk(&["key", "list"]);
    assert!(
        list.contains("\tdecrypt\n") && list.contains("\tsign,decrypt\n"),
        "{list}"
    );
    // What the TPM does not make, and usages that do not exist.
    let (ok, _, err) = tk(&[
        "key",
        "add",
        "--token",
        "t",
        "--label",
        "x",
        "--algorithm",
        "ecc256",
        "--usage",
        "wrap",
    ]);
    assert!(!ok && err.contains("unknown usage \"wrap\""), "{err}");
    // The same key decrypts what was encrypted to it, through the module.
    let m = common::ssh::module_path();
    let msg = dir.path().join("msg");
    let ct = dir.path().join("ct");
    let out_file = dir.path().join("out");
    std::fs::write(&msg, b"imported, decrypting").unwrap();
    let c = rsa_key
        .to_public_key()
        .encrypt(
            &mut rand_core::OsRng,
            rsa::Pkcs1v15Encrypt,
            b"imported, decrypting",
        )
        .unwrap();
    std::fs::write(&ct, c).unwrap();
    let id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "imp")
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_string();
    let out = std::process::Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&m)
        .args([
            "--token-label",
            "t",
            "--decrypt",
            "-m",
            "RSA-PKCS",
            "--id",
            &id,
            "-i",
        ])
        .arg(&ct)
        .arg("-o")
        .arg(&out_file)
        .env("TPMKEY_TCTI", sim.tcti())
        .env("TPMKEY_STORE", &store)
        .output()
        .expect("pkcs11-tool (apt-get install opensc)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), b"imported, decrypting");
}
