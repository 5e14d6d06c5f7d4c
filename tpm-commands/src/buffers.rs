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
tpm2b! {
    /// TPM2B_PUBLIC_KEY_RSA (Part 2 §11.2.4.5): an RSA modulus or signature.
    Tpm2bPublicKeyRsa, "TPM2B_PUBLIC_KEY_RSA", max = MAX_RSA_KEY_BYTES
}
tpm2b! {
    /// TPM2B_PUBLIC_KEY_RSA holding a decrypted message (Part 3 §14.3
    /// TPM2_RSA_Decrypt's `message`). Secret.
    Tpm2bRsaPlaintext, "TPM2B_PUBLIC_KEY_RSA", max = MAX_RSA_KEY_BYTES, secret
}
tpm2b! {
    /// TPM2B_PRIVATE_KEY_RSA (Part 2 §11.2.4.7): RSA private prime(s). Secret.
    Tpm2bPrivateKeyRsa, "TPM2B_PRIVATE_KEY_RSA", max = MAX_RSA_KEY_BYTES * 5 / 2, secret
}
tpm2b! {
    /// TPM2B_ECC_PARAMETER (Part 2 §11.2.5.1): a coordinate or signature half.
    Tpm2bEccParameter, "TPM2B_ECC_PARAMETER", max = MAX_ECC_KEY_BYTES
}
tpm2b! {
    /// TPM2B_ECC_PARAMETER holding a private scalar (Part 2 §11.3.2.2). Secret.
    Tpm2bEccPrivate, "TPM2B_ECC_PARAMETER", max = MAX_ECC_KEY_BYTES, secret
}
tpm2b! {
    /// TPM2B_SYM_KEY (Part 2 §11.1.8). Secret.
    Tpm2bSymKey, "TPM2B_SYM_KEY", max = 32, secret
}
tpm2b! {
    /// TPM2B_ENCRYPTED_SECRET (Part 2 §11.4.33): an encrypted salt or seed.
    Tpm2bEncryptedSecret, "TPM2B_ENCRYPTED_SECRET", max = MAX_RSA_KEY_BYTES
}
tpm2b! {
    /// TPM2B_PRIVATE (Part 2 §12.3.7): a TPM-wrapped private area (opaque).
    Tpm2bPrivate, "TPM2B_PRIVATE", max = MAX_FRAME
}
tpm2b! {
    /// TPM2B_NAME (Part 2 §10.5.3): nameAlg || digest, or a 4-byte handle.
    Tpm2bName, "TPM2B_NAME", max = MAX_DIGEST + 2
}
tpm2b! {
    /// TPM2B_MAX_BUFFER (Part 2 §10.4.8).
    Tpm2bMaxBuffer, "TPM2B_MAX_BUFFER", max = 1024
}
tpm2b! {
    /// TPM2B_CONTEXT_DATA (Part 2 §14.4): an encrypted saved context (opaque).
    Tpm2bContextData, "TPM2B_CONTEXT_DATA", max = MAX_FRAME
}
tpm2b! {
    /// TPM2B_CREATION_DATA (Part 2 §15.2), kept opaque: tpmkey does not certify
    /// creation.
    Tpm2bCreationData, "TPM2B_CREATION_DATA", max = MAX_FRAME
}
tpm2b! {
    /// TPM2B_TIMEOUT (Part 2 §10.4.10).
    Tpm2bTimeout, "TPM2B_TIMEOUT", max = 8
}
tpm2b! {
    /// TPM2B_OPERAND (Part 2 §10.4.11): a TPM2B_DIGEST.
    Tpm2bOperand, "TPM2B_OPERAND", max = MAX_DIGEST
}
tpm2b! {
    /// TPM2B_ID_OBJECT (Part 2 §12.4.3), opaque.
    Tpm2bIdObject, "TPM2B_ID_OBJECT", max = MAX_FRAME
}
