//! Host cryptography against published vectors (vendor-testvectors/crypto/*.json,
//! each file naming its source): KDFa, KDFe, ECC secret sharing, session HMACs and
//! parameter encryption. The counts are asserted so a file that loses entries fails.

use serde_json::Value;
use tpm_commands::codec::Unmarshal;
use tpm_commands::structures::{PublicParams, TpmtPublic};
use tpmkey::crypto::hash::HashAlg;
use tpmkey::crypto::kdf::{kdfa, kdfe};
use tpmkey::crypto::param::{cfb_decrypt, cfb_encrypt, xor_obfuscate};
use tpmkey::crypto::secret::{
    ecc_encapsulate_with_scalar, ecc_point_bytes, rsa_encapsulate_with_seed, EccCurve,
};
use tpmkey::crypto::session as sc;

fn load(name: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vendor-testvectors/crypto")
        .join(name);
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).expect("json");
    assert!(v["source"].is_object(), "{name}: no source");
    let vectors = v["vectors"].as_array().expect("vectors").clone();
    assert_eq!(
        vectors.len() as u64,
        v["count"].as_u64().unwrap(),
        "{name}: count"
    );
    vectors
}

fn h(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap_or_else(|| panic!("{k} missing"))).unwrap()
}

fn alg(v: &Value, k: &str) -> HashAlg {
    HashAlg::from_alg_id(v[k].as_u64().unwrap() as u16).unwrap()
}

#[test]
fn kdfa_go_tpm_vectors() {
    let vs = load("kdfa.json");
    assert_eq!(vs.len(), 100);
    for v in &vs {
        let out = kdfa(
            alg(v, "hash_alg"),
            &h(v, "key"),
            v["label"].as_str().unwrap().as_bytes(),
            &h(v, "context_u"),
            &h(v, "context_v"),
            v["bits"].as_u64().unwrap() as u32,
        );
        assert_eq!(
            hex::encode(&*out),
            v["result"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
}

#[test]
fn kdfe_go_tpm_vectors() {
    let vs = load("kdfe.json");
    assert_eq!(vs.len(), 100);
    for v in &vs {
        let out = kdfe(
            alg(v, "hash_alg"),
            &h(v, "z"),
            v["label"].as_str().unwrap().as_bytes(),
            &h(v, "party_u"),
            &h(v, "party_v"),
            v["bits"].as_u64().unwrap() as u32,
        );
        assert_eq!(
            hex::encode(&*out),
            v["result"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
}

#[test]
fn legacy_kdf_go_tpm_vectors() {
    let vs = load("legacy_kdf.json");
    assert_eq!(vs.len(), 15);
    for v in &vs {
        let f = if v["kind"] == "KDFa" { kdfa } else { kdfe };
        let out = f(
            alg(v, "hash_alg"),
            &h(v, "key"),
            v["label"].as_str().unwrap().as_bytes(),
            &h(v, "context_u"),
            &h(v, "context_v"),
            v["bits"].as_u64().unwrap() as u32,
        );
        assert_eq!(
            hex::encode(&*out),
            v["result"].as_str().unwrap(),
            "{} {}",
            v["kind"],
            v["label"]
        );
    }
}

#[test]
fn ecc_secret_sharing_go_tpm_vectors() {
    let vs = load("ecc_encaps.json");
    assert_eq!(vs.len(), 63);
    for v in &vs {
        let public = TpmtPublic::from_bytes(&h(v, "public_key")).expect("TPMT_PUBLIC");
        let name_alg = HashAlg::from_alg_id(public.name_alg.0).unwrap();
        let PublicParams::Ecc { parms, unique } = &public.params else {
            panic!("not ECC")
        };
        let curve = match parms.curve_id.0 {
            3 => EccCurve::P256,
            4 => EccCurve::P384,
            c => panic!("curve {c}"),
        };
        let (seed, ex, ey) = ecc_encapsulate_with_scalar(
            curve,
            unique.x.as_bytes(),
            unique.y.as_bytes(),
            name_alg,
            v["label"].as_str().unwrap().as_bytes(),
            &h(v, "ephemeral_private"),
        )
        .unwrap();
        assert_eq!(
            hex::encode(&*seed),
            v["secret"].as_str().unwrap(),
            "{} seed",
            v["name"]
        );
        assert_eq!(
            hex::encode(ecc_point_bytes(&ex, &ey)),
            v["ciphertext"].as_str().unwrap(),
            "{} ciphertext",
            v["name"]
        );
    }
}

#[test]
fn rsa_secret_sharing_go_tpm_vectors() {
    let vs = load("rsa_encaps.json");
    assert_eq!(vs.len(), 100);
    for v in &vs {
        let public = TpmtPublic::from_bytes(&h(v, "public_key")).expect("TPMT_PUBLIC");
        let PublicParams::Rsa { parms, unique } = &public.params else {
            panic!("not RSA")
        };
        let oaep = parms.scheme.hash().map_or(public.name_alg.0, |h| h.0);
        let mut label = v["label"].as_str().unwrap().as_bytes().to_vec();
        label.push(0);
        let ct = rsa_encapsulate_with_seed(
            unique.as_bytes(),
            parms.exponent,
            HashAlg::from_alg_id(oaep).unwrap(),
            &label,
            &h(v, "secret"),
            &h(v, "oaep_seed"),
        )
        .unwrap();
        assert_eq!(
            hex::encode(ct),
            v["ciphertext"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
}

#[test]
fn session_hmac_canonical_vectors() {
    let vs = load("session_hmac.json");
    assert_eq!(vs.len(), 36);
    let (mut accepted, mut rejected) = (0, 0);
    for v in &vs {
        let hash = alg(v, "hashAlg");
        let mut key = h(v, "sessionKey");
        if v["includeAuthValue"].as_bool().unwrap() {
            key.extend(sc::strip_trailing_zeros(&h(v, "authValue")));
        }
        let attrs = v["sessionAttributes"].as_u64().unwrap() as u8;
        let cc = v["commandCode"].as_u64().unwrap() as u32;
        let expected = h(v, "expectedHMAC");
        let ok = if v["direction"] == "command" {
            let names: Vec<Vec<u8>> = v["handleNames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| hex::decode(n.as_str().unwrap()).unwrap())
                .collect();
            let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
            let cp = sc::cp_hash(hash, cc, &names, &h(v, "cpParams"));
            if let Some(c) = v["cpHash"].as_str() {
                assert_eq!(hex::encode(&cp), c, "{} cpHash", v["name"]);
            }
            let opt = |k: &str| -> Option<Vec<u8>> { Some(h(v, k)).filter(|b| !b.is_empty()) };
            let (dn, en) = (opt("decryptNonce"), opt("encryptNonce"));
            sc::command_hmac(
                hash,
                &key,
                &cp,
                &h(v, "nonceCaller"),
                &h(v, "nonceTPM"),
                dn.as_deref(),
                en.as_deref(),
                attrs,
            ) == expected
        } else {
            let rp = sc::rp_hash(hash, 0, cc, &h(v, "rpParams"));
            sc::verify_response_hmac(
                hash,
                &key,
                &rp,
                &h(v, "nonceTPM"),
                &h(v, "nonceCaller"),
                attrs,
                &expected,
            )
        };
        if v["expectedOutcome"] == "reject" {
            assert!(!ok, "{} must be rejected", v["name"]);
            rejected += 1;
        } else {
            assert!(ok, "{}", v["name"]);
            accepted += 1;
        }
    }
    assert_eq!((accepted, rejected), (35, 1));
}

#[test]
fn parameter_encryption_canonical_vectors() {
    let vs = load("param_encryption.json");
    assert_eq!(vs.len(), 7);
    for v in &vs {
        let hash = alg(v, "hashAlg");
        let value = h(v, "sessionValue");
        let (caller, tpm) = (h(v, "nonceCaller"), h(v, "nonceTPM"));
        let command = v["direction"] == "command";
        let (newer, older) = if command {
            (&caller, &tpm)
        } else {
            (&tpm, &caller)
        };
        let (input, expected) = if command {
            (h(v, "plaintextParams"), h(v, "expectedCiphertextParams"))
        } else {
            (h(v, "ciphertextParams"), h(v, "expectedPlaintextParams"))
        };
        let mut data = input.clone();
        let size = u16::from_be_bytes([data[0], data[1]]) as usize;
        let payload = &mut data[2..2 + size];
        match (v["symmetric"].as_str().unwrap(), command) {
            ("AES", true) => cfb_encrypt(
                hash,
                &value,
                newer,
                older,
                v["keyBits"].as_u64().unwrap() as u16,
                payload,
            ),
            ("AES", false) => cfb_decrypt(
                hash,
                &value,
                newer,
                older,
                v["keyBits"].as_u64().unwrap() as u16,
                payload,
            ),
            ("XOR", _) => xor_obfuscate(hash, &value, newer, older, payload),
            (s, _) => panic!("{s}"),
        }
        assert_eq!(hex::encode(&data), hex::encode(&expected), "{}", v["name"]);
    }
}

#[test]
fn import_outer_wrapper_accepted_by_libtpms() {
    use tpm_commands::buffers::{Tpm2bAuth, Tpm2bDigest, Tpm2bEccPrivate};
    use tpm_commands::codec::Marshal;
    use tpm_commands::structures::{SensitiveComposite, Tpm2bSensitive, TpmtSensitive};
    use tpmkey::crypto::duplicate::outer_wrap;
    use tpmkey::keys::public::object_name;
    let vs = load("import_wrapper.json");
    assert_eq!(vs.len(), 2);
    for v in &vs {
        let object = TpmtPublic::from_bytes(&h(v, "object_public")).unwrap();
        assert_eq!(object_name(&object).unwrap(), h(v, "object_name"));
        let sensitive = TpmtSensitive {
            auth_value: Tpm2bAuth::new(v["auth_value"].as_str().unwrap().as_bytes().to_vec())
                .unwrap(),
            seed_value: Tpm2bDigest::empty(),
            sensitive: SensitiveComposite::Ecc(Tpm2bEccPrivate::new(h(v, "ecc_private")).unwrap()),
        };
        assert_eq!(
            Tpm2bSensitive::new(sensitive).to_bytes().unwrap(),
            h(v, "sensitive_plain")
        );
        let parent = TpmtPublic::from_bytes(&h(v, "parent_public")).unwrap();
        assert_eq!(object_name(&parent).unwrap(), h(v, "parent_name"));
        let seed = h(v, "seed");
        match &parent.params {
            PublicParams::Ecc { unique, .. } => {
                let (s, ex, ey) = ecc_encapsulate_with_scalar(
                    EccCurve::P256,
                    unique.x.as_bytes(),
                    unique.y.as_bytes(),
                    HashAlg::Sha256,
                    b"DUPLICATE",
                    &h(v, "ephemeral_private"),
                )
                .unwrap();
                assert_eq!(&*s, &seed);
                assert_eq!(ecc_point_bytes(&ex, &ey), h(v, "in_sym_seed"));
            }
            PublicParams::Rsa { parms, unique } => {
                let ct = rsa_encapsulate_with_seed(
                    unique.as_bytes(),
                    parms.exponent,
                    HashAlg::Sha256,
                    b"DUPLICATE\0",
                    &seed,
                    &h(v, "oaep_seed"),
                )
                .unwrap();
                assert_eq!(ct, h(v, "in_sym_seed"));
            }
            _ => panic!("parent type"),
        }
        assert_eq!(
            hex::encode(&*kdfa(
                HashAlg::Sha256,
                &seed,
                b"STORAGE",
                &h(v, "object_name"),
                &[],
                128
            )),
            v["sym_key"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(&*kdfa(HashAlg::Sha256, &seed, b"INTEGRITY", &[], &[], 256)),
            v["hmac_key"].as_str().unwrap()
        );
        let dup = outer_wrap(
            HashAlg::Sha256,
            128,
            &seed,
            &h(v, "object_name"),
            &h(v, "sensitive_plain"),
        )
        .unwrap();
        assert_eq!(
            hex::encode(&dup),
            v["duplicate"].as_str().unwrap(),
            "{} parent",
            v["parent"]
        );
    }
}

#[test]
fn salted_sessions_accepted_by_libtpms() {
    let vs = load("swtpm_sessions.json");
    let (mut sessions, mut auths, mut encs) = (0, 0, 0);
    let sha = HashAlg::Sha256;
    for v in &vs {
        match v["kind"].as_str().unwrap() {
            "session" => {
                let salt = h(v, "salt");
                if v["tpm_key_x"].is_string() {
                    let (s, ex, ey) = ecc_encapsulate_with_scalar(
                        EccCurve::P256,
                        &h(v, "tpm_key_x"),
                        &h(v, "tpm_key_y"),
                        sha,
                        b"SECRET",
                        &h(v, "ephemeral_private"),
                    )
                    .unwrap();
                    assert_eq!(&*s, &salt);
                    assert_eq!(ecc_point_bytes(&ex, &ey), h(v, "encrypted_salt"));
                } else {
                    let ct = rsa_encapsulate_with_seed(
                        &h(v, "modulus"),
                        v["exponent"].as_u64().unwrap() as u32,
                        sha,
                        b"SECRET\0",
                        &salt,
                        &h(v, "oaep_seed"),
                    )
                    .unwrap();
                    assert_eq!(ct, h(v, "encrypted_salt"));
                }
                let key = sc::session_key(
                    sha,
                    &h(v, "bind_auth"),
                    &salt,
                    &h(v, "nonce_tpm"),
                    &h(v, "nonce_caller"),
                );
                assert_eq!(
                    hex::encode(&*key),
                    v["session_key"].as_str().unwrap(),
                    "{}",
                    v["label"]
                );
                sessions += 1;
            }
            "auth" => {
                let attrs = u8::from_str_radix(v["attributes"].as_str().unwrap(), 16).unwrap();
                let rattrs =
                    u8::from_str_radix(v["response_attributes"].as_str().unwrap(), 16).unwrap();
                let key = h(v, "hmac_key");
                let cmd = sc::command_hmac(
                    sha,
                    &key,
                    &h(v, "cp_hash"),
                    &h(v, "nonce_caller"),
                    &h(v, "nonce_tpm"),
                    None,
                    None,
                    attrs,
                );
                assert_eq!(
                    hex::encode(cmd),
                    v["command_hmac"].as_str().unwrap(),
                    "{}",
                    v["step"]
                );
                assert!(
                    sc::verify_response_hmac(
                        sha,
                        &key,
                        &h(v, "rp_hash"),
                        &h(v, "new_nonce_tpm"),
                        &h(v, "nonce_caller"),
                        rattrs,
                        &h(v, "response_hmac")
                    ),
                    "{}",
                    v["step"]
                );
                auths += 1;
            }
            "encryption" => {
                let (mut data, expected) = if v["direction"] == "command" {
                    (h(v, "plaintext"), h(v, "ciphertext"))
                } else {
                    (h(v, "ciphertext"), h(v, "plaintext"))
                };
                let value = h(v, "session_value");
                if v["direction"] == "command" {
                    cfb_encrypt(
                        sha,
                        &value,
                        &h(v, "nonce_newer"),
                        &h(v, "nonce_older"),
                        128,
                        &mut data,
                    );
                } else {
                    cfb_decrypt(
                        sha,
                        &value,
                        &h(v, "nonce_newer"),
                        &h(v, "nonce_older"),
                        128,
                        &mut data,
                    );
                }
                assert_eq!(hex::encode(&data), hex::encode(&expected), "{}", v["step"]);
                encs += 1;
            }
            k => panic!("{k}"),
        }
    }
    assert_eq!(sessions, 2);
    assert!(
        auths >= 4 && encs >= 3,
        "{auths} auth, {encs} encryption vectors"
    );
}
