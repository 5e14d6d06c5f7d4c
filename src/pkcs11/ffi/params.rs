//! Mechanism parameters and operation outputs at the C ABI: CK_RSA_PKCS_OAEP_PARAMS
//! (Current Mechanisms §2.1.8) and CK_ECDH1_DERIVE_PARAMS (§2.3.9) read from the
//! caller's memory, and the two-call output convention of PKCS#11 2.40 Base §5.2
//! (a null buffer asks for the length; a short one gets CKR_BUFFER_TOO_SMALL).

use super::{bytes, out};
use crate::pkcs11::crypt::OaepParams;
use crate::pkcs11::ecdh::EcdhParams;
use crate::pkcs11::state::{OpOutput, Rv};
use cryptoki_sys::*;

/// A mechanism pointer: its type and whether parameters come with it.
///
/// # Safety
/// `p` is null or points to a CK_MECHANISM.
pub(super) unsafe fn mechanism_of<'a>(p: *const CK_MECHANISM) -> Result<&'a CK_MECHANISM, Rv> {
    // SAFETY: a non-null mechanism pointer points to a CK_MECHANISM.
    unsafe { p.as_ref() }.ok_or(CKR_ARGUMENTS_BAD)
}

fn has_params(m: &CK_MECHANISM) -> bool {
    !m.pParameter.is_null() && m.ulParameterLen != 0
}

/// A parameter struct of type `T`, read unaligned (the caller's buffer may not
/// be aligned); CKR_MECHANISM_PARAM_INVALID when its size is not T's.
///
/// # Safety
/// A non-null pParameter holds ulParameterLen readable bytes.
unsafe fn param<T>(m: &CK_MECHANISM) -> Result<T, Rv> {
    if m.pParameter.is_null() || m.ulParameterLen as usize != std::mem::size_of::<T>() {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    // SAFETY: pParameter holds size_of::<T>() bytes (checked), T is plain data.
    Ok(unsafe { std::ptr::read_unaligned(m.pParameter as *const T) })
}

/// Bytes a parameter struct points to; a bad pointer is a parameter error.
///
/// # Safety
/// A non-null `p` points to `len` readable bytes.
unsafe fn param_bytes(p: *const u8, len: CK_ULONG) -> Result<Vec<u8>, Rv> {
    // SAFETY: as promised by the caller, checked for null in `bytes`.
    unsafe { bytes(p, len) }
        .map(<[u8]>::to_vec)
        .map_err(|_| CKR_MECHANISM_PARAM_INVALID)
}

/// An encryption/decryption mechanism: its type and OAEP parameters. Parameters
/// on CKM_RSA_PKCS are CKR_MECHANISM_PARAM_INVALID; other mechanisms are left
/// for the module to refuse.
///
/// # Safety
/// `p` is null or points to a CK_MECHANISM whose parameter pointers are valid.
pub(super) unsafe fn crypt_mechanism(
    p: *const CK_MECHANISM,
) -> Result<(CK_MECHANISM_TYPE, Option<OaepParams>), Rv> {
    // SAFETY: as promised.
    let m = unsafe { mechanism_of(p) }?;
    match m.mechanism {
        CKM_RSA_PKCS_OAEP if has_params(m) => {
            // SAFETY: as promised.
            let o: CK_RSA_PKCS_OAEP_PARAMS = unsafe { param(m) }?;
            Ok((
                m.mechanism,
                Some(OaepParams {
                    hash: o.hashAlg,
                    mgf: o.mgf,
                    source: o.source,
                    // SAFETY: pSourceData holds ulSourceDataLen bytes.
                    label: unsafe { param_bytes(o.pSourceData as *const u8, o.ulSourceDataLen) }?,
                }),
            ))
        }
        CKM_RSA_PKCS if has_params(m) => Err(CKR_MECHANISM_PARAM_INVALID),
        other => Ok((other, None)),
    }
}

/// A derivation mechanism: its type and ECDH1 parameters.
///
/// # Safety
/// `p` is null or points to a CK_MECHANISM whose parameter pointers are valid.
pub(super) unsafe fn derive_mechanism(
    p: *const CK_MECHANISM,
) -> Result<(CK_MECHANISM_TYPE, Option<EcdhParams>), Rv> {
    // SAFETY: as promised.
    let m = unsafe { mechanism_of(p) }?;
    if m.mechanism != CKM_ECDH1_DERIVE || !has_params(m) {
        return Ok((m.mechanism, None));
    }
    // SAFETY: as promised.
    let e: CK_ECDH1_DERIVE_PARAMS = unsafe { param(m) }?;
    // SAFETY: the pointers hold the lengths given beside them.
    let (shared, public) = unsafe {
        (
            param_bytes(e.pSharedData as *const u8, e.ulSharedDataLen)?,
            param_bytes(e.pPublicData as *const u8, e.ulPublicDataLen)?,
        )
    };
    Ok((
        m.mechanism,
        Some(EcdhParams {
            kdf: e.kdf,
            shared,
            public,
        }),
    ))
}

/// A digest mechanism: its type and whether parameters came with it.
///
/// # Safety
/// `p` is null or points to a CK_MECHANISM.
pub(super) unsafe fn digest_mechanism(
    p: *const CK_MECHANISM,
) -> Result<(CK_MECHANISM_TYPE, bool), Rv> {
    // SAFETY: as promised.
    let m = unsafe { mechanism_of(p) }?;
    Ok((m.mechanism, has_params(m)))
}

/// The caller's output buffer size: None for a null buffer (a length query).
///
/// # Safety
/// `len` is null or writable.
pub(super) unsafe fn capacity(buf: *const u8, len: *mut CK_ULONG) -> Result<Option<usize>, Rv> {
    // SAFETY: checked for null by `out`.
    let len = unsafe { out(len) }?;
    Ok(if buf.is_null() {
        None
    } else {
        Some(usize::try_from(*len).unwrap_or(usize::MAX))
    })
}

/// Writes an operation's output the §5.2 way.
///
/// # Safety
/// A non-null `buf` holds the capacity the caller gave in `*len` (checked
/// against the output by the module before it returns [`OpOutput::Bytes`]).
pub(super) unsafe fn put(o: OpOutput, buf: *mut u8, len: *mut CK_ULONG) -> Result<(), Rv> {
    // SAFETY: checked for null by `out`.
    let len = unsafe { out(len) }?;
    match o {
        OpOutput::Length(n) => {
            *len = n as CK_ULONG;
            if buf.is_null() {
                Ok(())
            } else {
                Err(CKR_BUFFER_TOO_SMALL)
            }
        }
        OpOutput::Bytes(b) => {
            if !b.is_empty() {
                // SAFETY: non-null (a null buffer is a length query) and holds
                // *len >= b.len() bytes.
                unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), buf, b.len()) };
            }
            *len = b.len() as CK_ULONG;
            Ok(())
        }
    }
}
