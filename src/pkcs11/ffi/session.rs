//! Sessions and logins (PKCS#11 2.40 Base §5.6).

use std::os::raw::c_void;

use super::{bytes, out, with_module};
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _app: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    with_module(|m| {
        m.slot_info(slot)?;
        // SAFETY: checked for null by `out`.
        let session = unsafe { out(session) }?;
        *session = m.open_session(slot, flags)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(h: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| m.close_session(h))
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    with_module(|m| m.close_all_sessions(slot))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    h: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    with_module(|m| {
        let f = m.session_info(h)?;
        // SAFETY: checked for null by `out`.
        let info = unsafe { out(info) }?;
        info.slotID = f.slot;
        info.state = f.state;
        info.flags = f.flags;
        info.ulDeviceError = 0;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    h: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: `len` bytes at `pin`, checked in `bytes`.
        let pin = zeroize::Zeroizing::new(unsafe { bytes(pin, len) }?.to_vec());
        m.login(h, user, &pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(h: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| m.logout(h))
}
