//! X.509 certificates (RFC 5280) and PKCS#10 certification requests (RFC 2986)
//! for TPM keys, built and read with RustCrypto's `x509-cert`, `der` and `spki`:
//! the to-be-signed structure is made here, its DER is signed by the TPM (the
//! `sign` closures), and the signature goes into the finished structure.
//! ECDSA P-256 signs with SHA-256, P-384 with SHA-384 (RFC 5758 ecdsa-with-SHA*),
//! RSA with SHA-256 and PKCS#1 v1.5 (RFC 8017, sha256WithRSAEncryption).

pub mod name;

use std::time::Duration;

use tpm_commands::constants::TpmEccCurve;
use tpm_commands::structures::{PublicParams, TpmtPublic};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::der::asn1::{
    Any, BitString, GeneralizedTime, Ia5String, OctetString, UintRef, UtcTime,
};
use x509_cert::der::oid::db::{rfc5280, rfc5912};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::pem::{LineEnding, PemLabel};
use x509_cert::der::{Decode, Encode, Reader, SliceReader};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::keys::sshpub::{ec_point, rsa_parts};

/// The largest certificate tpmkey takes (the PKCS#11 layer and `cert import`).
pub const MAX_CERT_LEN: usize = 64 * 1024;

fn der_err(what: &str) -> impl Fn(x509_cert::der::Error) -> Error + '_ {
    move |e| Error::Usage(format!("{what}: {e}"))
}

/// The public key of a TPM key as a SubjectPublicKeyInfo (RFC 5480 id-ecPublicKey
/// with the named curve and the uncompressed point; RFC 8017 rsaEncryption with
/// the PKCS#1 RSAPublicKey), made from the public area's fields.
///
/// # Errors
/// A key type or curve without an X.509 form here.
pub fn subject_public_key_info(public: &TpmtPublic) -> Result<SubjectPublicKeyInfoOwned> {
    let enc = der_err("public key");
    let (oid, parameters, key) = match &public.params {
        PublicParams::Ecc { parms, .. } => {
            let curve = match parms.curve_id {
                TpmEccCurve::NIST_P256 => rfc5912::SECP_256_R_1,
                TpmEccCurve::NIST_P384 => rfc5912::SECP_384_R_1,
                c => return Err(Error::Usage(format!("no X.509 form for curve {c}"))),
            };
            (
                rfc5912::ID_EC_PUBLIC_KEY,
                Any::encode_from(&curve).map_err(&enc)?,
                ec_point(public)?,
            )
        }
        PublicParams::Rsa { .. } => {
            let (n, e) = rsa_parts(public)?;
            let key = rsa::pkcs1::RsaPublicKey {
                modulus: UintRef::new(&n).map_err(&enc)?,
                public_exponent: UintRef::new(&e).map_err(&enc)?,
            };
            (
                rfc5912::RSA_ENCRYPTION,
                Any::null(),
                key.to_der().map_err(&enc)?,
            )
        }
        other => {
            return Err(Error::Usage(format!(
                "a {} object has no X.509 public key",
                other.alg()
            )))
        }
    };
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: Some(parameters),
        },
        subject_public_key: BitString::from_bytes(&key).map_err(&enc)?,
    })
}

/// The hash and signatureAlgorithm a key signs certificates and requests with.
///
/// # Errors
/// A key that cannot sign.
pub fn signature_algorithm(public: &TpmtPublic) -> Result<(HashAlg, AlgorithmIdentifierOwned)> {
    let (hash, oid, parameters) = match &public.params {
        PublicParams::Ecc { parms, .. } => match parms.curve_id {
            TpmEccCurve::NIST_P384 => (HashAlg::Sha384, rfc5912::ECDSA_WITH_SHA_384, None),
            _ => (HashAlg::Sha256, rfc5912::ECDSA_WITH_SHA_256, None),
        },
        PublicParams::Rsa { .. } => (
            HashAlg::Sha256,
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            Some(Any::null()),
        ),
        other => {
            return Err(Error::Usage(format!(
                "a {} object cannot sign",
                other.alg()
            )))
        }
    };
    Ok((hash, AlgorithmIdentifierOwned { oid, parameters }))
}

/// The signature BIT STRING from a TPM signature laid out as tpmkey does (ECDSA
/// r || s becomes the DER Ecdsa-Sig-Value of RFC 5758 §3.2; RSA stays as is).
///
/// # Errors
/// An r || s of the wrong length.
fn signature_bits(public: &TpmtPublic, raw: &[u8]) -> Result<BitString> {
    let bad = |e: &dyn std::fmt::Display| Error::Crypto(format!("signature: {e}"));
    let bytes = match &public.params {
        PublicParams::Ecc { parms, .. } if parms.curve_id == TpmEccCurve::NIST_P384 => {
            p384::ecdsa::Signature::from_slice(raw)
                .map_err(|e| bad(&e))?
                .to_der()
                .as_bytes()
                .to_vec()
        }
        PublicParams::Ecc { .. } => p256::ecdsa::Signature::from_slice(raw)
            .map_err(|e| bad(&e))?
            .to_der()
            .as_bytes()
            .to_vec(),
        _ => raw.to_vec(),
    };
    BitString::from_bytes(&bytes).map_err(der_err("signature"))
}

/// Parses a subject such as `CN=alice,O=Example` (RFC 4514: the most specific
/// attribute first).
///
/// # Errors
/// [`Error::Usage`] naming the expected form.
pub fn parse_subject(s: &str) -> Result<Name> {
    let name = name::parse(s.trim()).ok_or_else(|| {
        Error::Usage(format!(
            "subject {s:?} is not a distinguished name like 'CN=alice,O=Example' (RFC 4514; CN, O, OU, C, ST, L, emailAddress, … or dotted OIDs)"
        ))
    })?;
    if name.0.is_empty() {
        return Err(Error::Usage("the subject is empty".into()));
    }
    Ok(name)
}

/// Parses subject alternative names: `DNS:host,email:a@b,URI:https://…,IP:1.2.3.4`.
///
/// # Errors
/// [`Error::Usage`] naming the entry that does not parse.
pub fn parse_sans(s: &str) -> Result<Vec<GeneralName>> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = || {
                Error::Usage(format!(
                    "subject alternative name {entry:?}: use DNS:NAME, email:ADDRESS, URI:URI or IP:ADDRESS"
                ))
            };
            let (kind, value) = entry.split_once(':').ok_or_else(bad)?;
            let ia5 = || Ia5String::new(value).map_err(|_| bad());
            Ok(match kind.to_ascii_lowercase().as_str() {
                "dns" => GeneralName::DnsName(ia5()?),
                "email" => GeneralName::Rfc822Name(ia5()?),
                "uri" => GeneralName::UniformResourceIdentifier(ia5()?),
                "ip" => {
                    let ip: std::net::IpAddr = value.parse().map_err(|_| bad())?;
                    let octets = match ip {
                        std::net::IpAddr::V4(a) => a.octets().to_vec(),
                        std::net::IpAddr::V6(a) => a.octets().to_vec(),
                    };
                    GeneralName::IpAddress(OctetString::new(octets).map_err(|_| bad())?)
                }
                _ => return Err(bad()),
            })
        })
        .collect()
}

fn extension<E: AsExtension>(e: &E, subject: &Name) -> Result<Extension> {
    e.to_extension(subject, &[])
        .map_err(der_err("certificate extension"))
}

/// A PKCS#10 certification request for `public` (RFC 2986), with the subject
/// alternative names in an extensionRequest attribute (RFC 2985 §5.4.2), signed
/// by `sign(hash, to-be-signed DER)`, which returns the signature as tpmkey lays
/// it out (ECDSA r || s, RSA PKCS#1 v1.5).
///
/// # Errors
/// DER errors; what `sign` returns.
pub fn build_request(
    public: &TpmtPublic,
    subject: Name,
    sans: Vec<GeneralName>,
    sign: impl FnOnce(HashAlg, &[u8]) -> Result<Vec<u8>>,
) -> Result<CertReq> {
    let (hash, algorithm) = signature_algorithm(public)?;
    let mut info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        public_key: subject_public_key_info(public)?,
        attributes: Default::default(),
        subject,
    };
    if !sans.is_empty() {
        let ext = extension(&SubjectAltName(sans), &info.subject)?;
        let attr = ExtensionReq(vec![ext])
            .try_into()
            .map_err(der_err("extensionRequest"))?;
        info.attributes
            .insert(attr)
            .map_err(der_err("extensionRequest"))?;
    }
    let tbs = info.to_der().map_err(der_err("request"))?;
    let signature = signature_bits(public, &sign(hash, &tbs)?)?;
    Ok(CertReq {
        info,
        algorithm,
        signature,
    })
}

/// An RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050 (§4.1.2.5).
fn rfc5280_time(unix: u64) -> Result<Time> {
    const Y2050: u64 = 2_524_608_000;
    let d = Duration::from_secs(unix);
    let t = if unix < Y2050 {
        UtcTime::from_unix_duration(d).map(Time::UtcTime)
    } else {
        GeneralizedTime::from_unix_duration(d).map(Time::GeneralTime)
    };
    t.map_err(der_err("validity"))
}

/// A self-signed X.509 v3 certificate for `public`, valid from `now` (seconds
/// since the epoch) for `days`, with serial `serial` (positive, at most 20
/// bytes), basicConstraints cA (critical), keyUsage digitalSignature, keyCertSign
/// and cRLSign (critical), the subject key identifier (RFC 5280 §4.2.1.2 method
/// 1: SHA-1 of the public key bits), the same identifier as the authority key
/// identifier (§4.2.1.1), and the subject alternative names;
/// signed as [`build_request`] says.
///
/// # Errors
/// DER errors; what `sign` returns.
pub fn build_self_signed(
    public: &TpmtPublic,
    subject: Name,
    sans: Vec<GeneralName>,
    now: u64,
    days: u32,
    serial: &[u8],
    sign: impl FnOnce(HashAlg, &[u8]) -> Result<Vec<u8>>,
) -> Result<Certificate> {
    let (hash, signature) = signature_algorithm(public)?;
    let spki = subject_public_key_info(public)?;
    let key_id = OctetString::new(HashAlg::Sha1.hash(&[spki.subject_public_key.raw_bytes()]))
        .map_err(der_err("key identifier"))?;
    let mut extensions = vec![
        extension(
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
            &subject,
        )?,
        extension(
            &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            &subject,
        )?,
        extension(&SubjectKeyIdentifier(key_id.clone()), &subject)?,
        // Its own key, as `openssl req -x509` writes it: chain builders that match
        // issuers by key identifier find it (RFC 5280 §4.2.1.1).
        extension(
            &AuthorityKeyIdentifier {
                key_identifier: Some(key_id),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            &subject,
        )?,
    ];
    if !sans.is_empty() {
        extensions.push(extension(&SubjectAltName(sans), &subject)?);
    }
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(serial).map_err(der_err("serial number"))?,
        signature: signature.clone(),
        issuer: subject.clone(),
        validity: Validity {
            not_before: rfc5280_time(now)?,
            not_after: rfc5280_time(now.saturating_add(u64::from(days) * 86_400))?,
        },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let der = tbs.to_der().map_err(der_err("certificate"))?;
    let signature_bits = signature_bits(public, &sign(hash, &der)?)?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signature,
        signature: signature_bits,
    })
}

/// PEM of a request or certificate (its DER, base64 between the label's lines;
/// encoding to DER first keeps one encoder per type in the binary).
///
/// # Errors
/// DER errors.
pub fn to_pem<T: Encode + PemLabel>(value: &T) -> Result<String> {
    let der = value.to_der().map_err(der_err("DER"))?;
    pem(T::PEM_LABEL, &der)
}

fn pem(label: &str, der: &[u8]) -> Result<String> {
    x509_cert::der::pem::encode_string(label, LineEnding::LF, der)
        .map_err(|e| Error::Usage(format!("PEM: {e}")))
}

/// PEM of a certificate's DER.
///
/// # Errors
/// Only for inputs far beyond [`MAX_CERT_LEN`].
pub fn der_to_pem(der: &[u8]) -> Result<String> {
    pem(Certificate::PEM_LABEL, der)
}

/// A time as `2026-01-31T12:00:00Z` (seconds since the epoch when out of range).
pub fn time_text(unix: u64) -> String {
    x509_cert::der::DateTime::from_unix_duration(Duration::from_secs(unix))
        .map_or_else(|_| unix.to_string(), |t| t.to_string())
}

/// The DER of each `CERTIFICATE` block of a PEM text (text around them, other
/// blocks such as keys, are skipped).
fn pem_blocks(text: &str) -> Result<Vec<Vec<u8>>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block.find(END).ok_or_else(|| {
            Error::Usage("a truncated PEM certificate (no END CERTIFICATE line)".into())
        })? + END.len();
        let (_, der) = x509_cert::der::pem::decode_vec(&block.as_bytes()[..end])
            .map_err(|e| Error::Usage(format!("not a PEM certificate: {e}")))?;
        out.push(der);
        rest = &block[end..];
    }
    Ok(out)
}

/// The certificates in a file: one or more PEM `CERTIFICATE` blocks, or one or
/// more DER certificates back to back. Each comes back as its DER.
///
/// # Errors
/// [`Error::Usage`] saying what is wrong: not PEM or DER, truncated, too large,
/// no certificate at all.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(bytes).ok();
    let ders = match text.filter(|t| t.contains("-----BEGIN")) {
        Some(t) => pem_blocks(t)?,
        None => {
            // One or more DER certificates back to back: each is checked below;
            // here only its outer length is read.
            let mut reader = SliceReader::new(bytes)
                .map_err(|e| Error::Usage(format!("not a DER certificate: {e}")))?;
            let mut ders = Vec::new();
            while !reader.is_finished() {
                let tlv = reader.tlv_bytes().map_err(|e| {
                    Error::Usage(format!(
                        "not a DER or PEM certificate (or a truncated one): {e}"
                    ))
                })?;
                ders.push(tlv.to_vec());
            }
            ders
        }
    };
    if ders.is_empty() {
        return Err(Error::Usage("no certificate in the file".into()));
    }
    for der in &ders {
        if der.len() > MAX_CERT_LEN {
            return Err(Error::Usage(format!(
                "a certificate of {} bytes: tpmkey takes at most {MAX_CERT_LEN}",
                der.len()
            )));
        }
        Certificate::from_der(der).map_err(|e| {
            Error::Usage(format!(
                "not a DER or PEM certificate (or a truncated one): {e}"
            ))
        })?;
    }
    Ok(ders)
}

/// What tpmkey reads from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The DER subject Name (CKA_SUBJECT).
    pub subject: Vec<u8>,
    /// The DER issuer Name (CKA_ISSUER).
    pub issuer: Vec<u8>,
    /// The DER serial number INTEGER (CKA_SERIAL_NUMBER).
    pub serial: Vec<u8>,
    /// The subject, RFC 4514 text.
    pub subject_text: String,
    /// The issuer, RFC 4514 text.
    pub issuer_text: String,
    /// The serial number, hex.
    pub serial_hex: String,
    /// The DER SubjectPublicKeyInfo (CKA_PUBLIC_KEY_INFO).
    pub spki: Vec<u8>,
    /// The public key's algorithm and bits, to compare with a key's.
    pub key: (ObjectIdentifier, Vec<u8>),
    /// basicConstraints cA is set.
    pub is_ca: bool,
    /// notBefore and notAfter, seconds since the epoch.
    pub validity: (u64, u64),
}

/// Reads one DER certificate.
///
/// # Errors
/// [`Error::Usage`] when it is not one DER certificate.
pub fn inspect(der: &[u8]) -> Result<CertInfo> {
    let c = Certificate::from_der(der)
        .map_err(|e| Error::Usage(format!("not a DER X.509 certificate: {e}")))?;
    let t = &c.tbs_certificate;
    let enc = der_err("certificate");
    let is_ca = t
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == rfc5280::ID_CE_BASIC_CONSTRAINTS)
        .any(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).is_ok_and(|b| b.ca));
    let spki = &t.subject_public_key_info;
    Ok(CertInfo {
        subject: t.subject.to_der().map_err(&enc)?,
        issuer: t.issuer.to_der().map_err(&enc)?,
        serial: t.serial_number.to_der().map_err(&enc)?,
        subject_text: name::text(&t.subject),
        issuer_text: name::text(&t.issuer),
        serial_hex: crate::store::to_hex(t.serial_number.as_bytes()),
        spki: spki.to_der().map_err(&enc)?,
        key: (
            spki.algorithm.oid,
            spki.subject_public_key.raw_bytes().to_vec(),
        ),
        is_ca,
        validity: (
            t.validity.not_before.to_unix_duration().as_secs(),
            t.validity.not_after.to_unix_duration().as_secs(),
        ),
    })
}

/// The public key of a TPM key in the form [`CertInfo::key`] has.
///
/// # Errors
/// As [`subject_public_key_info`].
pub fn key_of(public: &TpmtPublic) -> Result<(ObjectIdentifier, Vec<u8>)> {
    let spki = subject_public_key_info(public)?;
    Ok((
        spki.algorithm.oid,
        spki.subject_public_key.raw_bytes().to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_alternative_names_parse() {
        let n = parse_subject("CN=alice,O=Example").unwrap();
        assert_eq!(n.to_string(), "CN=alice,O=Example");
        assert!(parse_subject("").is_err());
        assert!(parse_subject("alice").is_err());
        let sans =
            parse_sans("DNS:a.example, email:a@example.org,URI:https://x,IP:127.0.0.1").unwrap();
        assert_eq!(sans.len(), 4);
        assert_eq!(
            sans[3],
            GeneralName::IpAddress(OctetString::new(vec![127, 0, 0, 1]).unwrap())
        );
        assert!(parse_sans("DNS").is_err());
        assert!(parse_sans("X400:x").is_err());
        assert!(parse_sans("IP:not-an-ip").is_err());
    }

    #[test]
    fn garbage_and_truncated_certificates_are_refused() {
        assert!(parse_certificates(b"hello").is_err());
        assert!(parse_certificates(b"").is_err());
        assert!(parse_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        assert!(parse_certificates(&[0x30, 0x82, 0x01, 0x00, 0x30]).is_err());
        assert!(inspect(&[0x30, 0x00]).is_err());
    }

    #[test]
    fn public_keys_are_the_spki_the_rustcrypto_keys_encode() {
        use crate::keys::templates::{signing_template, KeyAlgorithm};
        use p256::pkcs8::EncodePublicKey;
        use tpm_commands::buffers::{Tpm2bEccParameter, Tpm2bPublicKeyRsa};
        let sk = p256::SecretKey::from_slice(&[7; 32]).unwrap();
        let point = sk.public_key().to_sec1_bytes();
        let mut ecc = signing_template(KeyAlgorithm::Ecc256, false);
        if let PublicParams::Ecc { unique, .. } = &mut ecc.params {
            unique.x = Tpm2bEccParameter::new(point[1..33].to_vec()).unwrap();
            unique.y = Tpm2bEccParameter::new(point[33..].to_vec()).unwrap();
        }
        assert_eq!(
            subject_public_key_info(&ecc).unwrap().to_der().unwrap(),
            sk.public_key().to_public_key_der().unwrap().as_bytes()
        );
        let mut n = vec![0xc5u8; 256];
        n[255] |= 1;
        let mut rsa_key = signing_template(KeyAlgorithm::Rsa2048, false);
        if let PublicParams::Rsa { unique, .. } = &mut rsa_key.params {
            *unique = Tpm2bPublicKeyRsa::new(n.clone()).unwrap();
        }
        let reference = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from(65537u32),
        )
        .unwrap();
        assert_eq!(
            subject_public_key_info(&rsa_key).unwrap().to_der().unwrap(),
            rsa::pkcs8::EncodePublicKey::to_public_key_der(&reference)
                .unwrap()
                .as_bytes()
        );
    }

    #[test]
    fn times_follow_rfc5280() {
        assert!(matches!(rfc5280_time(0).unwrap(), Time::UtcTime(_)));
        assert!(matches!(
            rfc5280_time(2_524_608_000).unwrap(),
            Time::GeneralTime(_)
        ));
    }
}
