//! TPM2B byte buffers (Part 2 §10.4 and the sections named on each) with their
//! spec maxima. Buffers that carry secrets zeroize on drop and never print.


/// Largest digest of the hashes tpmkey supports (SHA-512).
pub const MAX_DIGEST: usize = 64;
/// MAX_SYM_DATA (Part 2 §10.4.3 constants): 128 in the reference implementation.
pub const MAX_SYM_DATA: usize = 128;
/// Largest RSA modulus handled: 4096 bits.
pub const MAX_RSA_KEY_BYTES: usize = 512;
/// Largest ECC coordinate handled: P-521.
pub const MAX_ECC_KEY_BYTES: usize = 66;
/// Largest buffer any TPM frame can hold (TPM_PT_MAX_COMMAND_SIZE on common TPMs).
pub const MAX_FRAME: usize = 4096;

tpm2b! {
    /// TPM2B_DIGEST (Part 2 §10.4.2).
    Tpm2bDigest, "TPM2B_DIGEST", max = MAX_DIGEST
}
tpm2b! {
    /// TPM2B_DATA (Part 2 §10.4.3).
    Tpm2bData, "TPM2B_DATA", max = MAX_DIGEST + 2 + 64
}
tpm2b! {
    /// TPM2B_NONCE (Part 2 §10.4.4): a TPM2B_DIGEST.
    Tpm2bNonce, "TPM2B_NONCE", max = MAX_DIGEST
}
tpm2b! {
    /// TPM2B_AUTH (Part 2 §10.4.5): an authValue or HMAC. Secret.
    Tpm2bAuth, "TPM2B_AUTH", max = MAX_DIGEST, secret
}
tpm2b! {
    /// TPM2B_SENSITIVE_DATA (Part 2 §11.1.14). Secret.
    Tpm2bSensitiveData, "TPM2B_SENSITIVE_DATA", max = MAX_SYM_DATA, secret
}
