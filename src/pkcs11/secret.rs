//! Secret key objects made by C_DeriveKey (PKCS#11 2.40 Base §4.10 secret key
//! objects, Current Mechanisms §2.8 generic secret keys): always session objects
//! (the store holds only TPM-wrapped blobs, so a secret never goes to disk), of
//! type CKK_GENERIC_SECRET, whose CKA_VALUE can be read when the template made
//! it neither sensitive nor unextractable.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::objects::AttrValue;
use super::state::Rv;
use super::template::Template;

/// What the template of C_DeriveKey asked for (all but the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSpec {
    /// CKA_VALUE_LEN, when given.
    pub value_len: Option<usize>,
    /// CKA_LABEL.
    pub label: Vec<u8>,
    /// CKA_ID.
    pub id: Vec<u8>,
    /// CKA_PRIVATE: seen only after login.
    pub private: bool,
    /// CKA_SENSITIVE: CKA_VALUE is never revealed.
    pub sensitive: bool,
    /// CKA_EXTRACTABLE.
    pub extractable: bool,
    /// CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP,
    /// CKA_DERIVE as the template set them (the module offers no mechanism that
    /// uses a generic secret; they are kept and shown, as §4.10 asks).
    pub uses: [(CK_ATTRIBUTE_TYPE, bool); 7],
    /// CKA_START_DATE and CKA_END_DATE (empty or a CK_DATE).
    pub dates: (Vec<u8>, Vec<u8>),
    /// CKA_ALLOWED_MECHANISMS as given.
    pub allowed: Option<Vec<u8>>,
}

const USES: [CK_ATTRIBUTE_TYPE; 7] = [
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_DERIVE,
];

impl SecretSpec {
    /// Reads C_DeriveKey's template. `private_default` is CKA_PRIVATE when the
    /// template does not say (true on tokens with a PIN).
    ///
    /// # Errors
    /// CKR_TEMPLATE_INCONSISTENT (another class or key type, a token object, a
    /// value this module cannot honour), CKR_ATTRIBUTE_READ_ONLY (CKA_VALUE and
    /// the attributes the token sets), CKR_ATTRIBUTE_VALUE_INVALID,
    /// CKR_ATTRIBUTE_TYPE_INVALID (an attribute secret keys do not have).
    pub fn parse(t: &Template<'_>, private_default: bool) -> Result<SecretSpec, Rv> {
        for (a, _) in t.attrs() {
            match *a {
                CKA_CLASS
                | CKA_KEY_TYPE
                | CKA_TOKEN
                | CKA_PRIVATE
                | CKA_LABEL
                | CKA_ID
                | CKA_VALUE_LEN
                | CKA_SENSITIVE
                | CKA_EXTRACTABLE
                | CKA_MODIFIABLE
                | CKA_COPYABLE
                | CKA_DESTROYABLE
                | CKA_START_DATE
                | CKA_END_DATE
                | CKA_ALLOWED_MECHANISMS => {}
                x if USES.contains(&x) => {}
                CKA_VALUE
                | CKA_LOCAL
                | CKA_ALWAYS_SENSITIVE
                | CKA_NEVER_EXTRACTABLE
                | CKA_KEY_GEN_MECHANISM => return Err(CKR_ATTRIBUTE_READ_ONLY),
                _ => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
            }
        }
        if t.ulong(CKA_CLASS)?.is_some_and(|c| c != CKO_SECRET_KEY)
            || t.ulong(CKA_KEY_TYPE)?
                .is_some_and(|k| k != CKK_GENERIC_SECRET)
        {
            return Err(CKR_TEMPLATE_INCONSISTENT);
        }
        // Session objects only; not modifiable or copyable (no function here
        // would honour it); always destroyable.
        t.require_bool(CKA_TOKEN, false)?;
        t.require_bool(CKA_MODIFIABLE, false)?;
        t.require_bool(CKA_COPYABLE, false)?;
        t.require_bool(CKA_DESTROYABLE, true)?;
        let value_len = match t.ulong(CKA_VALUE_LEN)? {
            Some(0) => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
            Some(n) => Some(usize::try_from(n).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?),
            None => None,
        };
        let date = |a| match t.bytes(a) {
            None => Ok(Vec::new()),
            Some(d) if d.is_empty() || d.len() == 8 => Ok(d.to_vec()),
            Some(_) => Err(CKR_ATTRIBUTE_VALUE_INVALID),
        };
        let allowed = t.bytes(CKA_ALLOWED_MECHANISMS).map(<[u8]>::to_vec);
        if allowed
            .as_ref()
            .is_some_and(|a| a.len() % std::mem::size_of::<CK_ULONG>() != 0)
        {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        let mut uses = USES.map(|a| (a, false));
        for (a, v) in uses.iter_mut() {
            *v = t.bool(*a)?.unwrap_or(false);
        }
        Ok(SecretSpec {
            value_len,
            label: t.bytes(CKA_LABEL).unwrap_or_default().to_vec(),
            id: t.bytes(CKA_ID).unwrap_or_default().to_vec(),
            private: t.bool(CKA_PRIVATE)?.unwrap_or(private_default),
            sensitive: t.bool(CKA_SENSITIVE)?.unwrap_or(false),
            extractable: t.bool(CKA_EXTRACTABLE)?.unwrap_or(true),
            uses,
            dates: (date(CKA_START_DATE)?, date(CKA_END_DATE)?),
            allowed,
        })
    }
}

/// A derived secret key.
pub struct SecretKey {
    /// What the template asked for.
    pub spec: SecretSpec,
    /// The key bytes.
    pub value: Zeroizing<Vec<u8>>,
    /// CKA_ALWAYS_SENSITIVE: the base key always was, and this one is.
    pub always_sensitive: bool,
    /// CKA_NEVER_EXTRACTABLE: the base key never was, and this one is not.
    pub never_extractable: bool,
}

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

impl SecretKey {
    /// A derived key from its base key's CKA_ALWAYS_SENSITIVE and
    /// CKA_NEVER_EXTRACTABLE (§4.10: derived keys inherit them only as long as
    /// they keep them).
    pub fn derived(
        spec: SecretSpec,
        value: Zeroizing<Vec<u8>>,
        base_always_sensitive: bool,
        base_never_extractable: bool,
    ) -> SecretKey {
        SecretKey {
            always_sensitive: base_always_sensitive && spec.sensitive,
            never_extractable: base_never_extractable && !spec.extractable,
            spec,
            value,
        }
    }

    /// One attribute (C_GetAttributeValue).
    pub fn attribute(&self, t: CK_ATTRIBUTE_TYPE) -> AttrValue {
        let b = |v: bool| AttrValue::Value(vec![u8::from(v)]);
        let s = &self.spec;
        match t {
            CKA_CLASS => AttrValue::Value(ulong(CKO_SECRET_KEY)),
            CKA_KEY_TYPE => AttrValue::Value(ulong(CKK_GENERIC_SECRET)),
            CKA_TOKEN
            | CKA_MODIFIABLE
            | CKA_COPYABLE
            | CKA_LOCAL
            | CKA_TRUSTED
            | CKA_WRAP_WITH_TRUSTED => b(false),
            CKA_DESTROYABLE => b(true),
            CKA_PRIVATE => b(s.private),
            CKA_LABEL => AttrValue::Value(s.label.clone()),
            CKA_ID => AttrValue::Value(s.id.clone()),
            CKA_START_DATE => AttrValue::Value(s.dates.0.clone()),
            CKA_END_DATE => AttrValue::Value(s.dates.1.clone()),
            CKA_KEY_GEN_MECHANISM => AttrValue::Value(ulong(CK_UNAVAILABLE_INFORMATION)),
            CKA_ALLOWED_MECHANISMS => AttrValue::Value(s.allowed.clone().unwrap_or_default()),
            CKA_SENSITIVE => b(s.sensitive),
            CKA_EXTRACTABLE => b(s.extractable),
            CKA_ALWAYS_SENSITIVE => b(self.always_sensitive),
            CKA_NEVER_EXTRACTABLE => b(self.never_extractable),
            CKA_VALUE_LEN => AttrValue::Value(ulong(self.value.len() as CK_ULONG)),
            CKA_VALUE if s.sensitive || !s.extractable => AttrValue::Sensitive,
            CKA_VALUE => AttrValue::Value(self.value.to_vec()),
            x => match s.uses.iter().find(|(a, _)| *a == x) {
                Some((_, v)) => b(*v),
                None => AttrValue::Invalid,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ul(v: CK_ULONG) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn pkcs11_tool_derive_template_is_honoured() {
        // What `pkcs11-tool --derive` sends (OpenSC 0.23 derive_ec_key).
        let attrs = vec![
            (CKA_TOKEN, vec![0]),
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
            (CKA_SENSITIVE, vec![0]),
            (CKA_EXTRACTABLE, vec![1]),
            (CKA_ENCRYPT, vec![1]),
            (CKA_DECRYPT, vec![1]),
            (CKA_WRAP, vec![1]),
            (CKA_UNWRAP, vec![1]),
            (CKA_VALUE_LEN, ul(32)),
        ];
        let spec = SecretSpec::parse(&Template::new(&attrs).unwrap(), true).unwrap();
        assert_eq!(spec.value_len, Some(32));
        let k = SecretKey::derived(spec, Zeroizing::new(vec![7; 32]), true, true);
        assert_eq!(k.attribute(CKA_VALUE), AttrValue::Value(vec![7; 32]));
        assert_eq!(k.attribute(CKA_ENCRYPT), AttrValue::Value(vec![1]));
        assert_eq!(k.attribute(CKA_DERIVE), AttrValue::Value(vec![0]));
        assert_eq!(k.attribute(CKA_ALWAYS_SENSITIVE), AttrValue::Value(vec![0]));
        assert_eq!(
            k.attribute(CKA_NEVER_EXTRACTABLE),
            AttrValue::Value(vec![0])
        );
        assert_eq!(k.attribute(CKA_PRIVATE), AttrValue::Value(vec![1]));
        assert_eq!(k.attribute(CKA_MODULUS), AttrValue::Invalid);
    }

    #[test]
    fn sensitive_or_unextractable_values_stay_hidden() {
        for attrs in [
            vec![(CKA_SENSITIVE, vec![1])],
            vec![(CKA_EXTRACTABLE, vec![0])],
        ] {
            let spec = SecretSpec::parse(&Template::new(&attrs).unwrap(), false).unwrap();
            let k = SecretKey::derived(spec, Zeroizing::new(vec![1; 16]), true, true);
            assert_eq!(k.attribute(CKA_VALUE), AttrValue::Sensitive);
            assert_eq!(k.attribute(CKA_VALUE_LEN), AttrValue::Value(ul(16)));
        }
    }

    #[test]
    fn templates_it_cannot_honour_are_refused() {
        type Attrs = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;
        let cases: Vec<(Attrs, Rv)> = vec![
            (vec![(CKA_TOKEN, vec![1])], CKR_TEMPLATE_INCONSISTENT),
            (
                vec![(CKA_CLASS, ul(CKO_PRIVATE_KEY))],
                CKR_TEMPLATE_INCONSISTENT,
            ),
            (vec![(CKA_KEY_TYPE, ul(CKK_AES))], CKR_TEMPLATE_INCONSISTENT),
            (vec![(CKA_VALUE, vec![1, 2])], CKR_ATTRIBUTE_READ_ONLY),
            (vec![(CKA_VALUE_LEN, ul(0))], CKR_ATTRIBUTE_VALUE_INVALID),
            (vec![(CKA_VALUE_LEN, vec![1])], CKR_ATTRIBUTE_VALUE_INVALID),
            (vec![(CKA_MODULUS, vec![1])], CKR_ATTRIBUTE_TYPE_INVALID),
            (
                vec![(CKA_SENSITIVE, vec![1, 1])],
                CKR_ATTRIBUTE_VALUE_INVALID,
            ),
        ];
        for (attrs, rv) in cases {
            let t = Template::new(&attrs).unwrap();
            assert_eq!(
                SecretSpec::parse(&t, true).map(|_| ()),
                Err(rv),
                "{attrs:?}"
            );
        }
    }
}
