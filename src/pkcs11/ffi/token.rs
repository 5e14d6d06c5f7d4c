//! Slots, tokens, mechanisms and PINs (PKCS#11 2.40 Base §5.5).

use super::{bytes, library_version, out, pad, with_module, write_list};
use crate::pkcs11::mechanisms;
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        let slots = m.slot_list(present != 0);
        // SAFETY: pointers as given by the caller, checked in write_list.
        unsafe { write_list(&slots, list, count) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    with_module(|m| {
        let (label, present) = m.slot_info(slot)?;
        // SAFETY: checked for null by `out`.
        let info = unsafe { out(info) }?;
        pad(
            &mut info.slotDescription,
            &format!("tpmkey TPM token {label}"),
        );
        pad(&mut info.manufacturerID, "tpmkey");
        info.flags = CKF_HW_SLOT | if present { CKF_TOKEN_PRESENT } else { 0 };
        info.hardwareVersion = CK_VERSION { major: 2, minor: 0 };
        info.firmwareVersion = library_version();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    with_module(|m| {
        let t = m.token_info(slot)?;
        // SAFETY: checked for null by `out`.
        let info = unsafe { out(info) }?;
        pad(&mut info.label, &t.label);
        pad(&mut info.manufacturerID, &t.manufacturer);
        pad(&mut info.model, &t.model);
        pad(&mut info.serialNumber, &t.serial);
        info.flags = t.flags;
        info.ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
        info.ulSessionCount = t.sessions.0 as CK_ULONG;
        info.ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
        info.ulRwSessionCount = t.sessions.1 as CK_ULONG;
        info.ulMaxPinLen = 1024;
        info.ulMinPinLen = 1;
        info.ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
        info.hardwareVersion = CK_VERSION { major: 2, minor: 0 };
        info.firmwareVersion = CK_VERSION {
            major: t.firmware.0,
            minor: t.firmware.1,
        };
        pad(&mut info.utcTime, "");
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.slot_info(slot)?;
        let mechs: Vec<CK_ULONG> = mechanisms::all();
        // SAFETY: pointers as given by the caller, checked in write_list.
        unsafe { write_list(&mechs, list, count) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    mech: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    with_module(|m| {
        m.slot_info(slot)?;
        // SAFETY: checked for null by `out`.
        let info = unsafe { out(info) }?;
        let (min, max, flags) = m.mechanism_info(mech)?;
        info.ulMinKeySize = min;
        info.ulMaxKeySize = max;
        info.flags = flags;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(
    h: CK_SESSION_HANDLE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: `len` bytes at `pin`, checked in `bytes`.
        let pin = unsafe { bytes(pin, len) }?;
        m.init_pin(h, pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    h: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: lengths and pointers checked in `bytes`.
        let (old, new) = unsafe { (bytes(old, old_len)?, bytes(new, new_len)?) };
        m.set_pin(h, old, new)
    })
}
