//! KDFa and KDFe (Part 1 §11.4.10.2, §11.4.10.3).

use zeroize::Zeroizing;

use super::hash::HashAlg;

/// Strips one trailing NUL from a label: the KDFs add exactly one.
fn label_body(label: &[u8]) -> &[u8] {
    label.strip_suffix(&[0]).unwrap_or(label)
}

fn mask_high_bits(out: &mut [u8], bits: u32) {
    if bits % 8 != 0 {
        if let Some(first) = out.first_mut() {
            *first &= 0xFF >> (8 - bits % 8);
        }
    }
}

/// KDFa (SP 800-108 counter mode with HMAC): `K_i = HMAC(key, [i]u32 || label || 0x00
/// || contextU || contextV || [bits]u32)`, output = the leading `bits` of `K_1 || K_2 …`.
pub fn kdfa(
    hash: HashAlg,
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    let len = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.digest_size()));
    let mut i: u32 = 1;
    while out.len() < len {
        let k = Zeroizing::new(hash.hmac(
            key,
            &[
                &i.to_be_bytes(),
                label_body(label),
                &[0],
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        ));
        out.extend_from_slice(&k);
        i += 1;
    }
    out.truncate(len);
    mask_high_bits(&mut out, bits);
    out
}

/// KDFe (SP 800-56A concatenation KDF): `K_i = H([i]u32 || Z || label || 0x00 ||
/// partyU || partyV)`; the bit count is not hashed.
pub fn kdfe(
    hash: HashAlg,
    z: &[u8],
    label: &[u8],
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    let len = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.digest_size()));
    let mut i: u32 = 1;
    while out.len() < len {
        let k = Zeroizing::new(hash.hash(&[
            &i.to_be_bytes(),
            z,
            label_body(label),
            &[0],
            party_u,
            party_v,
        ]));
        out.extend_from_slice(&k);
        i += 1;
    }
    out.truncate(len);
    mask_high_bits(&mut out, bits);
    out
}

/// The ANSI X9.63 KDF (SEC 1 v2 §3.6.1; PKCS#11 CKD_SHA*_KDF for ECDH):
/// `K_i = H(Z || [i]u32 || sharedInfo)`, i = 1, 2, …, cut to `len` bytes.
pub fn x963_kdf(hash: HashAlg, z: &[u8], shared_info: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.digest_size()));
    let mut i: u32 = 1;
    while out.len() < len {
        let k = Zeroizing::new(hash.hash(&[z, &i.to_be_bytes(), shared_info]));
        out.extend_from_slice(&k);
        i += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn x963_kdf_matches_openssl() {
        // `openssl kdf -keylen 48 -kdfopt digest:SHA256 -kdfopt hexsecret:00112233
        //  -kdfopt hexinfo:aabb X963KDF` (OpenSSL 3.0), and the SHA-1 one.
        let k = x963_kdf(HashAlg::Sha256, &[0, 0x11, 0x22, 0x33], &[0xaa, 0xbb], 48);
        assert_eq!(
            *k,
            unhex("D7A661509C1FB0F52FAFACCB93F33184F66B90453E4D6C8A4E5705FC70D8A3D1C0CA5F2646B288314F0F76466ECB2879")
        );
        let short = x963_kdf(HashAlg::Sha256, &[0, 0x11, 0x22, 0x33], &[0xaa, 0xbb], 16);
        assert_eq!(&short[..], &k[..16]);
        let k = x963_kdf(HashAlg::Sha1, &[1, 2], &[], 20);
        assert_eq!(*k, unhex("C984098B9A0A2E7CCF2744E7AF31AD5FFE9A1D2F"));
    }
}
