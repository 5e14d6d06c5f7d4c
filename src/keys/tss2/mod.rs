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
//! PEM label "TSS2 PRIVATE KEY"; "TSS2 KEY BLOB", the older label of
//! openssl_tpm2_engine, is read where it holds this structure (its pre-2019 layout,
//! with parent and pubkey as `[1]`, `[2]` EXPLICIT, is refused with a message).
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
use der::{Decode, Encode};
use tpm_commands::buffers::Tpm2bPrivate;
use tpm_commands::codec::{Marshal, Unmarshal};
use tpm_commands::constants::{TpmCc, TpmHandle};
use tpm_commands::structures::{Tpm2bPublic, TpmtPublic};

use crate::error::{Error, Result};

mod asn1;
mod usable;

use asn1::{Boolean, PolicyAsn1, TpmKeyAsn1};

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
        match Self::from_der(&der) {
            Err(Error::Usage(e)) if label == OLD_PEM_LABEL => Err(Error::Usage(format!(
                "{e} (a TSS2 KEY BLOB in openssl_tpm2_engine's layout before the draft is not read)"
            ))),
            other => other,
        }
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
mod tests;
