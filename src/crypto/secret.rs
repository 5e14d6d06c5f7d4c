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
fn mgf1(hash: HashAlg, seed: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
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
