//! Distinguished names as text (RFC 4514): `CN=alice,O=Example` to a [`Name`] and
//! back, for the attribute types a certificate subject uses. The values are
//! encoded by `der` (UTF8String; PrintableString for C and serialNumber,
//! IA5String for DC and emailAddress, as x509-cert does); other types are written
//! and read as dotted OIDs with `#`-hex DER values. (x509-cert's own string
//! forms look names up in const-oid's table of every OID it knows, over 100 KB
//! in a static binary.)

use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::{Any, Ia5StringRef, PrintableStringRef, SetOfVec, Utf8StringRef};
use x509_cert::der::oid::db::{rfc3280, rfc4519};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::name::{Name, RelativeDistinguishedName};

/// The attribute types known by name, with the string type of their values.
const TYPES: &[(&str, ObjectIdentifier, Tag)] = &[
    ("CN", rfc4519::COMMON_NAME, Tag::Utf8String),
    ("O", rfc4519::ORGANIZATION_NAME, Tag::Utf8String),
    ("OU", rfc4519::ORGANIZATIONAL_UNIT_NAME, Tag::Utf8String),
    ("C", rfc4519::COUNTRY_NAME, Tag::PrintableString),
    ("ST", rfc4519::ST, Tag::Utf8String),
    ("L", rfc4519::LOCALITY_NAME, Tag::Utf8String),
    ("STREET", rfc4519::STREET, Tag::Utf8String),
    ("SN", rfc4519::SURNAME, Tag::Utf8String),
    ("GN", rfc4519::GIVEN_NAME, Tag::Utf8String),
    ("title", rfc4519::TITLE, Tag::Utf8String),
    ("serialNumber", rfc4519::SERIAL_NUMBER, Tag::PrintableString),
    ("DC", rfc4519::DOMAIN_COMPONENT, Tag::Ia5String),
    ("UID", rfc4519::UID, Tag::Utf8String),
    ("emailAddress", rfc3280::EMAIL_ADDRESS, Tag::Ia5String),
];

/// Splits at unescaped `sep`.
fn split(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == sep && !escaped => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Undoes RFC 4514 §2.4 escaping: `\,` and the like, `\HH` bytes.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let next = *b.get(i + 1)?;
        let hex = |x: u8| (x as char).to_digit(16);
        match (hex(next), b.get(i + 2).and_then(|x| hex(*x))) {
            (Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            _ => {
                out.push(next);
                i += 2;
            }
        }
    }
    Some(out)
}

fn hex_value(h: &str) -> Option<Vec<u8>> {
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| h.get(i..i + 2).and_then(|x| u8::from_str_radix(x, 16).ok()))
        .collect()
}

/// Parses `KEY=VALUE,KEY=VALUE` (the most specific first, as RFC 4514 writes it;
/// `+` joins values of one RDN). None when it is not such a string.
pub fn parse(s: &str) -> Option<Name> {
    let mut rdns = Vec::new();
    for rdn in split(s, ',') {
        let mut set = SetOfVec::new();
        for atv in split(rdn, '+') {
            let (key, value) = atv.split_once('=')?;
            let key = key.trim();
            let known = TYPES.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(key));
            let oid = match known {
                Some((_, oid, _)) => *oid,
                None => ObjectIdentifier::new(key).ok()?,
            };
            let value = match value.strip_prefix('#') {
                Some(h) => Any::from_der(&hex_value(h)?).ok()?,
                None => {
                    let tag = known.map_or(Tag::Utf8String, |(_, _, t)| *t);
                    let bytes = unescape(value)?;
                    if bytes.is_empty() {
                        return None;
                    }
                    Any::new(tag, bytes).ok()?
                }
            };
            set.insert(AttributeTypeAndValue { oid, value }).ok()?;
        }
        rdns.push(RelativeDistinguishedName(set));
    }
    rdns.reverse();
    Some(x509_cert::name::RdnSequence(rdns))
}

/// One value as text, escaped (RFC 4514 §2.4); None when it is no string type.
fn value_text(v: &Any) -> Option<String> {
    let s = match v.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(v).ok()?.as_str(),
        Tag::PrintableString => PrintableStringRef::try_from(v).ok()?.as_str(),
        Tag::Ia5String => Ia5StringRef::try_from(v).ok()?.as_str(),
        _ => return None,
    };
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    Some(out)
}

/// A name as RFC 4514 text, the most specific RDN first.
pub fn text(name: &Name) -> String {
    let rdns: Vec<String> = name
        .0
        .iter()
        .rev()
        .map(|rdn| {
            let atvs: Vec<String> = rdn
                .0
                .iter()
                .map(|atv| {
                    let key = TYPES.iter().find(|(_, oid, _)| *oid == atv.oid);
                    match (key, value_text(&atv.value)) {
                        (Some((n, _, _)), Some(v)) => format!("{n}={v}"),
                        _ => {
                            let der = atv.value.to_der().unwrap_or_default();
                            format!("{}=#{}", atv.oid, crate::store::to_hex(&der))
                        }
                    }
                })
                .collect();
            atvs.join("+")
        })
        .collect();
    rdns.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_text() {
        for s in [
            "CN=alice,O=Example",
            "CN=a\\,b,OU=x+OU=y,C=DE",
            "emailAddress=a@example.org,DC=example,DC=org",
            "2.5.4.65=#0c0470736575",
        ] {
            let n = parse(s).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(text(&n), s);
        }
        // The most specific RDN is encoded last.
        let n = parse("CN=alice,O=Example").unwrap();
        assert_eq!(n.0.len(), 2);
        assert_eq!(n.0[1].0.get(0).map(|a| a.oid), Some(rfc4519::COMMON_NAME));
        for bad in ["alice", "CN=", "XYZ=1", "CN=#zz", "CN=a\\"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
