//! TSS2 PRIVATE KEY files: the TPM key file of tpm2-openssl, tpm2-tss-engine,
//! openssl_tpm2_engine, go-tpm-keyfiles/ssh-tpm-agent and the Linux kernel's trusted
//! keys (IETF draft "ASN.1 Specification for TPM 2.0 Key Files",
//! draft-bottomley-tpm2-keys, §3):
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,                          -- id-loadablekey …
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//!     secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//!     authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//!     description [4] EXPLICIT UTF8String OPTIONAL,
//!     rsaParent   [5] EXPLICIT BOOLEAN OPTIONAL,
//!     parent      INTEGER,                                    -- a TPM handle
//!     pubkey      OCTET STRING,                               -- TPM2B_PUBLIC
//!     privkey     OCTET STRING }                              -- TPM2B_PRIVATE
//! TPMPolicy ::= SEQUENCE { commandCode [0] EXPLICIT INTEGER,
//!                          commandPolicy [1] EXPLICIT OCTET STRING }
//! TPMAuthPolicy ::= SEQUENCE { name [0] EXPLICIT UTF8String OPTIONAL,
//!                              policy [1] EXPLICIT SEQUENCE OF TPMPolicy }
//! ```
//!
//! PEM label "TSS2 PRIVATE KEY"; "TSS2 KEY BLOB" is the older label of
//! openssl_tpm2_engine, read here both with this structure and with its own older
//! one (OID 2.23.133.10.2; parent, pubkey and policy as `[1]`–`[3]` EXPLICIT).
//!
//! Reading is strict DER except for BOOLEAN: the OpenSSL-based writers
//! (tpm2-openssl, tpm2-tss-engine) put `01` for TRUE and always write emptyAuth,
//! as FALSE when there is a password; both are read. The decoded structure must
//! encode back to exactly the input (no duplicated, reordered or unknown fields).
//! Writing is DER, with emptyAuth always present: TRUE (`FF`) for a key without
//! a password, FALSE otherwise. The draft recommends leaving FALSE out, but
//! tpm2-openssl 1.1 (Debian 12) reads an absent emptyAuth as TRUE and then sends
//! no password, so FALSE is written as tpm2-openssl itself writes it.
//!
//! Encoded and decoded with the `der` crate; this module only declares the
//! structures and checks what they mean.

use der::asn1::{ObjectIdentifier, OctetString};
use der::{
    Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag,
    Writer,
};
use tpm_commands::attributes::TpmaObject;
use tpm_commands::buffers::Tpm2bPrivate;
use tpm_commands::codec::{Marshal, Unmarshal};
use tpm_commands::constants::{TpmCc, TpmEccCurve, TpmHandle};
use tpm_commands::structures::{PublicParams, Tpm2bPublic, TpmtPublic, TpmtScheme};

use super::templates::{KeyAlgorithm, SrkKind};
use crate::error::{Error, Result};

/// id-loadablekey (draft §3.1): loaded with TPM2_Load.
pub const OID_LOADABLE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.3");
/// id-importablekey: a duplicate for TPM2_Import (with `secret`).
pub const OID_IMPORTABLE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.4");
/// id-sealedkey: a sealed data object, for TPM2_Unseal.
pub const OID_SEALED: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.5");
/// The loadable-key OID openssl_tpm2_engine used before the TCG assigned one.
pub const OID_OLD_LOADABLE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.2");

/// The PEM label of the draft.
pub const PEM_LABEL: &str = "TSS2 PRIVATE KEY";
/// The older PEM label of openssl_tpm2_engine.
pub const OLD_PEM_LABEL: &str = "TSS2 KEY BLOB";

/// Larger than any key file: a TPM2B_PUBLIC and a TPM2B_PRIVATE are each at most a
/// few KiB, policies a few hundred bytes.
pub const MAX_FILE_LEN: usize = 64 * 1024;

/// A BOOLEAN as BER reads it (any non-zero octet is TRUE), keeping the octet so the
/// structure encodes back to the bytes it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Boolean(u8);

impl Boolean {
    /// DER's TRUE and FALSE (X.690 §11.1).
    fn der(value: bool) -> Boolean {
        Boolean(if value { 0xFF } else { 0 })
    }

    fn get(self) -> bool {
        self.0 != 0
    }
}

impl<'a> DecodeValue<'a> for Boolean {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        if header.length != Length::ONE {
            return Err(reader.error(der::ErrorKind::Length { tag: Tag::Boolean }));
        }
        Ok(Boolean(reader.read_byte()?))
    }
}

impl EncodeValue for Boolean {
    fn value_len(&self) -> der::Result<Length> {
        Ok(Length::ONE)
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write_byte(self.0)
    }
}

impl FixedTag for Boolean {
    const TAG: Tag = Tag::Boolean;
}

/// TPMPolicy (draft §4.1): one policy command, its body marshalled as the TPM
/// takes it.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct PolicyAsn1 {
    #[asn1(context_specific = "0")]
    command_code: u32,
    #[asn1(context_specific = "1")]
    command_policy: OctetString,
}

/// TPMAuthPolicy (draft §5.1): a signed policy for TPM2_PolicyAuthorize.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct AuthPolicyAsn1 {
    #[asn1(context_specific = "0", optional = "true")]
    name: Option<String>,
    #[asn1(context_specific = "1")]
    policy: Vec<PolicyAsn1>,
}

/// TPMKey (draft §3.1).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct TpmKeyAsn1 {
    key_type: ObjectIdentifier,
    #[asn1(context_specific = "0", optional = "true")]
    empty_auth: Option<Boolean>,
    #[asn1(context_specific = "1", optional = "true")]
    policy: Option<Vec<PolicyAsn1>>,
    #[asn1(context_specific = "2", optional = "true")]
    secret: Option<OctetString>,
    #[asn1(context_specific = "3", optional = "true")]
    auth_policy: Option<Vec<AuthPolicyAsn1>>,
    #[asn1(context_specific = "4", optional = "true")]
    description: Option<String>,
    #[asn1(context_specific = "5", optional = "true")]
    rsa_parent: Option<Boolean>,
    parent: u32,
    pubkey: OctetString,
    privkey: OctetString,
}

/// openssl_tpm2_engine's older layout ("TSS2 KEY BLOB"; parent and pubkey were
/// optional because it also carried TPM 1.2 keys).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct OldTpmKeyAsn1 {
    key_type: ObjectIdentifier,
    #[asn1(context_specific = "0", optional = "true")]
    empty_auth: Option<Boolean>,
    #[asn1(context_specific = "1", optional = "true")]
    parent: Option<u32>,
    #[asn1(context_specific = "2", optional = "true")]
    pubkey: Option<OctetString>,
    #[asn1(context_specific = "3", optional = "true")]
    policy: Option<Vec<PolicyAsn1>>,
    privkey: OctetString,
}

/// What kind of TPM object a key file holds (its `type` OID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// id-loadablekey (or the old 2.23.133.10.2): TPM2_Load under the parent.
    Loadable,
    /// id-importablekey: TPM2_Import first.
    Importable,
    /// id-sealedkey: a sealed secret.
    Sealed,
}

/// One step of a key's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyStep {
    /// The policy command (TPM2_PolicyPCR, …).
    pub command: TpmCc,
    /// Its marshalled body.
    pub body: Vec<u8>,
}

/// A parsed TPM key file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tss2Key {
    /// Loadable, importable or sealed.
    pub key_type: KeyType,
    /// The key needs no password (emptyAuth TRUE).
    pub empty_auth: bool,
    /// The policy steps (`policy`), in order.
    pub policy: Vec<PolicyStep>,
    /// The number of signed policies (`authPolicy`).
    pub auth_policies: usize,
    /// `secret`: the encrypted seed of an importable key.
    pub secret: Option<Vec<u8>>,
    /// `description` (ssh-tpm-agent puts the key's comment there).
    pub description: Option<String>,
    /// `rsaParent`: a permanent parent handle means the RSA-2048 primary, not P-256.
    pub rsa_parent: bool,
    /// The parent's handle.
    pub parent: TpmHandle,
    /// The public area (TPM2B_PUBLIC's content).
    pub public: TpmtPublic,
    /// The wrapped private area (TPM2B_PRIVATE).
    pub private: Tpm2bPrivate,
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::Usage(format!("not a TSS2 key file tpmkey can read: {what}"))
}

/// True when `text` holds a TSS2 key file (either PEM label).
pub fn is_tss2_pem(text: &[u8]) -> bool {
    pem_block(text).is_some()
}

/// The PEM block from its BEGIN line to the end of its END line, and its label.
fn pem_block(text: &[u8]) -> Option<(&'static str, &[u8])> {
    for label in [PEM_LABEL, OLD_PEM_LABEL] {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(start) = find(text, begin.as_bytes()) else {
            continue;
        };
        let stop = find(&text[start..], end.as_bytes())? + start + end.len();
        return Some((label, &text[start..stop]));
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Tss2Key {
    /// Reads a PEM TSS2 key file ("TSS2 PRIVATE KEY" or "TSS2 KEY BLOB").
    ///
    /// # Errors
    /// No such PEM block, bad base64, and everything [`Tss2Key::from_der`] refuses.
    pub fn from_pem(text: &[u8]) -> Result<Tss2Key> {
        if text.len() > MAX_FILE_LEN {
            return Err(bad(format!(
                "{} bytes, more than any TPM key file ({MAX_FILE_LEN})",
                text.len()
            )));
        }
        let (label, block) =
            pem_block(text).ok_or_else(|| bad("no TSS2 PRIVATE KEY block in it"))?;
        let (_, der) = der::pem::decode_vec(block).map_err(|e| bad(format!("PEM: {e}")))?;
        if label == OLD_PEM_LABEL {
            if let Ok(key) = Self::from_der(&der) {
                return Ok(key);
            }
            return Self::from_old_der(&der);
        }
        Self::from_der(&der)
    }

    /// Reads the DER TPMKey structure.
    ///
    /// # Errors
    /// Malformed or non-canonical DER, an unknown type OID, a TPM2B_PUBLIC or
    /// TPM2B_PRIVATE that does not parse (a size field that lies, trailing bytes),
    /// a parent that is not a 32-bit handle.
    pub fn from_der(der: &[u8]) -> Result<Tss2Key> {
        let asn1 = TpmKeyAsn1::from_der(der).map_err(|e| bad(format!("DER: {e}")))?;
        require_exact(&asn1.to_der(), der)?;
        let key_type = key_type(&asn1.key_type)?;
        let (public, private) = tpm_parts(asn1.pubkey.as_bytes(), asn1.privkey.as_bytes())?;
        Ok(Tss2Key {
            key_type,
            empty_auth: asn1.empty_auth.is_some_and(Boolean::get),
            policy: policy_steps(asn1.policy),
            auth_policies: asn1.auth_policy.map_or(0, |p| p.len()),
            secret: asn1.secret.map(OctetString::into_bytes),
            description: asn1.description,
            rsa_parent: asn1.rsa_parent.is_some_and(Boolean::get),
            parent: TpmHandle(asn1.parent),
            public,
            private,
        })
    }

    /// Reads openssl_tpm2_engine's older structure (label "TSS2 KEY BLOB").
    fn from_old_der(der: &[u8]) -> Result<Tss2Key> {
        let asn1 = OldTpmKeyAsn1::from_der(der).map_err(|e| bad(format!("DER: {e}")))?;
        require_exact(&asn1.to_der(), der)?;
        if asn1.key_type != OID_OLD_LOADABLE {
            return Err(bad(format!(
                "type {} in a TSS2 KEY BLOB (only the loadable key 2.23.133.10.2 is known)",
                asn1.key_type
            )));
        }
        let (Some(parent), Some(pubkey)) = (asn1.parent, asn1.pubkey) else {
            return Err(bad(
                "no parent or public part: a TPM 1.2 key blob (tpmkey holds TPM 2.0 keys)",
            ));
        };
        let (public, private) = tpm_parts(pubkey.as_bytes(), asn1.privkey.as_bytes())?;
        Ok(Tss2Key {
            key_type: KeyType::Loadable,
            empty_auth: asn1.empty_auth.is_some_and(Boolean::get),
            policy: policy_steps(asn1.policy),
            auth_policies: 0,
            secret: None,
            description: None,
            rsa_parent: false,
            parent: TpmHandle(parent),
            public,
            private,
        })
    }

    /// A loadable key file for a key under `parent` (for a permanent parent,
    /// `rsa_parent` says the RSA-2048 primary rather than the P-256 one).
    pub fn loadable(
        public: TpmtPublic,
        private: Tpm2bPrivate,
        parent: TpmHandle,
        rsa_parent: bool,
        empty_auth: bool,
    ) -> Tss2Key {
        Tss2Key {
            key_type: KeyType::Loadable,
            empty_auth,
            policy: Vec::new(),
            auth_policies: 0,
            secret: None,
            description: None,
            rsa_parent,
            parent,
            public,
            private,
        }
    }

    /// The DER encoding (draft §3.1). Policies are not written: only keys without
    /// one are made here.
    ///
    /// # Errors
    /// A key with policies, or areas too large to marshal.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        if !self.policy.is_empty() || self.auth_policies != 0 {
            return Err(Error::Usage(
                "writing key files with policies is not supported".into(),
            ));
        }
        let octets = |b: Vec<u8>| OctetString::new(b).map_err(bad);
        let asn1 = TpmKeyAsn1 {
            key_type: match self.key_type {
                KeyType::Loadable => OID_LOADABLE,
                KeyType::Importable => OID_IMPORTABLE,
                KeyType::Sealed => OID_SEALED,
            },
            empty_auth: Some(Boolean::der(self.empty_auth)),
            policy: None,
            secret: self.secret.clone().map(octets).transpose()?,
            auth_policy: None,
            description: self.description.clone(),
            rsa_parent: self.rsa_parent.then_some(Boolean::der(true)),
            parent: self.parent.0,
            pubkey: octets(Tpm2bPublic::new(self.public.clone()).to_bytes()?)?,
            privkey: octets(self.private.to_bytes()?)?,
        };
        asn1.to_der().map_err(|e| bad(format!("DER: {e}")))
    }

    /// The PEM file ("TSS2 PRIVATE KEY", 64-column base64, LF line ends).
    ///
    /// # Errors
    /// As [`Tss2Key::to_der`].
    pub fn to_pem(&self) -> Result<String> {
        der::pem::encode_string(PEM_LABEL, der::pem::LineEnding::LF, &self.to_der()?)
            .map_err(|e| bad(format!("PEM: {e}")))
    }

    /// What tpmkey can take from this file: a loadable (or importable, with its
    /// import secret) signing key without a policy,
    /// of an algorithm tpmkey uses, that can sign data it did not hash itself (not
    /// restricted) with a scheme chosen per signature (scheme NULL), authorized by
    /// its authValue alone (userWithAuth set, adminWithPolicy clear, no policy
    /// digest). Returns its algorithm.
    ///
    /// Policies are refused because a policy is a second way in: a PolicyPCR-only
    /// branch would let the key sign with no PIN at all, and tpmkey's PIN is the
    /// key's only authorization. Sealed objects are not keys.
    ///
    /// # Errors
    /// Each refusal names what was found and why.
    pub fn usable_algorithm(&self) -> Result<KeyAlgorithm> {
        match (self.key_type, &self.secret) {
            (KeyType::Loadable, None) | (KeyType::Importable, Some(_)) => {}
            (KeyType::Loadable, Some(_)) => return Err(bad("a loadable key with an import secret")),
            (KeyType::Importable, None) => return Err(bad("an importable key without its import secret")),
            (KeyType::Sealed, _) => return Err(Error::Usage(
                "a sealed data object (id-sealedkey), not a key: tpmkey holds signing keys; unseal it with the tool that made it".into(),
            )),
        }
        if !self.policy.is_empty() || self.auth_policies != 0 {
            let steps: Vec<String> = self.policy.iter().map(|p| p.command.to_string()).collect();
            return Err(Error::Usage(format!(
                "the key has a policy ({}{}): a policy is a second way to use the key besides its password, and tpmkey's PIN must be the only one; make a key without a policy",
                if steps.is_empty() { "none listed".into() } else { steps.join(", ") },
                if self.auth_policies != 0 { format!(", {} signed policies", self.auth_policies) } else { String::new() }
            )));
        }
        let attrs = self.public.object_attributes;
        if !self.public.auth_policy.as_bytes().is_empty() {
            return Err(Error::Usage(
                "the key has an authorization policy digest (its file lists no policy steps): a policy is a second way to use the key besides its password, and tpmkey's PIN must be the only one".into(),
            ));
        }
        if attrs.contains(TpmaObject::RESTRICTED) {
            return Err(Error::Usage("a restricted key (an attestation key or a storage parent): it signs only what the TPM hashed itself, so tpmkey cannot use it".into()));
        }
        if !attrs.contains(TpmaObject::SIGN_ENCRYPT) {
            return Err(Error::Usage(
                "the key cannot sign (its sign attribute is clear); tpmkey holds signing keys"
                    .into(),
            ));
        }
        if !attrs.contains(TpmaObject::USER_WITH_AUTH)
            || attrs.contains(TpmaObject::ADMIN_WITH_POLICY)
        {
            return Err(Error::Usage("the key is authorized by policy only (userWithAuth clear or adminWithPolicy set); tpmkey authorizes keys with their password".into()));
        }
        let (alg, scheme) = match &self.public.params {
            PublicParams::Ecc { parms, .. } => (
                match parms.curve_id {
                    TpmEccCurve::NIST_P256 => KeyAlgorithm::Ecc256,
                    TpmEccCurve::NIST_P384 => KeyAlgorithm::Ecc384,
                    c => {
                        return Err(Error::Usage(format!(
                            "an ECC key on curve {c}: tpmkey uses NIST P-256 and P-384 keys"
                        )))
                    }
                },
                parms.scheme,
            ),
            PublicParams::Rsa { parms, .. } => (
                match parms.key_bits {
                    2048 => KeyAlgorithm::Rsa2048,
                    3072 => KeyAlgorithm::Rsa3072,
                    4096 => KeyAlgorithm::Rsa4096,
                    b => {
                        return Err(Error::Usage(format!(
                            "an RSA-{b} key: tpmkey uses RSA 2048, 3072 and 4096"
                        )))
                    }
                },
                parms.scheme,
            ),
            other => {
                return Err(Error::Usage(format!(
                    "a {} object, not an ECC or RSA key",
                    other.alg()
                )))
            }
        };
        if scheme != TpmtScheme::Null {
            let name = match scheme {
                TpmtScheme::Hash { scheme, hash } => format!("{scheme} with {hash}"),
                other => format!("{other:?}"),
            };
            return Err(Error::Usage(format!(
                "the key is fixed to one signature scheme ({name}); tpmkey chooses the scheme and hash per signature (ECDSA, RSASSA or RSA-PSS with SHA-1/256/384/512) and needs keys whose scheme is NULL"
            )));
        }
        Ok(alg)
    }

    /// Fails unless the key's parent is the store's SRK `kind` (persistent or not):
    /// 0x81000001, or the owner-hierarchy primary of the standard template
    /// (0x40000001: the P-256 SRK, or the RSA-2048 one when `rsaParent` is set).
    /// Whether 0x81000001 really holds that SRK, TPM2_Load tells.
    ///
    /// # Errors
    /// Any other parent, named.
    pub fn check_parent(&self, kind: SrkKind) -> Result<()> {
        let kind_name = |k: SrkKind| match k {
            SrkKind::Ecc => "the ECC P-256 storage root key",
            SrkKind::Rsa => "the RSA-2048 storage root key",
        };
        match self.parent {
            TpmHandle::SRK => Ok(()),
            TpmHandle::RH_OWNER => {
                let file = if self.rsa_parent { SrkKind::Rsa } else { SrkKind::Ecc };
                if file == kind {
                    Ok(())
                } else {
                    Err(Error::Usage(format!(
                        "the key's parent is 0x40000001 with the {} template, but this store's keys live under {} (made with `tpmkey init --srk {}`)",
                        if self.rsa_parent { "RSA-2048" } else { "ECC P-256" },
                        kind_name(kind),
                        if kind == SrkKind::Rsa { "rsa" } else { "ecc" },
                    )))
                }
            }
            TpmHandle(h) => Err(Error::Usage(format!(
                "the key's parent is 0x{h:08x}; tpmkey loads keys only under its storage root key (persistent handle 0x81000001, or the owner-hierarchy primary 0x40000001 of the standard template), so this key cannot move into the store"
            ))),
        }
    }
}

fn require_exact(reencoded: &der::Result<Vec<u8>>, der: &[u8]) -> Result<()> {
    match reencoded {
        Ok(bytes) if bytes == der => Ok(()),
        Ok(_) => Err(bad(
            "DER: fields duplicated, out of order or unknown (the structure does not encode back to the same bytes)",
        )),
        Err(e) => Err(bad(format!("DER: {e}"))),
    }
}

fn key_type(oid: &ObjectIdentifier) -> Result<KeyType> {
    if *oid == OID_LOADABLE || *oid == OID_OLD_LOADABLE {
        Ok(KeyType::Loadable)
    } else if *oid == OID_IMPORTABLE {
        Ok(KeyType::Importable)
    } else if *oid == OID_SEALED {
        Ok(KeyType::Sealed)
    } else {
        Err(bad(format!(
            "unknown key type {oid} (known: 2.23.133.10.1.3 loadable, .4 importable, .5 sealed)"
        )))
    }
}

fn policy_steps(policy: Option<Vec<PolicyAsn1>>) -> Vec<PolicyStep> {
    policy
        .unwrap_or_default()
        .into_iter()
        .map(|p| PolicyStep {
            command: TpmCc(p.command_code),
            body: p.command_policy.into_bytes(),
        })
        .collect()
}

/// TPM2B_PUBLIC and TPM2B_PRIVATE from their octets, each exactly (a size field
/// that lies, or bytes after the structure, are errors), and the public area must
/// marshal back to the same bytes: the Name the TPM computes is over those bytes.
fn tpm_parts(pubkey: &[u8], privkey: &[u8]) -> Result<(TpmtPublic, Tpm2bPrivate)> {
    let public = Tpm2bPublic::from_bytes(pubkey)
        .map_err(|e| bad(format!("pubkey is not a TPM2B_PUBLIC: {e}")))?
        .0
        .ok_or_else(|| bad("pubkey is an empty TPM2B_PUBLIC"))?;
    if Tpm2bPublic::new(public.clone()).to_bytes()? != pubkey {
        return Err(bad("pubkey does not marshal back to the same TPM2B_PUBLIC"));
    }
    let private = Tpm2bPrivate::from_bytes(privkey)
        .map_err(|e| bad(format!("privkey is not a TPM2B_PRIVATE: {e}")))?;
    if private.as_bytes().is_empty() {
        return Err(bad("privkey is an empty TPM2B_PRIVATE"));
    }
    Ok((public, private))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tpm_commands::constants::TpmAlgId;

    /// Written by tpm2-openssl 1.1.1 (`openssl genpkey -provider tpm2`) on swtpm 0.7.1.
    const P256_EMPTY: &str =
        include_str!("../../vendor-testvectors/tss2/tpm2-openssl-p256-emptyauth.pem");
    const P256_PASSWORD: &str =
        include_str!("../../vendor-testvectors/tss2/tpm2-openssl-p256-password.pem");
    const RSA_EMPTY: &str =
        include_str!("../../vendor-testvectors/tss2/tpm2-openssl-rsa2048-emptyauth.pem");

    fn der_of(pem: &str) -> Vec<u8> {
        der::pem::decode_vec(pem.as_bytes()).unwrap().1
    }

    fn err(r: Result<Tss2Key>) -> String {
        r.expect_err("must be refused").to_string()
    }

    /// Replaces the first occurrence of `from` (which must occur once) by `to`.
    fn splice(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = find(der, from).expect("pattern present");
        assert!(find(&der[at + 1..], from).is_none(), "pattern unique");
        [&der[..at], to, &der[at + from.len()..]].concat()
    }

    /// A SEQUENCE header for `len` content bytes (DER length, short or long form).
    fn seq_header(len: usize) -> Vec<u8> {
        match len {
            0..=0x7F => vec![0x30, len as u8],
            0x80..=0xFF => vec![0x30, 0x81, len as u8],
            _ => vec![0x30, 0x82, (len >> 8) as u8, len as u8],
        }
    }

    /// The content of the outer SEQUENCE.
    fn content(der: &[u8]) -> &[u8] {
        let hl = match der[1] {
            0x81 => 3,
            0x82 => 4,
            _ => 2,
        };
        &der[hl..]
    }

    fn reseq(content: &[u8]) -> Vec<u8> {
        [seq_header(content.len()).as_slice(), content].concat()
    }

    #[test]
    fn tpm2_openssl_p256_file_reads() {
        let key = Tss2Key::from_pem(P256_EMPTY.as_bytes()).unwrap();
        assert_eq!(key.key_type, KeyType::Loadable);
        assert!(key.empty_auth);
        assert_eq!(key.parent, TpmHandle::RH_OWNER);
        assert!(!key.rsa_parent && key.policy.is_empty() && key.description.is_none());
        assert_eq!(key.public.name_alg, TpmAlgId::SHA256);
        assert_eq!(key.usable_algorithm().unwrap(), KeyAlgorithm::Ecc256);
        key.check_parent(SrkKind::Ecc).unwrap();
        assert!(key
            .check_parent(SrkKind::Rsa)
            .unwrap_err()
            .to_string()
            .contains("0x40000001 with the ECC P-256 template"));
    }

    #[test]
    fn tpm2_openssl_password_and_rsa_files_read() {
        let key = Tss2Key::from_pem(P256_PASSWORD.as_bytes()).unwrap();
        assert!(!key.empty_auth);
        assert_eq!(key.usable_algorithm().unwrap(), KeyAlgorithm::Ecc256);
        let key = Tss2Key::from_pem(RSA_EMPTY.as_bytes()).unwrap();
        assert!(key.empty_auth);
        assert_eq!(key.usable_algorithm().unwrap(), KeyAlgorithm::Rsa2048);
    }

    /// Our encoding of a tpm2-openssl key is its file byte for byte, except the one
    /// place where tpm2-openssl departs from DER: emptyAuth TRUE is `01` there and
    /// `FF` (DER) here. A password key's file is identical.
    #[test]
    fn writer_matches_tpm2_openssl_but_for_the_emptyauth_boolean() {
        for pem in [P256_EMPTY, RSA_EMPTY] {
            let theirs = der_of(pem);
            let ours = Tss2Key::from_pem(pem.as_bytes()).unwrap().to_der().unwrap();
            assert_eq!(
                ours,
                splice(&theirs, &[0xA0, 3, 1, 1, 0x01], &[0xA0, 3, 1, 1, 0xFF])
            );
        }
        let theirs = der_of(P256_PASSWORD);
        let ours = Tss2Key::from_pem(P256_PASSWORD.as_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        assert_eq!(ours, theirs);
        // And the PEM is the same 64-column armour with the draft's label.
        let pem = Tss2Key::from_pem(RSA_EMPTY.as_bytes())
            .unwrap()
            .to_pem()
            .unwrap();
        assert!(pem.starts_with("-----BEGIN TSS2 PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(Tss2Key::from_pem(pem.as_bytes()).unwrap(), {
            Tss2Key::from_pem(RSA_EMPTY.as_bytes()).unwrap()
        });
    }

    #[test]
    fn every_truncation_is_an_error() {
        let der = der_of(P256_EMPTY);
        for n in 0..der.len() {
            assert!(Tss2Key::from_der(&der[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn lengths_that_lie_and_trailing_bytes_are_errors() {
        let der = der_of(P256_EMPTY);
        // Outer length larger than the data (an "oversized" file).
        let mut long = der.clone();
        long[2] = long[2].wrapping_add(1);
        assert!(err(Tss2Key::from_der(&long)).contains("DER"));
        // Bytes after the structure.
        let trailing = [der.as_slice(), &[0]].concat();
        assert!(Tss2Key::from_der(&trailing).is_err());
        // A huge file is refused before decoding.
        let huge = vec![b'A'; MAX_FILE_LEN + 1];
        assert!(err(Tss2Key::from_pem(&huge)).contains("more than any TPM key file"));
    }

    #[test]
    fn a_tpm2b_public_whose_size_lies_is_an_error() {
        let der = der_of(P256_EMPTY);
        // pubkey OCTET STRING (88 bytes) holds TPM2B_PUBLIC size 0x0056.
        for size in [[0x00, 0x57], [0x00, 0x55], [0xFF, 0xFF], [0x00, 0x00]] {
            let bad = splice(
                &der,
                &[0x04, 0x58, 0x00, 0x56],
                &[0x04, 0x58, size[0], size[1]],
            );
            let msg = err(Tss2Key::from_der(&bad));
            assert!(msg.contains("pubkey"), "{size:?}: {msg}");
        }
        // TPM2B_PRIVATE size 0x007e in an OCTET STRING of 128.
        let bad = splice(
            &der,
            &[0x04, 0x81, 0x80, 0x00, 0x7E],
            &[0x04, 0x81, 0x80, 0x00, 0x7F],
        );
        assert!(err(Tss2Key::from_der(&bad)).contains("privkey"));
    }

    #[test]
    fn unknown_and_other_type_oids() {
        let der = der_of(P256_EMPTY);
        let oid = [0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x03];
        let wrong = splice(
            &der,
            &oid,
            &[0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x09],
        );
        assert!(err(Tss2Key::from_der(&wrong)).contains("unknown key type 2.23.133.10.1.9"));
        // An RSA private key OID (1.2.840.113549.1.1.1) where the type goes.
        let rsa = [
            0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
        ];
        let wrong = reseq(&splice(content(&der), &oid, &rsa));
        assert!(err(Tss2Key::from_der(&wrong)).contains("unknown key type"));
        let sealed = splice(
            &der,
            &oid,
            &[0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x05],
        );
        let key = Tss2Key::from_der(&sealed).unwrap();
        assert!(key
            .usable_algorithm()
            .unwrap_err()
            .to_string()
            .contains("sealed"));
        let old = reseq(&splice(
            content(&der),
            &oid,
            &[0x06, 0x05, 0x67, 0x81, 0x05, 0x0A, 0x02],
        ));
        assert_eq!(Tss2Key::from_der(&old).unwrap().key_type, KeyType::Loadable);
    }

    #[test]
    fn parents_other_than_the_srk_are_named() {
        let der = der_of(P256_EMPTY);
        let owner = [0x02, 0x04, 0x40, 0x00, 0x00, 0x01];
        let ffff = [0x02, 0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF];
        let key = Tss2Key::from_der(&reseq(&splice(content(&der), &owner, &ffff))).unwrap();
        let msg = key.check_parent(SrkKind::Ecc).unwrap_err().to_string();
        assert!(msg.contains("0xffffffff"), "{msg}");
        let persistent = [0x02, 0x05, 0x00, 0x81, 0x00, 0x00, 0x01];
        let key = Tss2Key::from_der(&reseq(&splice(content(&der), &owner, &persistent))).unwrap();
        assert_eq!(key.parent, TpmHandle::SRK);
        key.check_parent(SrkKind::Ecc).unwrap();
        key.check_parent(SrkKind::Rsa).unwrap();
        // Not a 32-bit handle: negative, or 2^32.
        for bad in [&[0x02, 0x01, 0xFF][..], &[0x02, 0x05, 0x01, 0, 0, 0, 0]] {
            assert!(Tss2Key::from_der(&reseq(&splice(content(&der), &owner, bad))).is_err());
        }
    }

    #[test]
    fn duplicated_and_unknown_fields_are_errors() {
        let der = der_of(P256_EMPTY);
        let empty_auth = [0xA0, 3, 1, 1, 1];
        let twice = reseq(&splice(
            content(&der),
            &empty_auth,
            &[empty_auth, empty_auth].concat(),
        ));
        assert!(err(Tss2Key::from_der(&twice)).contains("DER"));
        // [6] (a field this reader does not know) before the parent.
        let owner = [0x02, 0x04, 0x40, 0x00, 0x00, 0x01];
        let unknown = reseq(&splice(
            content(&der),
            &owner,
            &[&[0xA6, 0x03, 0x04, 0x01, 0x00][..], &owner].concat(),
        ));
        assert!(err(Tss2Key::from_der(&unknown)).contains("DER"));
    }

    fn key_with(f: impl FnOnce(&mut Tss2Key)) -> Tss2Key {
        let mut k = Tss2Key::from_pem(P256_EMPTY.as_bytes()).unwrap();
        f(&mut k);
        k
    }

    #[test]
    fn keys_tpmkey_cannot_use_are_refused_with_the_reason() {
        let refused = |k: Tss2Key| k.usable_algorithm().unwrap_err().to_string();
        let msg = refused(key_with(|k| {
            k.policy = vec![
                PolicyStep {
                    command: TpmCc::POLICY_PCR,
                    body: vec![],
                },
                PolicyStep {
                    command: TpmCc::POLICY_AUTH_VALUE,
                    body: vec![],
                },
            ]
        }));
        assert!(
            msg.contains("TPM2_PolicyPCR, TPM2_PolicyAuthValue"),
            "{msg}"
        );
        let msg = refused(key_with(|k| {
            k.public.auth_policy = tpm_commands::buffers::Tpm2bDigest::new(vec![1; 32]).unwrap()
        }));
        assert!(msg.contains("authorization policy"), "{msg}");
        assert!(refused(key_with(|k| k.key_type = KeyType::Importable))
            .contains("without its import secret"));
        assert!(refused(key_with(|k| k.secret = Some(vec![0, 0])))
            .contains("loadable key with an import secret"));
        let importable = key_with(|k| {
            k.key_type = KeyType::Importable;
            k.secret = Some(vec![0, 0]);
        });
        assert_eq!(importable.usable_algorithm().unwrap(), KeyAlgorithm::Ecc256);
        let msg = refused(key_with(|k| {
            k.public.object_attributes |= TpmaObject::RESTRICTED
        }));
        assert!(msg.contains("restricted"), "{msg}");
        let msg = refused(key_with(|k| {
            k.public.object_attributes.remove(TpmaObject::SIGN_ENCRYPT)
        }));
        assert!(msg.contains("cannot sign"), "{msg}");
        let msg = refused(key_with(|k| {
            k.public
                .object_attributes
                .remove(TpmaObject::USER_WITH_AUTH)
        }));
        assert!(msg.contains("policy only"), "{msg}");
        let msg = refused(key_with(|k| {
            if let PublicParams::Ecc { parms, .. } = &mut k.public.params {
                parms.scheme = TpmtScheme::Hash {
                    scheme: TpmAlgId::ECDSA,
                    hash: TpmAlgId::SHA256,
                };
            }
        }));
        assert!(msg.contains("fixed to one signature scheme"), "{msg}");
        let msg = refused(key_with(|k| {
            if let PublicParams::Ecc { parms, .. } = &mut k.public.params {
                parms.curve_id = TpmEccCurve::NIST_P521;
            }
        }));
        assert!(msg.contains("P-256 and P-384"), "{msg}");
    }

    /// The draft's structure with every optional field, encoded independently of
    /// [`Tss2Key::to_der`], reads back field by field.
    #[test]
    fn all_optional_fields_read() {
        let base = Tss2Key::from_pem(P256_EMPTY.as_bytes()).unwrap();
        let asn1 = TpmKeyAsn1 {
            key_type: OID_LOADABLE,
            empty_auth: Some(Boolean::der(true)),
            policy: Some(vec![PolicyAsn1 {
                command_code: TpmCc::POLICY_AUTH_VALUE.0,
                command_policy: OctetString::new(Vec::new()).unwrap(),
            }]),
            secret: None,
            auth_policy: Some(vec![AuthPolicyAsn1 {
                name: Some("kernel 6.1".into()),
                policy: vec![PolicyAsn1 {
                    command_code: TpmCc::POLICY_PCR.0,
                    command_policy: OctetString::new(vec![0, 0]).unwrap(),
                }],
            }]),
            description: Some("alice@laptop".into()),
            rsa_parent: Some(Boolean::der(true)),
            parent: TpmHandle::RH_OWNER.0,
            pubkey: OctetString::new(Tpm2bPublic::new(base.public.clone()).to_bytes().unwrap())
                .unwrap(),
            privkey: OctetString::new(base.private.to_bytes().unwrap()).unwrap(),
        };
        let key = Tss2Key::from_der(&asn1.to_der().unwrap()).unwrap();
        assert_eq!(key.description.as_deref(), Some("alice@laptop"));
        assert!(key.rsa_parent && key.empty_auth);
        assert_eq!(key.auth_policies, 1);
        assert_eq!(key.policy[0].command, TpmCc::POLICY_AUTH_VALUE);
        assert_eq!(key.public, base.public);
        key.check_parent(SrkKind::Rsa).unwrap();
        assert!(key.check_parent(SrkKind::Ecc).is_err());
    }

    /// openssl_tpm2_engine's older "TSS2 KEY BLOB" layout.
    #[test]
    fn old_key_blob_layout_reads() {
        let base = Tss2Key::from_pem(P256_PASSWORD.as_bytes()).unwrap();
        let asn1 = OldTpmKeyAsn1 {
            key_type: OID_OLD_LOADABLE,
            empty_auth: None,
            parent: Some(TpmHandle::SRK.0),
            pubkey: Some(
                OctetString::new(Tpm2bPublic::new(base.public.clone()).to_bytes().unwrap())
                    .unwrap(),
            ),
            policy: None,
            privkey: OctetString::new(base.private.to_bytes().unwrap()).unwrap(),
        };
        let pem = der::pem::encode_string(
            OLD_PEM_LABEL,
            der::pem::LineEnding::LF,
            &asn1.to_der().unwrap(),
        )
        .unwrap();
        assert!(is_tss2_pem(pem.as_bytes()));
        let key = Tss2Key::from_pem(pem.as_bytes()).unwrap();
        assert_eq!((key.parent, key.empty_auth), (TpmHandle::SRK, false));
        assert_eq!((key.public, key.private), (base.public, base.private));
        // Without a parent it is a TPM 1.2 blob.
        let tpm12 = OldTpmKeyAsn1 {
            parent: None,
            pubkey: None,
            ..asn1
        };
        let pem = der::pem::encode_string(
            OLD_PEM_LABEL,
            der::pem::LineEnding::LF,
            &tpm12.to_der().unwrap(),
        )
        .unwrap();
        assert!(err(Tss2Key::from_pem(pem.as_bytes())).contains("TPM 1.2"));
    }

    #[test]
    fn text_around_the_block_and_other_pem_files() {
        let text = format!("a key from tpm2-openssl\n{P256_EMPTY}\ntrailing words\n");
        assert!(Tss2Key::from_pem(text.as_bytes()).is_ok());
        let other = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(!is_tss2_pem(other.as_bytes()));
        let broken = P256_EMPTY.replace('M', "!");
        assert!(err(Tss2Key::from_pem(broken.as_bytes())).contains("PEM"));
    }
}
