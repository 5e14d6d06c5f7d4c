//! Data objects (PKCS#11 2.40 Base §4.5): CKO_DATA with CKA_APPLICATION,
//! CKA_OBJECT_ID and CKA_VALUE, all modifiable. A private one (CKA_PRIVATE true)
//! is seen only after login, and a token one keeps its value encrypted in the
//! store ([`crate::crypto::at_rest`]).

use cryptoki_sys::*;
use x509_cert::der::Decode;
use zeroize::Zeroizing;

use super::objects::AttrValue;
use super::state::Rv;
use super::storage::{ordered, read_text, read_ulong, ulong, Phase, Storage, MAX_VALUE_LEN};

/// A data object.
#[derive(Clone, Debug)]
pub struct DataObject {
    /// The storage attributes.
    pub storage: Storage,
    /// CKA_APPLICATION.
    pub application: String,
    /// CKA_OBJECT_ID: a DER OBJECT IDENTIFIER, or empty.
    pub object_id: Vec<u8>,
    /// CKA_VALUE.
    pub value: Zeroizing<Vec<u8>>,
}

impl DataObject {
    /// An empty data object.
    pub fn new() -> DataObject {
        DataObject {
            storage: Storage::default(),
            application: String::new(),
            object_id: Vec::new(),
            value: Zeroizing::new(Vec::new()),
        }
    }

    /// C_CreateObject's template (CKA_CLASS CKO_DATA; CKA_TOKEN is the caller's).
    ///
    /// # Errors
    /// As [`DataObject::apply`].
    pub fn create(attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Result<DataObject, Rv> {
        let mut d = DataObject::new();
        d.apply(attrs, Phase::Create)?;
        Ok(d)
    }

    /// Applies a template (§5.7).
    ///
    /// # Errors
    /// CKR_ATTRIBUTE_VALUE_INVALID (a value over [`MAX_VALUE_LEN`] bytes, an
    /// object id that is no DER OID), CKR_ATTRIBUTE_TYPE_INVALID,
    /// CKR_TEMPLATE_INCONSISTENT (another class), CKR_ATTRIBUTE_READ_ONLY,
    /// CKR_ACTION_PROHIBITED (C_SetAttributeValue with CKA_MODIFIABLE false).
    pub fn apply(
        &mut self,
        attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        phase: Phase,
    ) -> Result<(), Rv> {
        if phase == Phase::Set && !self.storage.modifiable {
            return Err(CKR_ACTION_PROHIBITED);
        }
        for (t, v) in ordered(attrs) {
            if *t == CKA_TOKEN || self.storage.apply(*t, v, phase)? {
                continue;
            }
            match *t {
                CKA_APPLICATION => self.application = read_text(v)?,
                CKA_OBJECT_ID => {
                    if !v.is_empty() && x509_cert::der::oid::ObjectIdentifier::from_der(v).is_err()
                    {
                        return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                    }
                    self.object_id = v.clone();
                }
                CKA_VALUE if v.len() <= MAX_VALUE_LEN => self.value = Zeroizing::new(v.clone()),
                CKA_VALUE => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
                CKA_CLASS => {
                    if read_ulong(v)? != CKO_DATA {
                        return Err(if phase == Phase::Create {
                            CKR_TEMPLATE_INCONSISTENT
                        } else {
                            CKR_ATTRIBUTE_READ_ONLY
                        });
                    }
                }
                _ => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
            }
        }
        Ok(())
    }

    /// One attribute (C_GetAttributeValue); CKA_TOKEN is the object table's.
    pub fn attribute(&self, t: CK_ATTRIBUTE_TYPE) -> AttrValue {
        if let Some(v) = self.storage.attribute(t) {
            return v;
        }
        AttrValue::Value(match t {
            CKA_CLASS => ulong(CKO_DATA),
            CKA_APPLICATION => self.application.as_bytes().to_vec(),
            CKA_OBJECT_ID => self.object_id.clone(),
            CKA_VALUE => self.value.to_vec(),
            _ => return AttrValue::Invalid,
        })
    }

    /// The bytes it takes (C_GetObjectSize).
    pub fn size(&self) -> usize {
        self.value.len() + self.application.len() + self.object_id.len() + self.storage.label.len()
    }
}

impl Default for DataObject {
    fn default() -> Self {
        DataObject::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_objects_from_templates() {
        let d = DataObject::create(&[
            (CKA_CLASS, ulong(CKO_DATA)),
            (CKA_APPLICATION, b"app".to_vec()),
            (CKA_OBJECT_ID, vec![0x06, 0x03, 0x2a, 0x03, 0x04]),
            (CKA_VALUE, b"v".to_vec()),
            (CKA_PRIVATE, vec![1]),
        ])
        .unwrap();
        assert_eq!(d.attribute(CKA_VALUE), AttrValue::Value(b"v".to_vec()));
        assert_eq!(d.attribute(CKA_PRIVATE), AttrValue::Value(vec![1]));
        assert_eq!(d.attribute(CKA_SUBJECT), AttrValue::Invalid);
        let bad = |a: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>| DataObject::create(&a).map(|_| ());
        assert_eq!(
            bad(vec![(CKA_VALUE, vec![0; MAX_VALUE_LEN + 1])]),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
        assert_eq!(
            bad(vec![(CKA_OBJECT_ID, b"not an oid".to_vec())]),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
        assert_eq!(
            bad(vec![(CKA_CLASS, ulong(CKO_CERTIFICATE))]),
            Err(CKR_TEMPLATE_INCONSISTENT)
        );
        assert_eq!(
            bad(vec![(CKA_SUBJECT, vec![])]),
            Err(CKR_ATTRIBUTE_TYPE_INVALID)
        );
        let mut d = d;
        assert_eq!(d.apply(&[(CKA_VALUE, b"w".to_vec())], Phase::Set), Ok(()));
        assert_eq!(
            d.apply(&[(CKA_PRIVATE, vec![0])], Phase::Set),
            Err(CKR_ATTRIBUTE_READ_ONLY)
        );
    }
}
