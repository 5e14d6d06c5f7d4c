//! Key generation and random numbers (PKCS#11 2.40 Base §5.14, §5.15).

use super::{bytes, mechanism, out, template, with_module};
use crate::pkcs11::state::Module;
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    pub_attrs: *mut CK_ATTRIBUTE,
    pub_n: CK_ULONG,
    priv_attrs: *mut CK_ATTRIBUTE,
    priv_n: CK_ULONG,
    pub_key: *mut CK_OBJECT_HANDLE,
    priv_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        // The session first: a bogus session is that, whatever the templates say.
        m.check_session(h)?;
        // SAFETY: each pointer checked by the helper that reads it.
        let (mech, _) = unsafe { mechanism(mech) }?;
        // SAFETY: as above.
        let (pub_t, priv_t) =
            unsafe { (template(pub_attrs, pub_n)?, template(priv_attrs, priv_n)?) };
        // SAFETY: as above.
        let (pub_key, priv_key) = unsafe { (out(pub_key)?, out(priv_key)?) };
        let req = Module::key_pair_request(mech, &pub_t, &priv_t)?;
        let (p, k) = m.generate_key_pair(h, req)?;
        *pub_key = p;
        *priv_key = k;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    h: CK_SESSION_HANDLE,
    buf: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        let n = usize::try_from(len).map_err(|_| CKR_ARGUMENTS_BAD)?;
        if n == 0 {
            return Ok(());
        }
        if buf.is_null() || n > 1 << 20 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let r = m.random(h, n)?;
        // SAFETY: the caller's buffer holds `n` bytes.
        unsafe { std::ptr::copy_nonoverlapping(r.as_ptr(), buf, n) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    h: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked in `bytes`.
        let seed = unsafe { bytes(seed, len) }?;
        if seed.is_empty() {
            return Ok(());
        }
        m.seed_random(h, seed)
    })
}
