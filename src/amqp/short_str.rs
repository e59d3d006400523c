//! `ShortStr`: the AMQP short string (u8 length, then octets).
//!
//! Field names and most basic properties are short strings. RabbitMQ does
//! not require them to be UTF-8, so the octets are kept as they came; use
//! [`ShortStr::to_str`] where text is needed.

use bytes::Bytes;
use std::fmt;

/// A string of at most [`ShortStr::LEN_MAX`] octets, not necessarily UTF-8.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortStr(Bytes);

/// A short string was longer than 255 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("short string of {len} octets exceeds {}", ShortStr::LEN_MAX)]
pub struct ShortStrTooLong {
    /// The rejected length in octets.
    pub len: usize,
}

impl ShortStr {
    /// The length field is one octet.
    pub const LEN_MAX: usize = u8::MAX as usize;

    /// Wrap `bytes`, refusing more than [`Self::LEN_MAX`] octets.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Self, ShortStrTooLong> {
        let bytes = bytes.into();
        if bytes.len() > Self::LEN_MAX {
            return Err(ShortStrTooLong { len: bytes.len() });
        }
        Ok(ShortStr(bytes))
    }

    /// For names known at compile time, such as `x-delivery-count`.
    ///
    /// Panics if `s` is longer than 255 octets (a programming error).
    pub fn from_static(s: &'static str) -> Self {
        assert!(s.len() <= Self::LEN_MAX, "static short string too long");
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    /// Copy octets read after a u8 length, which therefore fit.
    pub(crate) fn from_wire(raw: &[u8]) -> Self {
        debug_assert!(raw.len() <= Self::LEN_MAX);
        ShortStr(Bytes::copy_from_slice(raw))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The content as text, or `None` if it is not UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Append the wire form: length octet, then content.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // `new` and `from_static` keep the length within one octet.
        let len = u8::try_from(self.0.len()).expect("ShortStr invariant: len <= 255");
        out.push(len);
        out.extend_from_slice(&self.0);
    }
}

impl TryFrom<&str> for ShortStr {
    type Error = ShortStrTooLong;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        ShortStr::new(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}
