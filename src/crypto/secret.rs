//! Secret sharing with a TPM key (Part 1 Annex B RSA, Annex C ECC): encrypting a
//! salt ("SECRET") or an import seed ("DUPLICATE") to a TPM public key.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::hash::HashAlg;
use super::kdf::kdfe;
use super::CryptoError;

/// An elliptic curve tpmkey can encrypt to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EccCurve {
    /// NIST P-256 (TPM_ECC_NIST_P256).
    P256,
    /// NIST P-384 (TPM_ECC_NIST_P384).
    P384,
}

impl EccCurve {
    /// Coordinate size in bytes.
    pub fn coordinate_size(self) -> usize {
        match self {
            EccCurve::P256 => 32,
            EccCurve::P384 => 48,
        }
    }
}

/// A shared secret (Z or a seed) and the ephemeral public point (x, y) that lets
/// the TPM recompute it.
pub type SharedSecret = (Zeroizing<Vec<u8>>, Vec<u8>, Vec<u8>);

fn sec1_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + x.len() + y.len());
    v.push(0x04);
    v.extend_from_slice(x);
    v.extend_from_slice(y);
    v
}

fn pad_left(b: &[u8], size: usize) -> Result<Vec<u8>, CryptoError> {
    if b.len() > size {
        return Err(CryptoError::InvalidKey(format!(
            "coordinate of {} bytes, at most {size}",
            b.len()
        )));
    }
    let mut v = vec![0u8; size - b.len()];
    v.extend_from_slice(b);
    Ok(v)
}

/// ECDH with a given ephemeral scalar: returns (Z = x(`[d]·Q`), Qe.x, Qe.y), all
/// fixed-width. The point Q is checked to be on the curve.
///
/// # Errors
/// A point not on the curve or a scalar out of range.
pub fn ecdh_with_scalar(
    curve: EccCurve,
    qx: &[u8],
    qy: &[u8],
    scalar: &[u8],
) -> Result<SharedSecret, CryptoError> {
    let n = curve.coordinate_size();
    let point = sec1_point(&pad_left(qx, n)?, &pad_left(qy, n)?);
    let bad = |what: &str| CryptoError::InvalidKey(what.to_string());
    macro_rules! run {
        ($c:ident) => {{
            let q = $c::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| bad("point not on the curve"))?;
            let d = $c::SecretKey::from_slice(scalar)
                .map_err(|_| bad("ephemeral scalar out of range"))?;
            let shared = $c::ecdh::diffie_hellman(d.to_nonzero_scalar(), q.as_affine());
            let z = Zeroizing::new(shared.raw_secret_bytes().to_vec());
            let e = d.public_key().to_encoded_point(false);
            let (Some(ex), Some(ey)) = (e.x(), e.y()) else {
                return Err(bad("ephemeral point at infinity"));
            };
            Ok((z, ex.to_vec(), ey.to_vec()))
        }};
    }
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    match curve {
        EccCurve::P256 => run!(p256),
        EccCurve::P384 => run!(p384),
    }
}

/// ECC secret sharing (Part 1 C.6.1; spec-notes §4): a fresh ephemeral key, Z by
/// ECDH with the TPM key, seed = KDFe(nameAlg, Z, label, Qe.x, Q.x, digestBits).
/// Returns (seed, Qe.x, Qe.y).
///
/// # Errors
/// A TPM point not on the curve.
pub fn ecc_encapsulate(
    curve: EccCurve,
    qx: &[u8],
    qy: &[u8],
    name_alg: HashAlg,
    label: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<SharedSecret, CryptoError> {
    let scalar = Zeroizing::new(match curve {
        EccCurve::P256 => p256::SecretKey::random(rng).to_bytes().to_vec(),
        EccCurve::P384 => p384::SecretKey::random(rng).to_bytes().to_vec(),
    });
    ecc_encapsulate_with_scalar(curve, qx, qy, name_alg, label, &scalar)
}

/// [`ecc_encapsulate`] with a given ephemeral scalar (for vectors).
///
/// # Errors
/// As [`ecdh_with_scalar`].
pub fn ecc_encapsulate_with_scalar(
    curve: EccCurve,
    qx: &[u8],
    qy: &[u8],
    name_alg: HashAlg,
    label: &[u8],
    scalar: &[u8],
) -> Result<SharedSecret, CryptoError> {
    let (z, ex, ey) = ecdh_with_scalar(curve, qx, qy, scalar)?;
    let qx_full = pad_left(qx, curve.coordinate_size())?;
    let seed = kdfe(
        name_alg,
        &z,
        label,
        &ex,
        &qx_full,
        (name_alg.digest_size() * 8) as u32,
    );
    Ok((seed, ex, ey))
}

/// The encrypted-secret bytes for an ECC key: a marshalled TPMS_ECC_POINT
/// (TPM2B x, TPM2B y).
pub fn ecc_point_bytes(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + x.len() + y.len());
    v.extend_from_slice(&(x.len() as u16).to_be_bytes());
    v.extend_from_slice(x);
    v.extend_from_slice(&(y.len() as u16).to_be_bytes());
    v.extend_from_slice(y);
    v
}

/// MGF1 (RFC 8017 §B.2.1) with `hash`.
pub fn mgf1(hash: HashAlg, seed: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.digest_size()));
    let mut counter: u32 = 0;
    while out.len() < len {
        out.extend_from_slice(&hash.hash(&[seed, &counter.to_be_bytes()]));
        counter += 1;
    }
    out.truncate(len);
    out
}

/// EME-OAEP encoding (RFC 8017 §7.1.1 step 2) with a given seed of hLen bytes:
/// EM = 0x00 || maskedSeed || maskedDB, for a modulus of `k` bytes.
///
/// # Errors
/// A message too long for the modulus, or a seed of the wrong size.
pub fn oaep_encode(
    hash: HashAlg,
    label: &[u8],
    message: &[u8],
    k: usize,
    seed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let h_len = hash.digest_size();
    if seed.len() != h_len {
        return Err(CryptoError::InvalidKey(
            "OAEP seed must be one digest long".into(),
        ));
    }
    if k < 2 * h_len + 2 || message.len() > k - 2 * h_len - 2 {
        return Err(CryptoError::InvalidKey(
            "message too long for RSA-OAEP with this modulus".into(),
        ));
    }
    let mut db = Zeroizing::new(Vec::with_capacity(k - h_len - 1));
    db.extend_from_slice(&hash.hash(&[label]));
    db.resize(k - message.len() - h_len - 2, 0);
    db.push(0x01);
    db.extend_from_slice(message);
    let db_mask = mgf1(hash, seed, db.len());
    for (d, m) in db.iter_mut().zip(db_mask.iter()) {
        *d ^= m;
    }
    let mut masked_seed = Zeroizing::new(seed.to_vec());
    let seed_mask = mgf1(hash, &db, h_len);
    for (d, m) in masked_seed.iter_mut().zip(seed_mask.iter()) {
        *d ^= m;
    }
    let mut em = Zeroizing::new(Vec::with_capacity(k));
    em.push(0);
    em.extend_from_slice(&masked_seed);
    em.extend_from_slice(&db);
    Ok(em)
}

/// EME-OAEP decoding (RFC 8017 §7.1.2 step 3) of a modulus-sized block `em`:
/// the message, or None when the block is not a valid OAEP encoding under
/// `hash` and `label`. Every check runs in constant time and the verdict is one
/// bit at the end (Manger's attack needs to tell the failures apart).
pub fn oaep_decode(hash: HashAlg, label: &[u8], em: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use subtle::{ConditionallySelectable, ConstantTimeEq};
    let h_len = hash.digest_size();
    let k = em.len();
    if k < 2 * h_len + 2 {
        return None;
    }
    let (y, rest) = em.split_first()?;
    let (masked_seed, masked_db) = rest.split_at(h_len);
    let mut seed = Zeroizing::new(masked_seed.to_vec());
    for (s, m) in seed.iter_mut().zip(mgf1(hash, masked_db, h_len).iter()) {
        *s ^= m;
    }
    let mut db = Zeroizing::new(masked_db.to_vec());
    let db_mask = mgf1(hash, &seed, db.len());
    for (d, m) in db.iter_mut().zip(db_mask.iter()) {
        *d ^= m;
    }
    let (l_hash, ps_m) = db.split_at(h_len);
    let mut good = y.ct_eq(&0) & l_hash.ct_eq(&hash.hash(&[label]));
    // PS (zeros), then 0x01, then M: find the 0x01 without branching on data.
    let mut looking = subtle::Choice::from(1);
    let mut index = 0u32;
    for (i, b) in ps_m.iter().enumerate() {
        let (zero, one) = (b.ct_eq(&0), b.ct_eq(&1));
        index.conditional_assign(&(i as u32), looking & one);
        good &= !(looking & !zero & !one);
        looking &= !one;
    }
    good &= !looking;
    if bool::from(good) {
        let start = (index as usize).checked_add(1)?;
        Some(Zeroizing::new(ps_m.get(start..)?.to_vec()))
    } else {
        None
    }
}

/// RSA secret sharing (Part 1 B.10.3) with a given OAEP seed (for vectors):
/// RSAES-OAEP of `secret` with `oaep_hash` for both the label digest and MGF1, and
/// `label` (NUL included, e.g. `b"SECRET\0"`). `exponent` 0 means 65537.
///
/// # Errors
/// A modulus under 1024 bits or over 8192, a secret too long.
pub fn rsa_encapsulate_with_seed(
    modulus: &[u8],
    exponent: u32,
    oaep_hash: HashAlg,
    label: &[u8],
    secret: &[u8],
    oaep_seed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let e = if exponent == 0 { 65537 } else { exponent };
    let n = rsa::BigUint::from_bytes_be(modulus);
    let k = n.bits().div_ceil(8);
    if !(128..=1024).contains(&k) {
        return Err(CryptoError::InvalidKey(format!(
            "RSA modulus of {} bits",
            n.bits()
        )));
    }
    let em = oaep_encode(oaep_hash, label, secret, k, oaep_seed)?;
    let c = rsa::BigUint::from_bytes_be(&em).modpow(&rsa::BigUint::from(e), &n);
    pad_left(&c.to_bytes_be(), k)
}

/// RSA secret sharing (Part 1 B.10.3): [`rsa_encapsulate_with_seed`] with a fresh
/// random OAEP seed.
///
/// # Errors
/// As [`rsa_encapsulate_with_seed`].
pub fn rsa_encapsulate(
    modulus: &[u8],
    exponent: u32,
    oaep_hash: HashAlg,
    label: &[u8],
    secret: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, CryptoError> {
    let mut seed = Zeroizing::new(vec![0u8; oaep_hash.digest_size()]);
    rng.fill_bytes(&mut seed);
    rsa_encapsulate_with_seed(modulus, exponent, oaep_hash, label, secret, &seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};

    fn raw_private(key: &rsa::RsaPrivateKey, c: &[u8]) -> Vec<u8> {
        let m = rsa::BigUint::from_bytes_be(c).modpow(key.d(), key.n());
        pad_left(&m.to_bytes_be(), key.size()).unwrap()
    }

    #[test]
    fn oaep_decode_agrees_with_the_rsa_crate_and_refuses_tampering() {
        let mut rng = rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let public = key.to_public_key();
        // Encrypted by the rsa crate (UTF-8 label), decoded here.
        let c = public
            .encrypt(
                &mut rng,
                rsa::Oaep::new_with_label::<sha2::Sha256, _>("ABC"),
                b"attack at dawn",
            )
            .unwrap();
        let em = raw_private(&key, &c);
        assert_eq!(
            oaep_decode(HashAlg::Sha256, b"ABC", &em)
                .unwrap()
                .as_slice(),
            b"attack at dawn"
        );
        assert!(oaep_decode(HashAlg::Sha256, b"ABD", &em).is_none());
        assert!(oaep_decode(HashAlg::Sha1, b"ABC", &em).is_none());
        for i in [0, 1, 40, 255] {
            let mut bad = em.clone();
            bad[i] ^= 0x80;
            assert!(
                oaep_decode(HashAlg::Sha256, b"ABC", &bad).is_none(),
                "byte {i}"
            );
        }
        // Encoded here with a binary label and SHA-512, decoded here; an empty
        // label is what the rsa crate decrypts.
        let n = public.n().to_bytes_be();
        let label = [0xff, 0x00, 0x01];
        for hash in [HashAlg::Sha1, HashAlg::Sha512] {
            let c = rsa_encapsulate(&n, 65537, hash, &label, b"", &mut rng).unwrap();
            let m = oaep_decode(hash, &label, &raw_private(&key, &c)).unwrap();
            assert!(m.is_empty());
        }
        let c = rsa_encapsulate(&n, 65537, HashAlg::Sha1, b"", b"hello", &mut rng).unwrap();
        assert_eq!(
            key.decrypt(rsa::Oaep::new::<sha1::Sha1>(), &c).unwrap(),
            b"hello"
        );
        assert!(oaep_decode(HashAlg::Sha256, b"", &[0; 10]).is_none());
    }
}
