//! What every certificate and data object has (PKCS#11 2.40 Base §4.4 storage
//! objects, Table 18): CKA_PRIVATE, CKA_MODIFIABLE, CKA_COPYABLE,
//! CKA_DESTROYABLE, CKA_LABEL. CKA_TOKEN is the object table's: a token object
//! lives in the store, a session object in memory. Also the shared rules of
//! C_CreateObject, C_CopyObject and C_SetAttributeValue (§5.7) for them.

use cryptoki_sys::*;

use super::objects::AttrValue;
use super::state::Rv;
use crate::store::ObjectRecord;

/// The most bytes a value (CKA_VALUE of a certificate or data object) may have.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The most bytes of a label, an application name or an id.
pub const MAX_NAME_LEN: usize = 1024;

/// Which of the three calls applies a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// C_CreateObject: every attribute may be given.
    Create,
    /// C_CopyObject: what may be modified, plus CKA_TOKEN, CKA_PRIVATE, and the
    /// CKA_MODIFIABLE/COPYABLE/DESTROYABLE flags from true to false.
    Copy,
    /// C_SetAttributeValue: what may be modified, on a modifiable object.
    Set,
}

/// The storage attributes of a certificate or data object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    /// CKA_LABEL.
    pub label: String,
    /// CKA_PRIVATE: hidden until the user logs in; its value encrypted in the store.
    pub private: bool,
    /// CKA_MODIFIABLE.
    pub modifiable: bool,
    /// CKA_COPYABLE.
    pub copyable: bool,
    /// CKA_DESTROYABLE.
    pub destroyable: bool,
    /// The store record of a token object, as read or last written (None for a
    /// session object, or one not yet written).
    pub record: Option<ObjectRecord>,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            label: String::new(),
            private: false,
            modifiable: true,
            copyable: true,
            destroyable: true,
            record: None,
        }
    }
}

/// A CK_ULONG's bytes.
pub fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// A CK_BBOOL's byte.
pub fn bool_(v: bool) -> Vec<u8> {
    vec![u8::from(v)]
}

/// Reads a CK_BBOOL.
///
/// # Errors
/// CKR_ATTRIBUTE_VALUE_INVALID unless one byte.
pub fn read_bool(v: &[u8]) -> Result<bool, Rv> {
    match v {
        [b] => Ok(*b != 0),
        _ => Err(CKR_ATTRIBUTE_VALUE_INVALID),
    }
}

/// Reads a CK_ULONG.
///
/// # Errors
/// CKR_ATTRIBUTE_VALUE_INVALID unless a CK_ULONG.
pub fn read_ulong(v: &[u8]) -> Result<CK_ULONG, Rv> {
    v.try_into()
        .map(CK_ULONG::from_ne_bytes)
        .map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)
}

/// Reads an RFC 2279 (UTF-8) string of at most [`MAX_NAME_LEN`] bytes.
///
/// # Errors
/// CKR_ATTRIBUTE_VALUE_INVALID.
pub fn read_text(v: &[u8]) -> Result<String, Rv> {
    if v.len() > MAX_NAME_LEN {
        return Err(CKR_ATTRIBUTE_VALUE_INVALID);
    }
    String::from_utf8(v.to_vec()).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)
}

/// Checks a CK_DATE: empty or eight ASCII digits YYYYMMDD.
///
/// # Errors
/// CKR_ATTRIBUTE_VALUE_INVALID.
pub fn read_date(v: &[u8]) -> Result<Vec<u8>, Rv> {
    if v.is_empty() || (v.len() == 8 && v.iter().all(u8::is_ascii_digit)) {
        Ok(v.to_vec())
    } else {
        Err(CKR_ATTRIBUTE_VALUE_INVALID)
    }
}

/// A template's attributes with CKA_VALUE first (the attributes derived from a
/// certificate's value are checked against it) and vendor-defined ones left out
/// (NSS adds its own, which mean nothing here).
pub fn ordered(
    attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> impl Iterator<Item = &(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    let value = attrs.iter().filter(|(t, _)| *t == CKA_VALUE);
    let rest = attrs
        .iter()
        .filter(|(t, _)| *t != CKA_VALUE && *t < CKA_VENDOR_DEFINED);
    value.chain(rest)
}

impl Storage {
    /// CKA_PRIVATE, CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE, CKA_LABEL; None
    /// for other types.
    pub fn attribute(&self, t: CK_ATTRIBUTE_TYPE) -> Option<AttrValue> {
        let v = match t {
            CKA_PRIVATE => bool_(self.private),
            CKA_MODIFIABLE => bool_(self.modifiable),
            CKA_COPYABLE => bool_(self.copyable),
            CKA_DESTROYABLE => bool_(self.destroyable),
            CKA_LABEL => self.label.as_bytes().to_vec(),
            _ => return None,
        };
        Some(AttrValue::Value(v))
    }

    /// Applies one storage attribute; Ok(false) when `t` is not one (CKA_CLASS and
    /// CKA_TOKEN are the caller's).
    ///
    /// # Errors
    /// CKR_ATTRIBUTE_READ_ONLY (CKA_PRIVATE outside create and copy, a flag set
    /// back to true), CKR_ATTRIBUTE_VALUE_INVALID.
    pub fn apply(&mut self, t: CK_ATTRIBUTE_TYPE, v: &[u8], phase: Phase) -> Result<bool, Rv> {
        match t {
            CKA_LABEL => self.label = read_text(v)?,
            CKA_PRIVATE => {
                let p = read_bool(v)?;
                if phase == Phase::Set && p != self.private {
                    return Err(CKR_ATTRIBUTE_READ_ONLY);
                }
                self.private = p;
            }
            CKA_MODIFIABLE | CKA_COPYABLE | CKA_DESTROYABLE => {
                let new = read_bool(v)?;
                let flag = match t {
                    CKA_MODIFIABLE => &mut self.modifiable,
                    CKA_COPYABLE => &mut self.copyable,
                    _ => &mut self.destroyable,
                };
                // Set: read-only; copy: only from true to false (§4.4 Table 18).
                let allowed = match phase {
                    Phase::Create => true,
                    Phase::Copy => !new || *flag,
                    Phase::Set => new == *flag,
                };
                if !allowed {
                    return Err(CKR_ATTRIBUTE_READ_ONLY);
                }
                *flag = new;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_only_go_from_true_to_false_in_a_copy() {
        let mut s = Storage::default();
        assert_eq!(s.apply(CKA_MODIFIABLE, &[0], Phase::Copy), Ok(true));
        assert_eq!(
            s.apply(CKA_MODIFIABLE, &[1], Phase::Copy),
            Err(CKR_ATTRIBUTE_READ_ONLY)
        );
        assert_eq!(
            s.apply(CKA_PRIVATE, &[1], Phase::Set),
            Err(CKR_ATTRIBUTE_READ_ONLY)
        );
        assert_eq!(s.apply(CKA_PRIVATE, &[1], Phase::Copy), Ok(true));
        assert_eq!(
            s.apply(CKA_LABEL, &[0xff], Phase::Set),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
        assert_eq!(s.apply(CKA_ID, b"x", Phase::Set), Ok(false));
        assert_eq!(read_date(b"20260131"), Ok(b"20260131".to_vec()));
        assert!(read_date(b"2026-1-1").is_err());
    }
}
