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
