//! cpHash, rpHash, session keys and session HMACs (Part 1 §18.7, §18.8, §19.6).

use zeroize::Zeroizing;

use super::hash::HashAlg;
use super::kdf::kdfa;

/// Removes trailing zero bytes from an authValue (Part 1 §19.6.5; ms-tpm
/// EntityGetAuthValue).
pub fn strip_trailing_zeros(auth: &[u8]) -> &[u8] {
    let end = auth.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    auth.get(..end).unwrap_or(&[])
}

/// cpHash = H(commandCode || Name(handle 1) || … || parameters as sent) (Part 1 §18.7).
pub fn cp_hash(hash: HashAlg, cc: u32, names: &[&[u8]], params: &[u8]) -> Vec<u8> {
    let ccb = cc.to_be_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(names.len() + 2);
    parts.push(&ccb);
    parts.extend_from_slice(names);
    parts.push(params);
    hash.hash(&parts)
}

/// rpHash = H(responseCode || commandCode || parameters as received) (Part 1 §18.8).
pub fn rp_hash(hash: HashAlg, rc: u32, cc: u32, params: &[u8]) -> Vec<u8> {
    hash.hash(&[&rc.to_be_bytes(), &cc.to_be_bytes(), params])
}

/// sessionKey = KDFa(authHash, bindAuth || salt, "ATH", nonceTPM, nonceCaller,
/// digestBits); empty for an unbound, unsalted session (Part 1 §19.6.8–19.6.9).
pub fn session_key(
    hash: HashAlg,
    bind_auth: &[u8],
    salt: &[u8],
    nonce_tpm: &[u8],
    nonce_caller: &[u8],
) -> Zeroizing<Vec<u8>> {
    let bind_auth = strip_trailing_zeros(bind_auth);
    if bind_auth.is_empty() && salt.is_empty() {
        return Zeroizing::new(Vec::new());
    }
    let mut key = Zeroizing::new(Vec::with_capacity(bind_auth.len() + salt.len()));
    key.extend_from_slice(bind_auth);
    key.extend_from_slice(salt);
    kdfa(
        hash,
        &key,
        b"ATH",
        nonce_tpm,
        nonce_caller,
        (hash.digest_size() * 8) as u32,
    )
}

/// The command HMAC (Part 1 §19.6.5): HMAC(hmacKey, cpHash || nonceCaller ||
/// `nonceTPM || [nonceTPMdecrypt] || [nonceTPMencrypt] || sessionAttributes`).
#[allow(clippy::too_many_arguments)]
pub fn command_hmac(
    hash: HashAlg,
    hmac_key: &[u8],
    cp_hash: &[u8],
    nonce_caller: &[u8],
    nonce_tpm: &[u8],
    nonce_tpm_decrypt: Option<&[u8]>,
    nonce_tpm_encrypt: Option<&[u8]>,
    attrs: u8,
) -> Vec<u8> {
    hash.hmac(
        hmac_key,
        &[
            cp_hash,
            nonce_caller,
            nonce_tpm,
            nonce_tpm_decrypt.unwrap_or(&[]),
            nonce_tpm_encrypt.unwrap_or(&[]),
            &[attrs],
        ],
    )
}

/// The response HMAC (Part 1 §19.6.5): HMAC(hmacKey, rpHash || nonceTPM ||
/// nonceCaller || sessionAttributes).
pub fn response_hmac(
    hash: HashAlg,
    hmac_key: &[u8],
    rp_hash: &[u8],
    nonce_tpm: &[u8],
    nonce_caller: &[u8],
    attrs: u8,
) -> Vec<u8> {
    hash.hmac(hmac_key, &[rp_hash, nonce_tpm, nonce_caller, &[attrs]])
}

/// Checks a response HMAC in constant time.
pub fn verify_response_hmac(
    hash: HashAlg,
    hmac_key: &[u8],
    rp_hash: &[u8],
    nonce_tpm: &[u8],
    nonce_caller: &[u8],
    attrs: u8,
    expected: &[u8],
) -> bool {
    hash.hmac_verify(
        hmac_key,
        &[rp_hash, nonce_tpm, nonce_caller, &[attrs]],
        expected,
    )
}
