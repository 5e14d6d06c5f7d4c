//! X.509 certificate objects (PKCS#11 2.40 Base §4.6 certificate objects, §4.6.3
//! X.509 public key certificates): CKO_CERTIFICATE, CKC_X_509. The DER value is
//! parsed once; CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER, CKA_CHECK_VALUE and
//! CKA_PUBLIC_KEY_INFO come from it, and a template that gives them otherwise is
//! inconsistent. What may change later: CKA_LABEL, CKA_ID, CKA_START_DATE,
//! CKA_END_DATE, and CKA_TRUSTED by the security officer.

use cryptoki_sys::*;

use super::objects::AttrValue;
use super::state::Rv;
use super::storage::{
    bool_, ordered, read_bool, read_date, read_ulong, ulong, Phase, Storage, MAX_NAME_LEN,
};
use crate::x509::{inspect, CertInfo, MAX_CERT_LEN};

/// A certificate object.
#[derive(Clone, Debug)]
pub struct CertObject {
    /// The storage attributes.
    pub storage: Storage,
    /// CKA_ID.
    pub id: Vec<u8>,
    /// CKA_VALUE: the DER certificate.
    pub value: Vec<u8>,
    /// What the DER says.
    pub info: CertInfo,
    /// CKA_TRUSTED.
    pub trusted: bool,
    /// CKA_CERTIFICATE_CATEGORY.
    pub category: CK_ULONG,
    /// CKA_START_DATE (CK_DATE or empty).
    pub start: Vec<u8>,
    /// CKA_END_DATE.
    pub end: Vec<u8>,
}

/// Reads a certificate value.
///
/// # Errors
/// CKR_ATTRIBUTE_VALUE_INVALID for anything but one DER X.509 certificate of at
/// most [`MAX_CERT_LEN`] bytes.
fn parse_value(v: &[u8]) -> Result<CertInfo, Rv> {
    if v.len() > MAX_CERT_LEN {
        return Err(CKR_ATTRIBUTE_VALUE_INVALID);
    }
    inspect(v).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)
}

impl CertObject {
    /// A certificate from its DER value, with default attributes.
    ///
    /// # Errors
    /// CKR_ATTRIBUTE_VALUE_INVALID for anything but one DER X.509 certificate of
    /// at most [`MAX_CERT_LEN`] bytes.
    pub fn from_der(value: Vec<u8>) -> Result<CertObject, Rv> {
        let info = parse_value(&value)?;
        Ok(CertObject {
            storage: Storage::default(),
            id: Vec::new(),
            value,
            info,
            trusted: false,
            category: CK_CERTIFICATE_CATEGORY_UNSPECIFIED,
            start: Vec::new(),
            end: Vec::new(),
        })
    }

    /// C_CreateObject's template (CKA_CLASS CKO_CERTIFICATE; CKA_TOKEN is the
    /// caller's). `so`: the security officer is logged in (may set CKA_TRUSTED).
    ///
    /// # Errors
    /// CKR_TEMPLATE_INCOMPLETE (no CKA_CERTIFICATE_TYPE or CKA_VALUE),
    /// CKR_TEMPLATE_INCONSISTENT (CKA_SUBJECT, … that the value contradicts),
    /// CKR_ATTRIBUTE_VALUE_INVALID, CKR_ATTRIBUTE_TYPE_INVALID,
    /// CKR_ATTRIBUTE_READ_ONLY (CKA_TRUSTED true, not the SO).
    pub fn create(attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)], so: bool) -> Result<CertObject, Rv> {
        let get = |t| attrs.iter().find(|(x, _)| *x == t).map(|(_, v)| v);
        if get(CKA_CERTIFICATE_TYPE).is_none() {
            return Err(CKR_TEMPLATE_INCOMPLETE);
        }
        let value = get(CKA_VALUE).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
        let mut c = CertObject::from_der(value.clone())?;
        c.apply(attrs, Phase::Create, so)?;
        Ok(c)
    }

    /// Applies a template (§5.7: C_CreateObject, C_CopyObject, C_SetAttributeValue).
    ///
    /// # Errors
    /// As [`CertObject::create`]; CKR_ATTRIBUTE_READ_ONLY for an attribute that
    /// may not change, CKR_ACTION_PROHIBITED for a C_SetAttributeValue on an
    /// object with CKA_MODIFIABLE false.
    pub fn apply(
        &mut self,
        attrs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        phase: Phase,
        so: bool,
    ) -> Result<(), Rv> {
        if phase == Phase::Set && !self.storage.modifiable {
            return Err(CKR_ACTION_PROHIBITED);
        }
        for (t, v) in ordered(attrs) {
            self.apply_one(*t, v, phase, so)?;
        }
        Ok(())
    }

    fn apply_one(
        &mut self,
        t: CK_ATTRIBUTE_TYPE,
        v: &[u8],
        phase: Phase,
        so: bool,
    ) -> Result<(), Rv> {
        if t == CKA_TOKEN || self.storage.apply(t, v, phase)? {
            return Ok(());
        }
        match t {
            CKA_ID if v.len() <= MAX_NAME_LEN => self.id = v.to_vec(),
            CKA_ID => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
            CKA_START_DATE => self.start = read_date(v)?,
            CKA_END_DATE => self.end = read_date(v)?,
            CKA_TRUSTED => {
                let trusted = read_bool(v)?;
                // §4.6.1: only the SO (or the token's own tools) makes a
                // certificate trusted.
                if trusted && !so && !self.trusted {
                    return Err(CKR_ATTRIBUTE_READ_ONLY);
                }
                self.trusted = trusted;
            }
            CKA_CERTIFICATE_CATEGORY if phase == Phase::Create => {
                let c = read_ulong(v)?;
                if c > CK_CERTIFICATE_CATEGORY_OTHER_ENTITY {
                    return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                }
                self.category = c;
            }
            CKA_CLASS if phase == Phase::Create => {
                if read_ulong(v)? != CKO_CERTIFICATE {
                    return Err(CKR_TEMPLATE_INCONSISTENT);
                }
            }
            CKA_CERTIFICATE_TYPE if phase == Phase::Create => {
                if read_ulong(v)? != CKC_X_509 {
                    return Err(CKR_ATTRIBUTE_VALUE_INVALID);
                }
            }
            _ => match self.attribute(t) {
                // What the value fixes (or what may not change) may be restated.
                AttrValue::Value(same) if same == v => {}
                AttrValue::Value(_) if phase == Phase::Create => {
                    return Err(CKR_TEMPLATE_INCONSISTENT)
                }
                AttrValue::Value(_) => return Err(CKR_ATTRIBUTE_READ_ONLY),
                _ => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
            },
        }
        Ok(())
    }

    /// One attribute (C_GetAttributeValue); CKA_CLASS and CKA_TOKEN are the
    /// object table's.
    pub fn attribute(&self, t: CK_ATTRIBUTE_TYPE) -> AttrValue {
        if let Some(v) = self.storage.attribute(t) {
            return v;
        }
        let v = match t {
            CKA_CLASS => ulong(CKO_CERTIFICATE),
            CKA_CERTIFICATE_TYPE => ulong(CKC_X_509),
            CKA_TRUSTED => bool_(self.trusted),
            CKA_CERTIFICATE_CATEGORY => ulong(self.category),
            CKA_CHECK_VALUE => {
                crate::crypto::hash::HashAlg::Sha1.hash(&[&self.value])[..3].to_vec()
            }
            CKA_START_DATE => self.start.clone(),
            CKA_END_DATE => self.end.clone(),
            CKA_PUBLIC_KEY_INFO => self.info.spki.clone(),
            CKA_SUBJECT => self.info.subject.clone(),
            CKA_ISSUER => self.info.issuer.clone(),
            CKA_SERIAL_NUMBER => self.info.serial.clone(),
            CKA_ID => self.id.clone(),
            CKA_VALUE => self.value.clone(),
            CKA_URL | CKA_HASH_OF_SUBJECT_PUBLIC_KEY | CKA_HASH_OF_ISSUER_PUBLIC_KEY => Vec::new(),
            CKA_JAVA_MIDP_SECURITY_DOMAIN => ulong(0),
            CKA_NAME_HASH_ALGORITHM => ulong(CKM_SHA_1),
            _ => return AttrValue::Invalid,
        };
        AttrValue::Value(v)
    }

    /// The bytes it takes (C_GetObjectSize).
    pub fn size(&self) -> usize {
        self.value.len() + self.id.len() + self.storage.label.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 certificate (made with `openssl req -x509`, CN=unit).
    fn der() -> Vec<u8> {
        let pem = "-----BEGIN CERTIFICATE-----
MIIBdDCCARmgAwIBAgIUZ0kpMBFyMLxMn3+Ki/kw8Vix86gwCgYIKoZIzj0EAwIw
DzENMAsGA1UEAwwEdW5pdDAeFw0yNjEyMDMxMjUyNTZaFw0zNjExMzAxMjUyNTZa
MA8xDTALBgNVBAMMBHVuaXQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAScoGmw
NONQQFAotUjbvnxc34TvOeJ76PZc4hrXMTTBrQJz/+su7i+Hl7wQoETGptPPAdPG
V0Btg5UXbxOwK0qMo1MwUTAdBgNVHQ4EFgQURsqW3hzyHRclHHxRtvzRk73JMOUw
HwYDVR0jBBgwFoAURsqW3hzyHRclHHxRtvzRk73JMOUwDwYDVR0TAQH/BAUwAwEB
/zAKBggqhkjOPQQDAgNJADBGAiEAgC5peBmjURI/3NDJW9Tma2SQtYwA5Ppx7oAJ
tuwFPrECIQCxxLB+OifZ83SVU5/GjXeTbRmgHZcf35KrcI+2M9wNhg==
-----END CERTIFICATE-----
";
        crate::x509::parse_certificates(pem.as_bytes())
            .unwrap()
            .remove(0)
    }

    fn attrs(extra: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
        let mut v = vec![
            (CKA_CLASS, ulong(CKO_CERTIFICATE)),
            (CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)),
            (CKA_VALUE, der()),
        ];
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn created_from_a_template_and_derived_attributes_agree() {
        let d = der();
        let info = inspect(&d).unwrap();
        let c = CertObject::create(
            &attrs(&[
                (CKA_SUBJECT, info.subject.clone()),
                (CKA_LABEL, b"unit".to_vec()),
                (CKA_ID, vec![1, 2]),
                (0x8000_0000 | 0xce53_4352, b"nss".to_vec()),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(c.attribute(CKA_SUBJECT), AttrValue::Value(info.subject));
        assert_eq!(c.attribute(CKA_LABEL), AttrValue::Value(b"unit".to_vec()));
        assert_eq!(c.attribute(CKA_PRIVATE), AttrValue::Value(vec![0]));
        assert_eq!(c.attribute(CKA_CHECK_VALUE), {
            let h = crate::crypto::hash::HashAlg::Sha1.hash(&[&d]);
            AttrValue::Value(h[..3].to_vec())
        });
        assert_eq!(c.attribute(CKA_KEY_TYPE), AttrValue::Invalid);
    }

    #[test]
    fn bad_templates_get_the_spec_return_values() {
        let create = |extra: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]| {
            CertObject::create(&attrs(extra), false).map(|_| ())
        };
        assert_eq!(
            create(&[(CKA_SUBJECT, vec![0x30, 0])]),
            Err(CKR_TEMPLATE_INCONSISTENT)
        );
        assert_eq!(
            create(&[(CKA_TRUSTED, vec![1])]),
            Err(CKR_ATTRIBUTE_READ_ONLY)
        );
        assert_eq!(
            create(&[(CKA_KEY_TYPE, ulong(CKK_EC))]),
            Err(CKR_ATTRIBUTE_TYPE_INVALID)
        );
        assert_eq!(
            create(&[(CKA_START_DATE, b"soon".to_vec())]),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
        assert_eq!(
            CertObject::create(&[(CKA_CERTIFICATE_TYPE, ulong(CKC_X_509))], false).map(|_| ()),
            Err(CKR_TEMPLATE_INCOMPLETE)
        );
        let mut truncated = attrs(&[]);
        truncated[2].1.truncate(100);
        assert_eq!(
            CertObject::create(&truncated, false).map(|_| ()),
            Err(CKR_ATTRIBUTE_VALUE_INVALID)
        );
        assert!(CertObject::create(&attrs(&[(CKA_TRUSTED, vec![1])]), true).is_ok());
    }

    #[test]
    fn only_what_may_change_changes() {
        let mut c = CertObject::create(&attrs(&[]), false).unwrap();
        let set = |c: &mut CertObject, t, v: Vec<u8>| c.apply(&[(t, v)], Phase::Set, false);
        assert_eq!(set(&mut c, CKA_LABEL, b"new".to_vec()), Ok(()));
        assert_eq!(set(&mut c, CKA_ID, vec![9]), Ok(()));
        assert_eq!(
            set(&mut c, CKA_VALUE, vec![0x30, 0]),
            Err(CKR_ATTRIBUTE_READ_ONLY)
        );
        let same = c.value.clone();
        assert_eq!(set(&mut c, CKA_VALUE, same), Ok(()));
        assert_eq!(
            set(&mut c, CKA_CERTIFICATE_CATEGORY, ulong(2)),
            Err(CKR_ATTRIBUTE_READ_ONLY)
        );
        c.storage.modifiable = false;
        assert_eq!(
            set(&mut c, CKA_LABEL, b"x".to_vec()),
            Err(CKR_ACTION_PROHIBITED)
        );
    }
}
