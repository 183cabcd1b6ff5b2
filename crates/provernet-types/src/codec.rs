//! The canonical binary codec used for transactions, blocks and ledger state.
//!
//! Every value has exactly one encoding, so hashes and signatures over encodings are stable:
//! - integers are fixed-width little-endian;
//! - `bool` is one byte, `0` or `1`, anything else is rejected;
//! - `Option<T>` is a tag byte `0` (none) or `1` followed by `T`;
//! - enums are a `u8` tag followed by the variant's fields; unknown tags are rejected;
//! - sequences and strings are a `u32` length followed by their items, and the decoder checks the
//!   length against the type's bound *before* allocating (see [`BoundedVec`], [`BoundedString`]);
//! - sequences whose order carries no meaning are kept sorted and deduplicated by the types that
//!   own them, so equal sets encode equally.
//!
//! Decoding a whole value with [`decode_exact`] rejects trailing bytes.

use std::fmt;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unexpected end of input while reading {what}")]
    Truncated { what: &'static str },
    #[error("{trailing} trailing bytes after a complete {what}")]
    TrailingBytes { what: &'static str, trailing: usize },
    #[error("{what} has length {len}, above its limit of {max}")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("invalid tag {tag} for {what}")]
    InvalidTag { what: &'static str, tag: u8 },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: &'static str },
}

/// Writes a value's canonical encoding.
pub trait Encode {
    fn encode_to(&self, out: &mut Vec<u8>);

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_to(&mut out);
        out
    }
}

/// Reads a value from its canonical encoding, checking every bound.
pub trait Decode: Sized {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError>;
}

/// Decodes one whole value and rejects anything left over.
pub fn decode_exact<T: Decode>(bytes: &[u8], what: &'static str) -> Result<T, CodecError> {
    let mut r = Reader::new(bytes);
    let value = T::decode_from(&mut r)?;
    if r.remaining() != 0 {
        return Err(CodecError::TrailingBytes { what, trailing: r.remaining() });
    }
    Ok(value)
}

/// A cursor over input bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.bytes.len() < n {
            return Err(CodecError::Truncated { what });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a `u32` length prefix and checks it against `max` before anything is allocated.
    pub fn len(&mut self, max: usize, what: &'static str) -> Result<usize, CodecError> {
        let len = u32::from_le_bytes(self.array(what)?) as usize;
        if len > max {
            return Err(CodecError::TooLong { what, len, max });
        }
        Ok(len)
    }
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("encoded lengths are bounded far below u32::MAX");
    out.extend_from_slice(&len.to_le_bytes());
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
        impl Decode for $t {
            fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok(<$t>::from_le_bytes(r.array(stringify!($t))?))
            }
        }
    )*};
}
int_codec!(u8, u16, u32, u64, u128);

impl Encode for bool {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Decode for bool {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(CodecError::InvalidTag { what: "bool", tag }),
        }
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> Decode for [u8; N] {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.array("byte array")
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode_to(out);
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8("option tag")? {
            0 => Ok(None),
            1 => Ok(Some(T::decode_from(r)?)),
            tag => Err(CodecError::InvalidTag { what: "option", tag }),
        }
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.0.encode_to(out);
        self.1.encode_to(out);
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok((A::decode_from(r)?, B::decode_from(r)?))
    }
}

/// A vector with at most `MAX` items, enforced on construction and on decode.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    pub const MAX: usize = MAX;

    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Wraps `items`, failing if there are more than `MAX`.
    pub fn try_from_vec(items: Vec<T>) -> Result<Self, CodecError> {
        if items.len() > MAX {
            return Err(CodecError::TooLong { what: "list", len: items.len(), max: MAX });
        }
        Ok(Self(items))
    }

    /// Appends `item`, handing it back when the vector is full.
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        if self.0.len() >= MAX {
            return Err(item);
        }
        self.0.push(item);
        Ok(())
    }

    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.0
    }

    pub fn into_vec(self) -> Vec<T> {
        self.0
    }

    pub fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        self.0.retain(f);
    }
}

impl<T, const MAX: usize> std::ops::Deref for BoundedVec<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'a, T, const MAX: usize> IntoIterator for &'a BoundedVec<T, MAX> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Encode, const MAX: usize> Encode for BoundedVec<T, MAX> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        write_len(out, self.0.len());
        for item in &self.0 {
            item.encode_to(out);
        }
    }
}

impl<T: Decode, const MAX: usize> Decode for BoundedVec<T, MAX> {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.len(MAX, "list")?;
        // Each item takes at least one byte, so a length beyond the input is rejected before
        // a large allocation is made.
        if len > r.remaining() {
            return Err(CodecError::Truncated { what: "list" });
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(T::decode_from(r)?);
        }
        Ok(Self(items))
    }
}

/// Raw bytes with at most `MAX` of them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BoundedBytes<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> BoundedBytes<MAX> {
    pub fn try_from_vec(bytes: Vec<u8>) -> Result<Self, CodecError> {
        if bytes.len() > MAX {
            return Err(CodecError::TooLong { what: "bytes", len: bytes.len(), max: MAX });
        }
        Ok(Self(bytes))
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BoundedBytes<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

impl<const MAX: usize> Encode for BoundedBytes<MAX> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        write_len(out, self.0.len());
        out.extend_from_slice(&self.0);
    }
}

impl<const MAX: usize> Decode for BoundedBytes<MAX> {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.len(MAX, "bytes")?;
        Ok(Self(r.take(len, "bytes")?.to_vec()))
    }
}

/// A UTF-8 string of at most `MAX` bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BoundedString<const MAX: usize>(String);

impl<const MAX: usize> BoundedString<MAX> {
    pub fn try_new(s: impl Into<String>) -> Result<Self, CodecError> {
        let s = s.into();
        if s.len() > MAX {
            return Err(CodecError::TooLong { what: "string", len: s.len(), max: MAX });
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MAX: usize> fmt::Display for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> Encode for BoundedString<MAX> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        write_len(out, self.0.len());
        out.extend_from_slice(self.0.as_bytes());
    }
}

impl<const MAX: usize> Decode for BoundedString<MAX> {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let len = r.len(MAX, "string")?;
        let bytes = r.take(len, "string")?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| CodecError::Invalid { what: "string", reason: "not UTF-8" })?;
        Ok(Self(s.to_owned()))
    }
}

/// Implements [`Encode`] and [`Decode`] for a struct by encoding its fields in the order given.
/// List every field: the encoding is the concatenation of the fields' encodings.
#[macro_export]
macro_rules! codec_struct {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::codec::Encode for $ty {
            fn encode_to(&self, out: &mut Vec<u8>) {
                $( $crate::codec::Encode::encode_to(&self.$field, out); )*
            }
        }
        impl $crate::codec::Decode for $ty {
            fn decode_from(
                r: &mut $crate::codec::Reader<'_>,
            ) -> Result<Self, $crate::codec::CodecError> {
                Ok(Self { $( $field: $crate::codec::Decode::decode_from(r)?, )* })
            }
        }
    };
}

/// Implements [`Encode`] and [`Decode`] for a fieldless enum with explicit `u8` discriminants.
#[macro_export]
macro_rules! codec_unit_enum {
    ($ty:ident { $($variant:ident = $tag:literal),* $(,)? }) => {
        impl $crate::codec::Encode for $ty {
            fn encode_to(&self, out: &mut Vec<u8>) {
                out.push(match self { $( Self::$variant => $tag, )* });
            }
        }
        impl $crate::codec::Decode for $ty {
            fn decode_from(
                r: &mut $crate::codec::Reader<'_>,
            ) -> Result<Self, $crate::codec::CodecError> {
                match r.u8(stringify!($ty))? {
                    $( $tag => Ok(Self::$variant), )*
                    tag => Err($crate::codec::CodecError::InvalidTag { what: stringify!($ty), tag }),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = 7u32.encode();
        bytes.push(0);
        assert_eq!(
            decode_exact::<u32>(&bytes, "u32"),
            Err(CodecError::TrailingBytes { what: "u32", trailing: 1 })
        );
    }

    #[test]
    fn list_length_is_checked_before_allocation() {
        // A length prefix of 4 billion with no items behind it must fail fast.
        let bytes = u32::MAX.to_le_bytes().to_vec();
        let err = decode_exact::<BoundedVec<u64, 8>>(&bytes, "list").unwrap_err();
        assert!(matches!(err, CodecError::TooLong { max: 8, .. }));
        let bytes = 5u32.to_le_bytes().to_vec();
        let err = decode_exact::<BoundedVec<u64, 8>>(&bytes, "list").unwrap_err();
        assert!(matches!(err, CodecError::Truncated { .. }));
    }

    #[test]
    fn non_canonical_bool_and_option_are_rejected() {
        assert!(decode_exact::<bool>(&[2], "bool").is_err());
        assert!(decode_exact::<Option<u8>>(&[2, 0], "opt").is_err());
        assert_eq!(decode_exact::<Option<u8>>(&[1, 9], "opt"), Ok(Some(9)));
    }

    #[test]
    fn strings_must_be_utf8_and_bounded() {
        let s = BoundedString::<4>::try_new("abcd").unwrap();
        assert_eq!(decode_exact::<BoundedString<4>>(&s.encode(), "s"), Ok(s));
        assert!(BoundedString::<4>::try_new("abcde").is_err());
        let bad = [2, 0, 0, 0, 0xff, 0xfe];
        assert!(decode_exact::<BoundedString<4>>(&bad, "s").is_err());
    }
}
