//! Key derivation (PKCS#11 2.40 Base §5.14 C_DeriveKey).

use super::params::derive_mechanism;
use super::{out, template, with_module};
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: each pointer checked by the helper that reads it.
        let (mech, params) = unsafe { derive_mechanism(mech) }?;
        // SAFETY: as above.
        let t = unsafe { template(attrs, n) }?;
        // SAFETY: as above.
        let key = unsafe { out(key) }?;
        *key = m.derive_key(h, mech, params, base, &t)?;
        Ok(())
    })
}
