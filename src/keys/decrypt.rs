//! Decryption and key agreement with keys the TPM holds (Part 3 §14.3
//! TPM2_RSA_Decrypt, §14.5 TPM2_ECDH_ZGen). Both are authorized in the salted
//! session with the key's authValue proven by HMAC, and both use parameter
//! encryption both ways (Part 1 §21): the ciphertext or peer point goes with
//! `decrypt` (it is the first TPM2B parameter), the plaintext or shared point
//! comes back with `encrypt`, so neither crosses the bus in clear. The results
//! are zeroized when dropped.

use tpm_commands::attributes::TpmaSession;
use tpm_commands::buffers::{Tpm2bData, Tpm2bEccParameter, Tpm2bPublicKeyRsa};
use tpm_commands::commands::{EcdhZGen, RsaDecrypt};
use tpm_commands::constants::TpmAlgId;
use tpm_commands::structures::{Tpm2bEccPoint, TpmsEccPoint, TpmtScheme};
use zeroize::Zeroizing;

use super::ops::LoadedKey;
use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::session::AuthSession;
use crate::tpm::{Auth, Tpm};

/// How TPM2_RSA_Decrypt removes the padding (Part 2 §11.2.4.3 TPMT_RSA_DECRYPT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaPadding {
    /// RSAES-OAEP (RFC 8017 §7.1) with this hash for the label and for MGF1.
    /// The TPM takes a label only when it ends in a zero byte, which is part of
    /// the label (Part 1 §B.10.3); see [`rsa_decrypt`].
    Oaep(HashAlg),
    /// RSAES-PKCS1-v1_5 (RFC 8017 §7.2).
    Pkcs1,
    /// None (TPM_ALG_NULL): the raw RSA result, modulus-sized. Only for
    /// removing a padding on the host that the TPM cannot (OAEP with a label
    /// that does not end in a zero byte); never handed out as it is.
    Raw,
}

impl RsaPadding {
    fn scheme(self) -> TpmtScheme {
        match self {
            RsaPadding::Oaep(h) => TpmtScheme::with_hash(TpmAlgId::OAEP, TpmAlgId(h.alg_id())),
            RsaPadding::Pkcs1 => TpmtScheme::Rsaes,
            RsaPadding::Raw => TpmtScheme::Null,
        }
    }
}

/// Runs `f` with `session` set to encrypt the first command and response
/// parameters, restoring its attributes afterwards.
fn encrypted_both_ways<T>(
    session: &mut AuthSession,
    f: impl FnOnce(&mut AuthSession) -> Result<T>,
) -> Result<T> {
    let keep = session.attributes();
    session.set_attributes(
        TpmaSession::CONTINUE_SESSION | TpmaSession::DECRYPT | TpmaSession::ENCRYPT,
    );
    let r = f(session);
    session.set_attributes(keep);
    r
}

/// Decrypts `ciphertext` (exactly the modulus size) with a loaded RSA key that
/// has `decrypt` set (TPM2_RSA_Decrypt, one command). `label` is the OAEP label
/// as the TPM uses it: empty, or ending in a zero byte.
///
/// # Errors
/// TPM_RC_VALUE (parameter 1) or TPM_RC_SIZE when the padding or size is wrong;
/// TPM_RC_ATTRIBUTES when the key does not decrypt; TPM_RC_AUTH_FAIL for a wrong
/// authValue; transport errors.
pub fn rsa_decrypt(
    tpm: &mut Tpm,
    key: &LoadedKey,
    session: &mut AuthSession,
    auth: &[u8],
    ciphertext: &[u8],
    padding: RsaPadding,
    label: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let cmd = RsaDecrypt {
        key_handle: key.handle,
        cipher_text: Tpm2bPublicKeyRsa::new(ciphertext.to_vec())?,
        in_scheme: padding.scheme(),
        label: Tpm2bData::new(label.to_vec())?,
    };
    let rsp = encrypted_both_ways(session, |s| {
        tpm.execute(&cmd, &[&key.name], &mut [Auth::Session(s, auth)])
    })?;
    Ok(Zeroizing::new(rsp.message.as_bytes().to_vec()))
}

/// The ECDH shared secret Z (the x coordinate of d·Q, `field_len` bytes, leading
/// zeros kept) of a loaded ECC key that has `decrypt` set and the peer's public
/// point (x, y), each `field_len` bytes (TPM2_ECDH_ZGen, one command).
///
/// # Errors
/// TPM_RC_ECC_POINT for a point not on the curve; TPM_RC_ATTRIBUTES or
/// TPM_RC_KEY when the key does not do ECDH; TPM_RC_AUTH_FAIL for a wrong
/// authValue; [`Error::Integrity`] for a malformed answer; transport errors.
pub fn ecdh_zgen(
    tpm: &mut Tpm,
    key: &LoadedKey,
    session: &mut AuthSession,
    auth: &[u8],
    x: &[u8],
    y: &[u8],
    field_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let cmd = EcdhZGen {
        key_handle: key.handle,
        in_point: Tpm2bEccPoint::new(TpmsEccPoint {
            x: Tpm2bEccParameter::new(x.to_vec())?,
            y: Tpm2bEccParameter::new(y.to_vec())?,
        }),
    };
    let rsp = encrypted_both_ways(session, |s| {
        tpm.execute(&cmd, &[&key.name], &mut [Auth::Session(s, auth)])
    })?;
    let point = rsp.out_point.0.ok_or(Error::Integrity {
        cc: tpm_commands::constants::TpmCc::ECDH_ZGEN,
        what: "no point in the answer",
    })?;
    let zx = point.x.as_bytes();
    if zx.len() > field_len {
        return Err(Error::Integrity {
            cc: tpm_commands::constants::TpmCc::ECDH_ZGEN,
            what: "shared point larger than the curve",
        });
    }
    let mut z = Zeroizing::new(vec![0u8; field_len]);
    z[field_len - zx.len()..].copy_from_slice(zx);
    Ok(z)
}
