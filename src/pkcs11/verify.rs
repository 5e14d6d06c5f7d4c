//! Signature verification with a public key, in software (PKCS#11 2.40 Base §5.13;
//! Current Mechanisms §2.3 ECDSA, §2.1.6-2.1.11 RSA PKCS #1 v1.5 and PSS): every
//! signing mechanism the module lists, with the same mechanism checks and input
//! rules as signing ([`super::mechanisms::plan`], [`super::mechanisms::Input`]),
//! checked with the RustCrypto crates. No TPM command.

use cryptoki_sys::*;
use tpm_commands::constants::{TpmAlgId, TpmEccCurve};
use tpm_commands::structures::{PublicParams, TpmtPublic};

use super::mechanisms::{mech_rv_of, Input, SignPlan};
use super::state::Rv;
use crate::crypto::hash::HashAlg;
use crate::keys::sshpub::{ec_point, rsa_parts};

/// Checks `sig` over the data collected in `input` against `public`.
///
/// # Errors
/// CKR_SIGNATURE_LEN_RANGE for a signature of the wrong size,
/// CKR_SIGNATURE_INVALID when it does not verify, CKR_DATA_LEN_RANGE and
/// CKR_DATA_INVALID for input the mechanism does not take.
pub fn check(public: &TpmtPublic, plan: &SignPlan, input: Input, sig: &[u8]) -> Result<(), Rv> {
    if sig.len() != plan.sig_len {
        return Err(CKR_SIGNATURE_LEN_RANGE);
    }
    match (plan.scheme, input) {
        // CKM_ECDSA: the caller's hash of any length (§2.3.6), as an integer.
        (TpmAlgId::ECDSA, Input::Raw(data)) => ecdsa(public, &data, sig, plan.field_len),
        // CKM_RSA_PKCS: any block of at most k - 11 bytes (a DigestInfo when
        // signing through the TPM, but verification needs no such limit).
        (TpmAlgId::RSASSA, Input::Raw(data)) => {
            if data.len() + 11 > plan.sig_len {
                return Err(CKR_DATA_LEN_RANGE);
            }
            rsa_verify(public, rsa::Pkcs1v15Sign::new_unprefixed(), &data, sig)
        }
        (scheme, input) => {
            let (hash, digest) = input.finish(plan).map_err(mech_rv_of)?;
            match scheme {
                TpmAlgId::ECDSA => ecdsa(public, &digest, sig, plan.field_len),
                TpmAlgId::RSASSA => rsa_verify(public, pkcs1(hash), &digest, sig),
                _ => rsa_verify(public, pss(hash), &digest, sig),
            }
        }
    }
}

fn pkcs1(h: HashAlg) -> rsa::Pkcs1v15Sign {
    match h {
        HashAlg::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
        HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
        HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
    }
}

/// PSS with MGF1 of the same hash and a salt as long as the digest: what the
/// TPM makes and the mechanism parameters were checked to say.
fn pss(h: HashAlg) -> rsa::Pss {
    let n = h.digest_size();
    match h {
        HashAlg::Sha1 => rsa::Pss::new_with_salt::<sha1::Sha1>(n),
        HashAlg::Sha256 => rsa::Pss::new_with_salt::<sha2::Sha256>(n),
        HashAlg::Sha384 => rsa::Pss::new_with_salt::<sha2::Sha384>(n),
        HashAlg::Sha512 => rsa::Pss::new_with_salt::<sha2::Sha512>(n),
    }
}

fn rsa_verify(
    public: &TpmtPublic,
    scheme: impl rsa::traits::SignatureScheme,
    hashed: &[u8],
    sig: &[u8],
) -> Result<(), Rv> {
    let (n, e) = rsa_parts(public).map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?;
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    )
    .map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?;
    key.verify(scheme, hashed, sig)
        .map_err(|_| CKR_SIGNATURE_INVALID)
}

/// ECDSA over the integer of `hash` (FIPS 186-4 §6.4: its leftmost field-size
/// bits; a shorter hash is the same integer left-padded with zeros).
fn ecdsa(public: &TpmtPublic, hash: &[u8], sig: &[u8], field_len: usize) -> Result<(), Rv> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    if hash.is_empty() {
        return Err(CKR_DATA_LEN_RANGE);
    }
    let mut e = vec![0u8; field_len.saturating_sub(hash.len())];
    e.extend_from_slice(hash);
    let point = ec_point(public).map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?;
    let PublicParams::Ecc { parms, .. } = &public.params else {
        return Err(CKR_KEY_TYPE_INCONSISTENT);
    };
    let ok = match parms.curve_id {
        TpmEccCurve::NIST_P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?;
            p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| vk.verify_prehash(&e, &s).is_ok())
        }
        TpmEccCurve::NIST_P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?;
            p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| vk.verify_prehash(&e, &s).is_ok())
        }
        _ => return Err(CKR_KEY_TYPE_INCONSISTENT),
    };
    if ok {
        Ok(())
    } else {
        Err(CKR_SIGNATURE_INVALID)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::templates::{key_template, KeyAlgorithm, KeyUsage};
    use crate::pkcs11::mechanisms::{plan, PssParams};
    use tpm_commands::buffers::{Tpm2bEccParameter, Tpm2bPublicKeyRsa};
    use tpm_commands::structures::TpmsEccPoint;

    fn p256_public(k: &p256::ecdsa::SigningKey) -> TpmtPublic {
        let p = k.verifying_key().to_encoded_point(false);
        let mut t = key_template(KeyAlgorithm::Ecc256, KeyUsage::SIGN, false);
        if let PublicParams::Ecc { unique, .. } = &mut t.params {
            *unique = TpmsEccPoint {
                x: Tpm2bEccParameter::new(p.x().unwrap().to_vec()).unwrap(),
                y: Tpm2bEccParameter::new(p.y().unwrap().to_vec()).unwrap(),
            };
        }
        t
    }

    fn run(public: &TpmtPublic, p: &SignPlan, parts: &[&[u8]], sig: &[u8]) -> Result<(), Rv> {
        let mut input = Input::new(p);
        for part in parts {
            input.update(part).map_err(mech_rv_of)?;
        }
        check(public, p, input, sig)
    }

    #[test]
    fn ecdsa_raw_and_hashing_mechanisms() {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let k = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let public = p256_public(&k);
        let digest = HashAlg::Sha256.hash(&[b"hello world"]);
        let sig: p256::ecdsa::Signature = k.sign_prehash(&digest).unwrap();
        let sig = sig.to_bytes().to_vec();
        let raw = plan(CKM_ECDSA, None, KeyAlgorithm::Ecc256, 0).unwrap();
        assert_eq!(run(&public, &raw, &[&digest], &sig), Ok(()));
        let hashing = plan(CKM_ECDSA_SHA256, None, KeyAlgorithm::Ecc256, 0).unwrap();
        assert_eq!(run(&public, &hashing, &[b"hello ", b"world"], &sig), Ok(()));
        assert_eq!(
            run(&public, &hashing, &[b"hello there"], &sig),
            Err(CKR_SIGNATURE_INVALID)
        );
        assert_eq!(
            run(&public, &hashing, &[b"hello world"], &sig[..63]),
            Err(CKR_SIGNATURE_LEN_RANGE)
        );
        // A 20-byte hash is the same integer left-padded (SHA-1 on P-256).
        let short = HashAlg::Sha1.hash(&[b"x"]);
        let sig: p256::ecdsa::Signature = k.sign_prehash(&short).unwrap();
        assert_eq!(run(&public, &raw, &[&short], &sig.to_bytes()), Ok(()));
    }

    #[test]
    fn rsa_pkcs1_and_pss() {
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let mut public = key_template(KeyAlgorithm::Rsa2048, KeyUsage::SIGN, false);
        if let PublicParams::Rsa { unique, .. } = &mut public.params {
            *unique = Tpm2bPublicKeyRsa::new(key.n().to_bytes_be()).unwrap();
        }
        let digest = HashAlg::Sha384.hash(&[b"data"]);
        let sig = key.sign(pkcs1(HashAlg::Sha384), &digest).unwrap();
        let p = plan(CKM_SHA384_RSA_PKCS, None, KeyAlgorithm::Rsa2048, 256).unwrap();
        assert_eq!(run(&public, &p, &[b"da", b"ta"], &sig), Ok(()));
        // CKM_RSA_PKCS verifies any block, the DigestInfo included.
        let raw = plan(CKM_RSA_PKCS, None, KeyAlgorithm::Rsa2048, 256).unwrap();
        let block = b"not a DigestInfo at all";
        let sig_raw = key
            .sign(rsa::Pkcs1v15Sign::new_unprefixed(), block)
            .unwrap();
        assert_eq!(run(&public, &raw, &[block], &sig_raw), Ok(()));
        assert_eq!(
            run(&public, &raw, &[b"something else"], &sig_raw),
            Err(CKR_SIGNATURE_INVALID)
        );
        assert_eq!(
            run(&public, &raw, &[&[0; 246]], &sig_raw),
            Err(CKR_DATA_LEN_RANGE)
        );
        let pss_sig = key
            .sign_with_rng(
                &mut rand_core::OsRng,
                pss(HashAlg::Sha256),
                &HashAlg::Sha256.hash(&[b"m"]),
            )
            .unwrap();
        let params = PssParams {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            salt_len: 32,
        };
        let p = plan(
            CKM_SHA256_RSA_PKCS_PSS,
            Some(params),
            KeyAlgorithm::Rsa2048,
            256,
        )
        .unwrap();
        assert_eq!(run(&public, &p, &[b"m"], &pss_sig), Ok(()));
        let p = plan(CKM_RSA_PKCS_PSS, Some(params), KeyAlgorithm::Rsa2048, 256).unwrap();
        assert_eq!(
            run(&public, &p, &[&HashAlg::Sha256.hash(&[b"m"])], &pss_sig),
            Ok(())
        );
        assert_eq!(
            run(&public, &p, &[b"short"], &pss_sig),
            Err(CKR_DATA_LEN_RANGE)
        );
    }
}
