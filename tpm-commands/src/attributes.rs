//! TPMA_* attribute bit fields (Part 2 §8). Unknown bits are kept, never rejected.

use crate::codec::{Marshal, Reader, Unmarshal, UnmarshalError, Writer};

macro_rules! tpma {
    ($(#[doc = $md:literal])* $name:ident($int:ty), $spec:literal { $($(#[doc = $fd:literal])* const $f:ident = $v:expr;)* }) => {
        bitflags::bitflags! {
            $(#[doc = $md])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
            pub struct $name: $int {
                $($(#[doc = $fd])* const $f = $v;)*
                const _ = !0;
            }
        }

        impl Marshal for $name {
            fn marshal(&self, w: &mut Writer) {
                self.bits().marshal(w)
            }
            fn marshaled_len(&self) -> usize {
                core::mem::size_of::<$int>()
            }
        }

        impl Unmarshal for $name {
            fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
                <$int>::unmarshal(r).map(Self::from_bits_retain)
            }
        }
    };
}

tpma! {
    /// TPMA_SESSION (Part 2 §8.4).
    TpmaSession(u8), "TPMA_SESSION" {
        /// Keep the session open after the command.
        const CONTINUE_SESSION = 0x01;
        /// Exclusive audit.
        const AUDIT_EXCLUSIVE = 0x02;
        /// Reset the audit digest.
        const AUDIT_RESET = 0x04;
        /// The first command parameter is encrypted.
        const DECRYPT = 0x20;
        /// The first response parameter is encrypted.
        const ENCRYPT = 0x40;
        /// Audit session.
        const AUDIT = 0x80;
    }
}

tpma! {
    /// TPMA_OBJECT (Part 2 §8.3).
    TpmaObject(u32), "TPMA_OBJECT" {
        /// The object's hierarchy cannot change.
        const FIXED_TPM = 0x0000_0002;
        /// Saved contexts are not kept across TPM Resume.
        const ST_CLEAR = 0x0000_0004;
        /// The parent cannot change.
        const FIXED_PARENT = 0x0000_0010;
        /// The TPM made the sensitive data.
        const SENSITIVE_DATA_ORIGIN = 0x0000_0020;
        /// USER role may be proven with the authValue (HMAC or password).
        const USER_WITH_AUTH = 0x0000_0040;
        /// ADMIN role needs a policy session.
        const ADMIN_WITH_POLICY = 0x0000_0080;
        /// Not subject to dictionary-attack protection.
        const NO_DA = 0x0000_0400;
        /// Duplication needs an inner and outer wrapper.
        const ENCRYPTED_DUPLICATION = 0x0000_0800;
        /// A storage key, or a restricted signing key.
        const RESTRICTED = 0x0001_0000;
        /// May decrypt.
        const DECRYPT = 0x0002_0000;
        /// May sign (or encrypt, for symmetric keys).
        const SIGN_ENCRYPT = 0x0004_0000;
        /// X.509 signing key.
        const X509_SIGN = 0x0008_0000;
    }
}

tpma! {
    /// TPMA_ALGORITHM (Part 2 §8.2).
    TpmaAlgorithm(u32), "TPMA_ALGORITHM" {
        /// Asymmetric algorithm.
        const ASYMMETRIC = 0x0000_0001;
        /// Symmetric algorithm.
        const SYMMETRIC = 0x0000_0002;
        /// Hash algorithm.
        const HASH = 0x0000_0004;
        /// An object type.
        const OBJECT = 0x0000_0008;
        /// A signing scheme.
        const SIGNING = 0x0000_0100;
        /// An encryption scheme.
        const ENCRYPTING = 0x0000_0200;
        /// A method such as a KDF.
        const METHOD = 0x0000_0400;
    }
}

tpma! {
    /// TPMA_PERMANENT (Part 2 §8.6).
    TpmaPermanent(u32), "TPMA_PERMANENT" {
        /// ownerAuth was set.
        const OWNER_AUTH_SET = 0x0000_0001;
        /// endorsementAuth was set.
        const ENDORSEMENT_AUTH_SET = 0x0000_0002;
        /// lockoutAuth was set.
        const LOCKOUT_AUTH_SET = 0x0000_0004;
        /// TPM2_Clear is disabled.
        const DISABLE_CLEAR = 0x0000_0100;
        /// The TPM is in dictionary-attack lockout.
        const IN_LOCKOUT = 0x0000_0200;
        /// The EPS was created by the TPM.
        const TPM_GENERATED_EPS = 0x0000_0400;
    }
}

tpma! {
    /// TPMA_STARTUP_CLEAR (Part 2 §8.7).
    TpmaStartupClear(u32), "TPMA_STARTUP_CLEAR" {
        /// The platform hierarchy is enabled.
        const PH_ENABLE = 0x0000_0001;
        /// The storage (owner) hierarchy is enabled.
        const SH_ENABLE = 0x0000_0002;
        /// The endorsement hierarchy is enabled.
        const EH_ENABLE = 0x0000_0004;
        /// Platform NV is enabled.
        const PH_ENABLE_NV = 0x0000_0008;
        /// The TPM was shut down orderly.
        const ORDERLY = 0x8000_0000;
    }
}
