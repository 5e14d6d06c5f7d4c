//! The DER structures of a TSS2 key file (draft-bottomley-tpm2-keys §3–§5),
//! declared for the `der` crate's derive; BOOLEAN read as BER.

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{DecodeValue, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag, Writer};

/// A BOOLEAN as BER reads it (any non-zero octet is TRUE), keeping the octet so the
/// structure encodes back to the bytes it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Boolean(pub(super) u8);

impl Boolean {
    /// DER's TRUE and FALSE (X.690 §11.1).
    pub(super) fn der(value: bool) -> Boolean {
        Boolean(if value { 0xFF } else { 0 })
    }

    pub(super) fn get(self) -> bool {
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
pub(super) struct PolicyAsn1 {
    #[asn1(context_specific = "0")]
    pub(super) command_code: u32,
    #[asn1(context_specific = "1")]
    pub(super) command_policy: OctetString,
}

/// TPMKey (draft §3.1).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub(super) struct TpmKeyAsn1 {
    pub(super) key_type: ObjectIdentifier,
    #[asn1(context_specific = "0", optional = "true")]
    pub(super) empty_auth: Option<Boolean>,
    #[asn1(context_specific = "1", optional = "true")]
    pub(super) policy: Option<Vec<PolicyAsn1>>,
    #[asn1(context_specific = "2", optional = "true")]
    pub(super) secret: Option<OctetString>,
    #[asn1(context_specific = "3", optional = "true")]
    /// TPMAuthPolicy (draft §5.1), kept whole: tpmkey refuses keys with policies
    /// and only counts these.
    pub(super) auth_policy: Option<Vec<Any>>,
    #[asn1(context_specific = "4", optional = "true")]
    pub(super) description: Option<String>,
    #[asn1(context_specific = "5", optional = "true")]
    pub(super) rsa_parent: Option<Boolean>,
    pub(super) parent: u32,
    pub(super) pubkey: OctetString,
    pub(super) privkey: OctetString,
}
