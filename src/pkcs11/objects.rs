//! The objects a key shows (PKCS#11 2.40 Base §4.8 private keys, §4.7 public keys,
//! Current Mechanisms §2.3.3 EC and §2.1.2 RSA attributes): a CKO_PRIVATE_KEY that
//! never leaves the TPM, and a CKO_PUBLIC_KEY. What they may do (CKA_SIGN,
//! CKA_DECRYPT, CKA_DERIVE; CKA_VERIFY, CKA_ENCRYPT) follows the TPM object's
//! `sign` and `decrypt` attributes. All of it comes from the store's public data:
//! listing needs no TPM command.

use cryptoki_sys::*;
use tpm_commands::constants::TpmEccCurve;
use tpm_commands::structures::{PublicParams, TpmtPublic};

use crate::keys::sshpub::{ec_point, rsa_parts};
use crate::keys::templates::{KeyAlgorithm, KeyUsage};

/// CKA_EC_PARAMS of P-256: the DER OID 1.2.840.10045.3.1.7 (namedCurve).
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// CKA_EC_PARAMS of P-384: the DER OID 1.3.132.0.34.
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The answer for one attribute of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    /// The value's bytes.
    Value(Vec<u8>),
    /// CKR_ATTRIBUTE_SENSITIVE: exists but may not be revealed.
    Sensitive,
    /// CKR_ATTRIBUTE_TYPE_INVALID: not an attribute of this object.
    Invalid,
}

/// Which of a key's two objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// CKO_PRIVATE_KEY.
    Private,
    /// CKO_PUBLIC_KEY.
    Public,
}

/// What an object shows, independent of the TPM.
#[derive(Clone, Debug)]
pub struct KeyView {
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID.
    pub id: Vec<u8>,
    /// The algorithm.
    pub alg: KeyAlgorithm,
    /// The public area.
    pub public: TpmtPublic,
    /// Imported rather than generated in the TPM.
    pub imported: bool,
    /// The private object is CKA_PRIVATE (hidden until login): PIN tokens.
    pub private_needs_login: bool,
}

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn bool_(v: bool) -> Vec<u8> {
    vec![u8::from(v)]
}

/// DER OCTET STRING around `content` (CKA_EC_POINT, as OpenSSH and the spec expect).
pub fn der_octet_string(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

impl KeyView {
    /// CKK_EC or CKK_RSA.
    pub fn key_type(&self) -> CK_KEY_TYPE {
        match self.alg {
            KeyAlgorithm::Ecc256 | KeyAlgorithm::Ecc384 => CKK_EC,
            _ => CKK_RSA,
        }
    }

    /// What the key may do: its public area's `sign` and `decrypt` attributes.
    pub fn usage(&self) -> KeyUsage {
        KeyUsage::of(self.public.object_attributes)
    }

    /// The RSA modulus length in bytes (0 for EC keys).
    pub fn modulus_len(&self) -> usize {
        match &self.public.params {
            PublicParams::Rsa { unique, .. } => unique.as_bytes().len(),
            _ => 0,
        }
    }

    fn ec_params(&self) -> Option<&'static [u8]> {
        match &self.public.params {
            PublicParams::Ecc { parms, .. } => match parms.curve_id {
                TpmEccCurve::NIST_P256 => Some(P256_PARAMS),
                TpmEccCurve::NIST_P384 => Some(P384_PARAMS),
                _ => None,
            },
            _ => None,
        }
    }

    /// One attribute of the private or public object.
    pub fn attribute(&self, class: Class, t: CK_ATTRIBUTE_TYPE) -> AttrValue {
        use AttrValue::{Invalid, Sensitive, Value};
        let private = class == Class::Private;
        let ec = self.key_type() == CKK_EC;
        let generated = !self.imported;
        let usage = self.usage();
        let v = match t {
            CKA_CLASS => ulong(if private {
                CKO_PRIVATE_KEY
            } else {
                CKO_PUBLIC_KEY
            }),
            CKA_TOKEN => bool_(true),
            CKA_PRIVATE => bool_(private && self.private_needs_login),
            CKA_MODIFIABLE | CKA_COPYABLE => bool_(false),
            // ECDH (Current Mechanisms §2.3.17); shown on the public half as
            // pkcs11-tool asks for it there too, though only the private one derives.
            CKA_DERIVE => bool_(ec && usage.decrypt),
            CKA_DESTROYABLE => bool_(true),
            CKA_LABEL => self.label.as_bytes().to_vec(),
            CKA_ID => self.id.clone(),
            CKA_KEY_TYPE => ulong(self.key_type()),
            CKA_LOCAL => bool_(generated),
            CKA_KEY_GEN_MECHANISM => {
                if generated {
                    ulong(if ec {
                        CKM_EC_KEY_PAIR_GEN
                    } else {
                        CKM_RSA_PKCS_KEY_PAIR_GEN
                    })
                } else {
                    ulong(CK_UNAVAILABLE_INFORMATION)
                }
            }
            CKA_START_DATE | CKA_END_DATE => Vec::new(),
            CKA_EC_PARAMS if ec => match self.ec_params() {
                Some(p) => p.to_vec(),
                None => return Invalid,
            },
            CKA_EC_POINT if ec => match ec_point(&self.public) {
                Ok(p) => der_octet_string(&p),
                Err(_) => return Invalid,
            },
            CKA_MODULUS if !ec => match rsa_parts(&self.public) {
                Ok((n, _)) => n,
                Err(_) => return Invalid,
            },
            CKA_PUBLIC_EXPONENT if !ec => match rsa_parts(&self.public) {
                Ok((_, e)) => e,
                Err(_) => return Invalid,
            },
            CKA_MODULUS_BITS if !ec && !private => ulong((self.modulus_len() * 8) as CK_ULONG),
            // Private key attributes (§4.9).
            CKA_SIGN if private => bool_(usage.sign),
            CKA_DECRYPT if private => bool_(!ec && usage.decrypt),
            CKA_SIGN_RECOVER | CKA_UNWRAP if private => bool_(false),
            CKA_SENSITIVE | CKA_ALWAYS_SENSITIVE | CKA_NEVER_EXTRACTABLE if private => {
                bool_(t == CKA_SENSITIVE || generated)
            }
            CKA_EXTRACTABLE | CKA_ALWAYS_AUTHENTICATE | CKA_WRAP_WITH_TRUSTED if private => {
                bool_(false)
            }
            CKA_VALUE | CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1
            | CKA_EXPONENT_2 | CKA_COEFFICIENT
                if private =>
            {
                return Sensitive
            }
            // Public key attributes (§4.8).
            CKA_VERIFY if !private => bool_(usage.sign),
            CKA_ENCRYPT if !private => bool_(!ec && usage.decrypt),
            CKA_VERIFY_RECOVER | CKA_WRAP | CKA_TRUSTED if !private => bool_(false),
            _ => return Invalid,
        };
        Value(v)
    }

    /// True when every attribute of `template` has exactly the given value
    /// (C_FindObjectsInit matching, §5.7).
    pub fn matches(&self, class: Class, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template
            .iter()
            .all(|(t, want)| matches!(self.attribute(class, *t), AttrValue::Value(v) if &v == want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::templates::signing_template;
    use tpm_commands::buffers::Tpm2bEccParameter;
    use tpm_commands::structures::TpmsEccPoint;

    fn p256_view() -> KeyView {
        let mut public = signing_template(KeyAlgorithm::Ecc256, false);
        if let PublicParams::Ecc { unique, .. } = &mut public.params {
            *unique = TpmsEccPoint {
                x: Tpm2bEccParameter::new(vec![1; 32]).unwrap(),
                y: Tpm2bEccParameter::new(vec![2; 32]).unwrap(),
            };
        }
        KeyView {
            label: "ssh".into(),
            id: vec![0xaa, 0xbb],
            alg: KeyAlgorithm::Ecc256,
            public,
            imported: false,
            private_needs_login: true,
        }
    }

    #[test]
    fn ec_point_is_a_der_octet_string() {
        let v = p256_view();
        let AttrValue::Value(p) = v.attribute(Class::Public, CKA_EC_POINT) else {
            panic!()
        };
        assert_eq!(&p[..3], &[0x04, 65, 0x04]);
        assert_eq!(p.len(), 67);
        assert_eq!(
            v.attribute(Class::Public, CKA_EC_PARAMS),
            AttrValue::Value(P256_PARAMS.to_vec())
        );
    }

    #[test]
    fn long_octet_strings_use_long_form_lengths() {
        assert_eq!(&der_octet_string(&[0; 97])[..2], &[0x04, 97]);
        assert_eq!(&der_octet_string(&[0; 133])[..3], &[0x04, 0x81, 133]);
        assert_eq!(&der_octet_string(&[0; 513])[..4], &[0x04, 0x82, 0x02, 0x01]);
    }

    #[test]
    fn private_key_is_sensitive_and_signs() {
        let v = p256_view();
        assert_eq!(
            v.attribute(Class::Private, CKA_SIGN),
            AttrValue::Value(vec![1])
        );
        assert_eq!(
            v.attribute(Class::Private, CKA_EXTRACTABLE),
            AttrValue::Value(vec![0])
        );
        assert_eq!(
            v.attribute(Class::Private, CKA_ALWAYS_AUTHENTICATE),
            AttrValue::Value(vec![0])
        );
        assert_eq!(
            v.attribute(Class::Private, CKA_PRIVATE),
            AttrValue::Value(vec![1])
        );
        assert_eq!(v.attribute(Class::Private, CKA_VALUE), AttrValue::Sensitive);
        assert_eq!(v.attribute(Class::Public, CKA_VALUE), AttrValue::Invalid);
        assert_eq!(v.attribute(Class::Public, CKA_SIGN), AttrValue::Invalid);
        assert_eq!(
            v.attribute(Class::Public, CKA_PRIVATE),
            AttrValue::Value(vec![0])
        );
    }

    #[test]
    fn find_templates_match_exact_values() {
        let v = p256_view();
        let class = |c: CK_OBJECT_CLASS| (CKA_CLASS, c.to_ne_bytes().to_vec());
        assert!(v.matches(Class::Private, &[class(CKO_PRIVATE_KEY)]));
        assert!(!v.matches(Class::Public, &[class(CKO_PRIVATE_KEY)]));
        assert!(v.matches(
            Class::Private,
            &[
                class(CKO_PRIVATE_KEY),
                (CKA_ID, vec![0xaa, 0xbb]),
                (CKA_SIGN, vec![1])
            ]
        ));
        assert!(!v.matches(Class::Private, &[(CKA_ID, vec![0xaa])]));
        assert!(!v.matches(Class::Public, &[(CKA_SIGN, vec![1])]));
        assert!(v.matches(Class::Public, &[]));
    }

    #[test]
    fn usage_follows_the_tpm_attributes() {
        use crate::keys::templates::key_template;
        let mut v = p256_view();
        let yes = AttrValue::Value(vec![1]);
        let no = AttrValue::Value(vec![0]);
        assert_eq!(v.attribute(Class::Private, CKA_DERIVE), no);
        assert_eq!(v.attribute(Class::Private, CKA_DECRYPT), no);
        v.public.object_attributes =
            key_template(KeyAlgorithm::Ecc256, KeyUsage::DECRYPT, false).object_attributes;
        assert_eq!(v.attribute(Class::Private, CKA_DERIVE), yes);
        assert_eq!(v.attribute(Class::Private, CKA_SIGN), no);
        assert_eq!(v.attribute(Class::Public, CKA_VERIFY), no);
        // EC keys never decrypt or encrypt in PKCS#11: ECDH is derivation.
        assert_eq!(v.attribute(Class::Private, CKA_DECRYPT), no);
        assert_eq!(v.attribute(Class::Public, CKA_ENCRYPT), no);
        let mut r = p256_view();
        r.alg = KeyAlgorithm::Rsa2048;
        r.public = key_template(KeyAlgorithm::Rsa2048, KeyUsage::SIGN_DECRYPT, false);
        assert_eq!(r.attribute(Class::Private, CKA_DECRYPT), yes);
        assert_eq!(r.attribute(Class::Private, CKA_SIGN), yes);
        assert_eq!(r.attribute(Class::Public, CKA_ENCRYPT), yes);
        assert_eq!(r.attribute(Class::Private, CKA_DERIVE), no);
    }
}
