//! Object management and search (PKCS#11 2.40 Base §5.7).

use super::{out, template, with_module};
use crate::pkcs11::objects::AttrValue;
use cryptoki_sys::*;

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    h: CK_SESSION_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        // SAFETY: `n` attributes at `attrs`, checked in `template`.
        let t = unsafe { template(attrs, n) }?;
        // SAFETY: checked for null by `out`.
        let object = unsafe { out(object) }?;
        *object = m.create_object(h, &t)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    new_object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        // SAFETY: `n` attributes at `attrs`, checked in `template`.
        let t = unsafe { template(attrs, n) }?;
        // SAFETY: checked for null by `out`.
        let new_object = unsafe { out(new_object) }?;
        *new_object = m.copy_object(h, object, &t)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        // SAFETY: `n` attributes at `attrs`, checked in `template`.
        let t = unsafe { template(attrs, n) }?;
        m.set_attributes(h, object, &t)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        // SAFETY: checked for null by `out`.
        let size = unsafe { out(size) }?;
        *size = m.object_size(h, object)? as CK_ULONG;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV {
    with_module(|m| m.destroy(h, object))
}

/// §5.7 C_GetAttributeValue: every attribute is processed; the return value is
/// the most serious problem met (sensitive, then invalid type, then too small).
#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        let n = usize::try_from(n).map_err(|_| CKR_ARGUMENTS_BAD)?;
        if attrs.is_null() && n > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let attrs: &mut [CK_ATTRIBUTE] = if n == 0 {
            &mut []
        } else {
            // SAFETY: `n` attributes at non-null `attrs`.
            unsafe { std::slice::from_raw_parts_mut(attrs, n) }
        };
        let (mut sensitive, mut invalid, mut small) = (false, false, false);
        for a in attrs.iter_mut() {
            match m.attribute(h, object, a.type_)? {
                AttrValue::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    sensitive = true;
                }
                AttrValue::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    invalid = true;
                }
                AttrValue::Value(v) => {
                    if a.pValue.is_null() {
                        a.ulValueLen = v.len() as CK_ULONG;
                    } else if (a.ulValueLen as usize) < v.len() {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        small = true;
                    } else {
                        // SAFETY: the caller's buffer holds ulValueLen >= len bytes.
                        unsafe {
                            std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len())
                        };
                        a.ulValueLen = v.len() as CK_ULONG;
                    }
                }
            }
        }
        if sensitive {
            Err(CKR_ATTRIBUTE_SENSITIVE)
        } else if invalid {
            Err(CKR_ATTRIBUTE_TYPE_INVALID)
        } else if small {
            Err(CKR_BUFFER_TOO_SMALL)
        } else {
            Ok(())
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    h: CK_SESSION_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: `n` attributes at `attrs`, checked in `template`.
        let t = unsafe { template(attrs, n) }?;
        m.find_init(h, &t)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    h: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.check_session(h)?;
        // SAFETY: checked for null by `out`.
        let count = unsafe { out(count) }?;
        if objects.is_null() && max > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let found = m.find_next(h, usize::try_from(max).unwrap_or(usize::MAX))?;
        if !found.is_empty() {
            // SAFETY: the caller's array (non-null: max > 0) holds `max` >= found.len() handles.
            unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), objects, found.len()) };
        }
        *count = found.len() as CK_ULONG;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| m.find_final(h))
}
