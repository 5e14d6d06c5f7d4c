//! Declarative macros for the regular wire shapes. The irregular ones (Part 2 types
//! whose selector is not immediately followed by its union, or whose size comes
//! from elsewhere) are written by hand and listed in the crate docs.

/// An open enum: a newtype over the wire integer with named constants. Unknown
/// values are kept, never rejected, so decoding a capability list cannot fail on
/// an algorithm or command this crate does not know.
macro_rules! tpm_open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($int:ty) as $spec:literal {
            $( $(#[$cmeta:meta])* $c:ident = $v:expr => $cname:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        $vis struct $name(pub $int);

        #[allow(missing_docs)]
        impl $name {
            $( $(#[$cmeta])* pub const $c: $name = $name($v); )*

            /// Every named value.
            pub const ALL: &'static [$name] = &[$($name::$c),*];

            /// The spec name of this value, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( $name::$c => Some($cname), )*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{:#x}", self.0),
                }
            }
        }

        impl From<$int> for $name {
            fn from(v: $int) -> Self {
                $name(v)
            }
        }

        impl From<$name> for $int {
            fn from(v: $name) -> Self {
                v.0
            }
        }

        impl $crate::codec::Marshal for $name {
            fn marshal(&self, w: &mut $crate::codec::Writer) {
                $crate::codec::Marshal::marshal(&self.0, w)
            }
            fn marshaled_len(&self) -> usize {
                core::mem::size_of::<$int>()
            }
        }

        impl $crate::codec::Unmarshal for $name {
            fn unmarshal(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::UnmarshalError> {
                <$int as $crate::codec::Unmarshal>::unmarshal(r).map($name)
            }
        }
    };
}

/// A `TPM2B_*` byte buffer: `u16` size then that many bytes, with the spec maximum
/// checked on both read and construction. `secret` buffers zeroize on drop and
/// print as `<redacted, N bytes>`.
macro_rules! tpm2b {
    ($(#[$meta:meta])* $name:ident, $spec:literal, max = $max:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Default)]
        pub struct $name(Vec<u8>);

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                for b in &self.0 {
                    write!(f, "{:02x}", b)?;
                }
                f.write_str(")")
            }
        }

        tpm2b!(@common $name, $spec, $max);
    };
    ($(#[$meta:meta])* $name:ident, $spec:literal, max = $max:expr, secret) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Default, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
        pub struct $name(Vec<u8>);

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}(<redacted, {} bytes>)", stringify!($name), self.0.len())
            }
        }

        tpm2b!(@common $name, $spec, $max);
    };
    (@common $name:ident, $spec:literal, $max:expr) => {
        impl $name {
            /// The spec maximum of the buffer's size.
            pub const MAX: usize = $max;

            /// A buffer holding `bytes`.
            ///
            /// # Errors
            /// More than [`Self::MAX`] bytes.
            pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, $crate::codec::MarshalError> {
                let bytes = bytes.into();
                if bytes.len() > Self::MAX {
                    return Err($crate::codec::MarshalError { size: bytes.len(), max: Self::MAX });
                }
                Ok($name(bytes))
            }

            /// An empty buffer.
            pub fn empty() -> Self {
                $name(Vec::new())
            }

            /// The bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The number of bytes.
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// True when empty.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl $crate::codec::Marshal for $name {
            const IS_TPM2B: bool = true;
            fn marshal(&self, w: &mut $crate::codec::Writer) {
                w.sized_u16(|w| w.bytes(&self.0));
            }
            fn marshaled_len(&self) -> usize {
                2 + self.0.len()
            }
        }

        impl $crate::codec::Unmarshal for $name {
            fn unmarshal(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::UnmarshalError> {
                r.sized_u16(Self::MAX, $spec, |s| Ok($name(s.rest().to_vec())))
            }
        }
    };
}

/// A structure whose fields are marshalled one after the other.
macro_rules! tpm_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident as $spec:literal {
            $( $(#[$fmeta:meta])* pub $f:ident : $t:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* #[allow(missing_docs)] pub $f: $t, )*
        }

        impl $crate::codec::Marshal for $name {
            #[allow(unused_variables)]
            fn marshal(&self, w: &mut $crate::codec::Writer) {
                $( $crate::codec::Marshal::marshal(&self.$f, w); )*
            }
        }

        impl $crate::codec::Unmarshal for $name {
            #[allow(unused_variables)]
            fn unmarshal(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::UnmarshalError> {
                Ok($name { $( $f: <$t as $crate::codec::Unmarshal>::unmarshal(r)?, )* })
            }
        }
    };
}

/// A `TPM2B_*` that wraps a structure: `u16` size = the marshalled size of the
/// inner structure, which must fill it exactly. A size of zero is `None` (where the
/// spec allows an empty structure, e.g. TPM2B_PUBLIC in a command that ignores it).
macro_rules! tpm2b_struct {
    ($(#[$meta:meta])* $name:ident($inner:ty), $spec:literal, max = $max:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Default)]
        pub struct $name(pub Option<$inner>);

        impl $name {
            /// A buffer holding `inner`.
            pub fn new(inner: $inner) -> Self {
                $name(Some(inner))
            }
        }

        impl From<$inner> for $name {
            fn from(inner: $inner) -> Self {
                $name(Some(inner))
            }
        }

        impl $crate::codec::Marshal for $name {
            const IS_TPM2B: bool = true;
            fn marshal(&self, w: &mut $crate::codec::Writer) {
                w.sized_u16(|w| {
                    if let Some(inner) = &self.0 {
                        $crate::codec::Marshal::marshal(inner, w);
                    }
                });
            }
        }

        impl $crate::codec::Unmarshal for $name {
            fn unmarshal(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::UnmarshalError> {
                r.sized_u16($max, $spec, |s| {
                    if s.remaining() == 0 {
                        Ok($name(None))
                    } else {
                        <$inner as $crate::codec::Unmarshal>::unmarshal(s).map(|v| $name(Some(v)))
                    }
                })
            }
        }
    };
}

/// A `TPML_*` list: `u32` count then that many elements, count checked against the
/// spec maximum and the bytes left before allocating.
macro_rules! tpml {
    ($(#[$meta:meta])* $name:ident($elem:ty), $spec:literal, max = $max:expr, min_elem = $min:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Default)]
        pub struct $name(pub Vec<$elem>);

        impl $name {
            /// The spec maximum element count.
            pub const MAX: usize = $max;
        }

        impl $crate::codec::Marshal for $name {
            fn marshal(&self, w: &mut $crate::codec::Writer) {
                if self.0.len() > Self::MAX {
                    w.fail($crate::codec::MarshalError { size: self.0.len(), max: Self::MAX });
                }
                w.u32(self.0.len() as u32);
                for e in &self.0 {
                    $crate::codec::Marshal::marshal(e, w);
                }
            }
        }

        impl $crate::codec::Unmarshal for $name {
            fn unmarshal(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::UnmarshalError> {
                r.list_u32(Self::MAX, $min, $spec, |r| <$elem as $crate::codec::Unmarshal>::unmarshal(r)).map($name)
            }
        }
    };
}
