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
