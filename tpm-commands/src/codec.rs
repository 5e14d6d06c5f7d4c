//! The wire codec: a bounds-checked [`Reader`], a back-patching [`Writer`], and the
//! [`Marshal`] / [`Unmarshal`] traits every TPM type implements.
//!
//! All integers are big-endian (TPM 2.0 Part 1 §18). Reading never panics and never
//! allocates more than the input could possibly hold: sizes are checked against
//! the remaining input and the spec maximum before anything is allocated.

use core::fmt;

/// Why unmarshalling failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input ended: `needed` more bytes were required, `available` were left.
    Truncated {
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A size or count field exceeded the spec maximum for the type.
    TooLarge {
        /// The size or count read.
        size: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// Bytes were left over after a sized structure or a whole frame.
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// A union selector (algorithm, capability, structure tag) not valid here.
    BadSelector {
        /// The selector value read.
        value: u32,
    },
    /// A value outside the set the type allows.
    BadValue {
        /// The value read.
        value: u32,
    },
}

/// An unmarshalling error: what went wrong, where (absolute byte offset within the
/// outermost buffer) and in which type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmarshalError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset of the failing field from the start of the buffer being read.
    pub offset: usize,
    /// The spec name of the innermost type being read (e.g. `"TPMS_RSA_PARMS"`).
    pub ty: &'static str,
}

impl fmt::Display for UnmarshalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Truncated { needed, available } => write!(
                f,
                "{} at offset {}: truncated (needs {} bytes, {} left)",
                self.ty, self.offset, needed, available
            ),
            ErrorKind::TooLarge { size, max } => write!(
                f,
                "{} at offset {}: size {} exceeds the maximum {}",
                self.ty, self.offset, size, max
            ),
            ErrorKind::TrailingBytes { count } => write!(
                f,
                "{} at offset {}: {} unexpected trailing bytes",
                self.ty, self.offset, count
            ),
            ErrorKind::BadSelector { value } => write!(
                f,
                "{} at offset {}: selector {:#x} not allowed here",
                self.ty, self.offset, value
            ),
            ErrorKind::BadValue { value } => write!(
                f,
                "{} at offset {}: value {:#x} not allowed",
                self.ty, self.offset, value
            ),
        }
    }
}

impl std::error::Error for UnmarshalError {}

/// A marshalling error: a buffer too large for its size field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarshalError {
    /// The size that did not fit.
    pub size: usize,
    /// The largest size the field can carry.
    pub max: usize,
}

impl fmt::Display for MarshalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes do not fit a size field of at most {}",
            self.size, self.max
        )
    }
}

impl std::error::Error for MarshalError {}

/// A bounds-checked big-endian reader over a byte slice.
///
/// Sub-readers made by [`Reader::sized_u16`] and friends keep absolute offsets so
/// errors point into the outermost buffer.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the whole of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, base: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base
    }

    /// An error of `kind` at the current offset, in type `ty`.
    pub fn error(&self, ty: &'static str, kind: ErrorKind) -> UnmarshalError {
        UnmarshalError {
            kind,
            offset: self.base,
            ty,
        }
    }

    /// Takes the next `n` bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`] when fewer than `n` bytes are left.
    pub fn take(&mut self, n: usize, ty: &'static str) -> Result<&'a [u8], UnmarshalError> {
        if n > self.buf.len() {
            return Err(self.error(
                ty,
                ErrorKind::Truncated {
                    needed: n,
                    available: self.buf.len(),
                },
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        self.base += n;
        Ok(head)
    }

    /// Takes a fixed-size array.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`].
    pub fn array<const N: usize>(&mut self, ty: &'static str) -> Result<[u8; N], UnmarshalError> {
        match self.buf.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.buf = tail;
                self.base += N;
                Ok(*head)
            }
            None => Err(self.error(
                ty,
                ErrorKind::Truncated {
                    needed: N,
                    available: self.buf.len(),
                },
            )),
        }
    }

    /// Reads a `u8`.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`].
    pub fn u8(&mut self, ty: &'static str) -> Result<u8, UnmarshalError> {
        self.array::<1>(ty).map(|[b]| b)
    }

    /// Reads a big-endian `u16`.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`].
    pub fn u16(&mut self, ty: &'static str) -> Result<u16, UnmarshalError> {
        self.array::<2>(ty).map(u16::from_be_bytes)
    }

    /// Reads a big-endian `u32`.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`].
    pub fn u32(&mut self, ty: &'static str) -> Result<u32, UnmarshalError> {
        self.array::<4>(ty).map(u32::from_be_bytes)
    }

    /// Reads a big-endian `u64`.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`].
    pub fn u64(&mut self, ty: &'static str) -> Result<u64, UnmarshalError> {
        self.array::<8>(ty).map(u64::from_be_bytes)
    }

    /// Splits off a sub-reader over the next `n` bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`].
    pub fn sub(&mut self, n: usize, ty: &'static str) -> Result<Reader<'a>, UnmarshalError> {
        let base = self.base;
        let buf = self.take(n, ty)?;
        Ok(Reader { buf, base })
    }

    /// Reads a `u16` size, then runs `f` on exactly that many bytes; `f` must consume
    /// all of them. A size of more than `max` is rejected before anything is read.
    ///
    /// # Errors
    /// [`ErrorKind::Truncated`], [`ErrorKind::TooLarge`], [`ErrorKind::TrailingBytes`],
    /// or whatever `f` returns.
    pub fn sized_u16<T>(
        &mut self,
        max: usize,
        ty: &'static str,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T, UnmarshalError>,
    ) -> Result<T, UnmarshalError> {
        let at = self.clone();
        let size = usize::from(self.u16(ty)?);
        if size > max {
            return Err(at.error(ty, ErrorKind::TooLarge { size, max }));
        }
        let mut sub = self.sub(size, ty)?;
        let value = f(&mut sub)?;
        sub.finish(ty)?;
        Ok(value)
    }

    /// Like [`Reader::sized_u16`] with a `u32` size (parameterSize, authorizationSize).
    ///
    /// # Errors
    /// As [`Reader::sized_u16`].
    pub fn sized_u32<T>(
        &mut self,
        max: usize,
        ty: &'static str,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T, UnmarshalError>,
    ) -> Result<T, UnmarshalError> {
        let at = self.clone();
        let size = self.u32(ty)? as usize;
        if size > max {
            return Err(at.error(ty, ErrorKind::TooLarge { size, max }));
        }
        let mut sub = self.sub(size, ty)?;
        let value = f(&mut sub)?;
        sub.finish(ty)?;
        Ok(value)
    }

    /// Reads a `u32` element count, checks it against `max` and against the bytes
    /// left (each element takes at least `min_elem_size` bytes), then reads that many
    /// elements with `f`.
    ///
    /// # Errors
    /// [`ErrorKind::TooLarge`], [`ErrorKind::Truncated`], or whatever `f` returns.
    pub fn list_u32<T>(
        &mut self,
        max: usize,
        min_elem_size: usize,
        ty: &'static str,
        mut f: impl FnMut(&mut Reader<'a>) -> Result<T, UnmarshalError>,
    ) -> Result<Vec<T>, UnmarshalError> {
        let at = self.clone();
        let count = self.u32(ty)? as usize;
        if count > max {
            return Err(at.error(ty, ErrorKind::TooLarge { size: count, max }));
        }
        let needed = count.saturating_mul(min_elem_size.max(1));
        if needed > self.remaining() {
            return Err(self.error(
                ty,
                ErrorKind::Truncated {
                    needed,
                    available: self.remaining(),
                },
            ));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(f(self)?);
        }
        Ok(items)
    }

    /// Reads all remaining bytes.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf;
        self.base += rest.len();
        self.buf = &[];
        rest
    }

    /// Succeeds when every byte was read.
    ///
    /// # Errors
    /// [`ErrorKind::TrailingBytes`].
    pub fn finish(&self, ty: &'static str) -> Result<(), UnmarshalError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.error(
                ty,
                ErrorKind::TrailingBytes {
                    count: self.buf.len(),
                },
            ))
        }
    }
}

/// A growable big-endian writer. Size fields are reserved and back-patched by
/// [`Writer::sized_u16`] / [`Writer::sized_u32`], so sizes are never computed by hand.
///
/// An overflowing size field makes the writer remember a [`MarshalError`], which
/// [`Writer::finish`] reports; marshalling itself never fails half-way.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
    error: Option<MarshalError>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends a `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    /// Records an error (the first one wins).
    pub fn fail(&mut self, e: MarshalError) {
        self.error.get_or_insert(e);
    }

    fn sized(&mut self, width: usize, max: usize, f: impl FnOnce(&mut Writer)) {
        let at = self.buf.len();
        self.buf.extend(core::iter::repeat_n(0xFF, width));
        f(self);
        let size = self.buf.len() - at - width;
        if size > max {
            self.fail(MarshalError { size, max });
            return;
        }
        let be = (size as u64).to_be_bytes();
        if let (Some(dst), Some(src)) = (self.buf.get_mut(at..at + width), be.get(8 - width..)) {
            dst.copy_from_slice(src);
        }
    }

    /// Writes a `u16` size, then whatever `f` writes, back-patching the size.
    pub fn sized_u16(&mut self, f: impl FnOnce(&mut Writer)) {
        self.sized(2, usize::from(u16::MAX), f);
    }

    /// Writes a `u32` size, then whatever `f` writes, back-patching the size.
    pub fn sized_u32(&mut self, f: impl FnOnce(&mut Writer)) {
        self.sized(4, u32::MAX as usize, f);
    }

    /// The bytes written.
    ///
    /// # Errors
    /// The first [`MarshalError`] recorded.
    pub fn finish(self) -> Result<Vec<u8>, MarshalError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.buf),
        }
    }
}

/// A type that can be written in TPM wire format.
pub trait Marshal {
    /// True for `TPM2B_*` types: a command or response whose first parameter is a
    /// TPM2B can carry parameter encryption (Part 1 §21.1).
    const IS_TPM2B: bool = false;

    /// Appends the wire form of `self`.
    fn marshal(&self, w: &mut Writer);

    /// The number of bytes [`Marshal::marshal`] writes.
    fn marshaled_len(&self) -> usize {
        let mut w = Writer::new();
        self.marshal(&mut w);
        w.len()
    }

    /// The wire form of `self` as a new vector.
    ///
    /// # Errors
    /// A buffer too large for its size field.
    fn to_bytes(&self) -> Result<Vec<u8>, MarshalError> {
        let mut w = Writer::new();
        self.marshal(&mut w);
        w.finish()
    }
}

/// A type that can be read from TPM wire format.
pub trait Unmarshal: Sized {
    /// Reads one value.
    ///
    /// # Errors
    /// Truncated input, sizes over the spec maximum, bad selectors or values.
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError>;

    /// Reads one value from exactly `bytes`; trailing bytes are an error.
    ///
    /// # Errors
    /// As [`Unmarshal::unmarshal`], plus [`ErrorKind::TrailingBytes`].
    fn from_bytes(bytes: &[u8]) -> Result<Self, UnmarshalError> {
        let mut r = Reader::new(bytes);
        let v = Self::unmarshal(&mut r)?;
        r.finish(core::any::type_name::<Self>())?;
        Ok(v)
    }
}

macro_rules! impl_int {
    ($($t:ty => $read:ident, $name:literal;)*) => {$(
        impl Marshal for $t {
            fn marshal(&self, w: &mut Writer) {
                w.bytes(&self.to_be_bytes());
            }
            fn marshaled_len(&self) -> usize {
                core::mem::size_of::<$t>()
            }
        }
        impl Unmarshal for $t {
            fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
                r.$read($name)
            }
        }
    )*};
}

impl_int! {
    u8 => u8, "UINT8";
    u16 => u16, "UINT16";
    u32 => u32, "UINT32";
    u64 => u64, "UINT64";
}

impl Marshal for bool {
    fn marshal(&self, w: &mut Writer) {
        w.u8(u8::from(*self));
    }
}

/// TPMI_YES_NO (Part 2 §9.2): 0 or 1, anything else is an error.
impl Unmarshal for bool {
    fn unmarshal(r: &mut Reader<'_>) -> Result<Self, UnmarshalError> {
        let at = r.clone();
        match r.u8("TPMI_YES_NO")? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(at.error(
                "TPMI_YES_NO",
                ErrorKind::BadValue {
                    value: u32::from(v),
                },
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_u16_backpatches() {
        let mut w = Writer::new();
        w.sized_u16(|w| w.bytes(b"abc"));
        assert_eq!(w.finish().unwrap(), b"\x00\x03abc");
    }

    #[test]
    fn sized_u16_overflow_is_an_error() {
        let mut w = Writer::new();
        w.sized_u16(|w| w.bytes(&vec![0; 70_000]));
        assert_eq!(
            w.finish(),
            Err(MarshalError {
                size: 70_000,
                max: 65_535
            })
        );
    }

    #[test]
    fn reader_reports_absolute_offsets() {
        let data = [0x00, 0x03, 1, 2];
        let mut r = Reader::new(&data);
        let e = r
            .sized_u16(10, "T", |s| s.take(3, "T").map(|_| ()))
            .unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::Truncated {
                needed: 3,
                available: 2
            }
        );
        assert_eq!(e.offset, 2);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let e = u16::from_bytes(&[0, 1, 2]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TrailingBytes { count: 1 });
        assert_eq!(e.offset, 2);
    }

    #[test]
    fn huge_list_count_does_not_allocate() {
        let data = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0];
        let mut r = Reader::new(&data);
        let e = r
            .list_u32(usize::MAX, 4, "TPML", |r| r.u32("x"))
            .unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { .. }));
    }

    #[test]
    fn bool_rejects_two() {
        assert!(bool::from_bytes(&[2]).is_err());
        assert_eq!(bool::from_bytes(&[1]), Ok(true));
    }
}
