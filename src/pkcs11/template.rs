//! Reading the attribute templates that C_CreateObject, C_GenerateKeyPair,
//! C_DeriveKey, C_CopyObject and C_SetAttributeValue receive (PKCS#11 2.40 Base
//! §4.1.2 attribute types, §5.7 template rules): typed getters whose errors are
//! the return values the spec asks for.

use cryptoki_sys::*;

use super::state::Rv;

/// One template: (type, value) pairs as the caller gave them.
#[derive(Clone, Copy, Debug)]
pub struct Template<'a> {
    attrs: &'a [(CK_ATTRIBUTE_TYPE, Vec<u8>)],
}

impl<'a> Template<'a> {
    /// A template over the caller's attributes.
    ///
    /// # Errors
    /// CKR_TEMPLATE_INCONSISTENT when one type is given twice with different
    /// values (§4.1: a template holds each attribute once).
    pub fn new(attrs: &'a [(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Result<Self, Rv> {
        for (i, (t, v)) in attrs.iter().enumerate() {
            if attrs[..i].iter().any(|(u, w)| u == t && w != v) {
                return Err(CKR_TEMPLATE_INCONSISTENT);
            }
        }
        Ok(Template { attrs })
    }

    /// The attributes, in the caller's order.
    pub fn attrs(&self) -> &'a [(CK_ATTRIBUTE_TYPE, Vec<u8>)] {
        self.attrs
    }

    /// True when the template names `t`.
    pub fn has(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        self.attrs.iter().any(|(x, _)| *x == t)
    }

    /// The raw value of `t`.
    pub fn bytes(&self, t: CK_ATTRIBUTE_TYPE) -> Option<&'a [u8]> {
        self.attrs
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, v)| v.as_slice())
    }

    /// A CK_BBOOL attribute.
    ///
    /// # Errors
    /// CKR_ATTRIBUTE_VALUE_INVALID unless the value is one byte.
    pub fn bool(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>, Rv> {
        match self.bytes(t) {
            None => Ok(None),
            Some([b]) => Ok(Some(*b != 0)),
            Some(_) => Err(CKR_ATTRIBUTE_VALUE_INVALID),
        }
    }

    /// A CK_ULONG attribute (CKA_CLASS, CKA_KEY_TYPE, CKA_MODULUS_BITS, …).
    ///
    /// # Errors
    /// CKR_ATTRIBUTE_VALUE_INVALID unless the value is a CK_ULONG.
    pub fn ulong(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>, Rv> {
        self.bytes(t)
            .map(|v| {
                v.try_into()
                    .map(CK_ULONG::from_ne_bytes)
                    .map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)
            })
            .transpose()
    }

    /// A UTF-8 text attribute (CKA_LABEL, CKA_APPLICATION).
    ///
    /// # Errors
    /// CKR_ATTRIBUTE_VALUE_INVALID when the value is not UTF-8.
    pub fn text(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<String>, Rv> {
        self.bytes(t)
            .map(|v| String::from_utf8(v.to_vec()).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID))
            .transpose()
    }

    /// Checks that a boolean attribute, when given, has the one value this
    /// module can honour.
    ///
    /// # Errors
    /// CKR_TEMPLATE_INCONSISTENT when it asks for the other value,
    /// CKR_ATTRIBUTE_VALUE_INVALID when it is not a CK_BBOOL.
    pub fn require_bool(&self, t: CK_ATTRIBUTE_TYPE, want: bool) -> Result<(), Rv> {
        match self.bool(t)? {
            Some(v) if v != want => Err(CKR_TEMPLATE_INCONSISTENT),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulong(v: CK_ULONG) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn typed_getters_check_sizes() {
        let attrs = vec![
            (CKA_TOKEN, vec![1]),
            (CKA_PRIVATE, vec![0, 0]),
            (CKA_CLASS, ulong(CKO_CERTIFICATE)),
            (CKA_MODULUS_BITS, vec![1, 2, 3]),
            (CKA_LABEL, b"ssh".to_vec()),
            (CKA_APPLICATION, vec![0xff]),
        ];
        let t = Template::new(&attrs).unwrap();
        assert_eq!(t.bool(CKA_TOKEN), Ok(Some(true)));
        assert_eq!(t.bool(CKA_SENSITIVE), Ok(None));
        assert_eq!(t.bool(CKA_PRIVATE), Err(CKR_ATTRIBUTE_VALUE_INVALID));
        assert_eq!(t.ulong(CKA_CLASS), Ok(Some(CKO_CERTIFICATE)));
        assert_eq!(t.ulong(CKA_MODULUS_BITS), Err(CKR_ATTRIBUTE_VALUE_INVALID));
        assert_eq!(t.text(CKA_LABEL), Ok(Some("ssh".into())));
        assert_eq!(t.text(CKA_APPLICATION), Err(CKR_ATTRIBUTE_VALUE_INVALID));
        assert!(t.has(CKA_LABEL) && !t.has(CKA_ID));
        assert_eq!(t.require_bool(CKA_TOKEN, true), Ok(()));
        assert_eq!(
            t.require_bool(CKA_TOKEN, false),
            Err(CKR_TEMPLATE_INCONSISTENT)
        );
        assert_eq!(t.require_bool(CKA_EXTRACTABLE, false), Ok(()));
    }

    #[test]
    fn one_attribute_twice_must_agree() {
        let same = vec![(CKA_TOKEN, vec![1]), (CKA_TOKEN, vec![1])];
        assert!(Template::new(&same).is_ok());
        let differ = vec![(CKA_TOKEN, vec![1]), (CKA_TOKEN, vec![0])];
        assert_eq!(
            Template::new(&differ).map(|_| ()),
            Err(CKR_TEMPLATE_INCONSISTENT)
        );
    }
}
