//! Basic-class content-header properties: decode, encode, and edit in place.
//!
//! The broker keeps a message's properties as the raw octets the publisher
//! sent (`ContentHeader::properties`: flags words, then the property list)
//! and hands them to consumers unchanged. This module reads them for routing
//! and expiry, and edits the headers table on delivery (`x-delivery-count`,
//! `x-death`) without touching any other octet: see [`set_header`].
//!
//! Wire form (AMQP 0-9-1 §4.2.6.1): one or more u16 flags words, where bit 0
//! of a word says another word follows; property `i` (0-based, in the order
//! of the fields below) is present when bit `15 - i` of the first word is
//! set. Present values follow in that order; absent ones take no space.
//!
//! Basic has 14 properties, so bit 1 of the first word and every bit but the
//! continuation bit of later words name properties that do not exist; they
//! are refused. Later words that carry no property are allowed (the spec
//! permits them) and counted, so that `encode` reproduces the input octets.
//! With that, and the boolean caveat in `field_table`, every input that
//! decodes is written back octet for octet.

use super::field_table::{FieldTable, FieldTableError, FieldValue};
use super::short_str::{ShortStr, ShortStrTooLong};
use super::wire::{Reader, Truncated};
use bytes::Bytes;

/// Flag bit of property index `i` in the first flags word.
const fn flag(i: u32) -> u16 {
    1 << (15 - i)
}

const CONTENT_TYPE: u16 = flag(0);
const CONTENT_ENCODING: u16 = flag(1);
const HEADERS: u16 = flag(2);
const DELIVERY_MODE: u16 = flag(3);
const PRIORITY: u16 = flag(4);
const CORRELATION_ID: u16 = flag(5);
const REPLY_TO: u16 = flag(6);
const EXPIRATION: u16 = flag(7);
const MESSAGE_ID: u16 = flag(8);
const TIMESTAMP: u16 = flag(9);
const TYPE: u16 = flag(10);
const USER_ID: u16 = flag(11);
const APP_ID: u16 = flag(12);
const CLUSTER_ID: u16 = flag(13);
/// Bit 0 of every flags word: another flags word follows.
const CONTINUATION: u16 = 1;
/// Bits of the first word that name no basic property.
const UNKNOWN_FIRST: u16 = !(0xFFFC | CONTINUATION);

/// Why properties did not decode or could not be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesError {
    #[error(transparent)]
    Truncated(#[from] Truncated),
    /// A flags word sets a bit that names no basic property.
    #[error("property flags word {word} sets unknown bits {bits:#06x}")]
    UnknownFlags { word: usize, bits: u16 },
    /// The headers table did not decode.
    #[error("headers: {0}")]
    Headers(#[from] FieldTableError),
    /// Octets left after the last property the flags announce.
    #[error("{0} octets after the last property")]
    TrailingBytes(usize),
    /// A header name given to [`set_header`] is longer than a short string.
    #[error("header name: {0}")]
    NameTooLong(#[from] ShortStrTooLong),
    /// The edited headers table would not fit its u32 length.
    #[error("headers table exceeds u32::MAX octets")]
    HeadersTooLong,
    /// `expiration` is not a whole, non-negative number of milliseconds.
    #[error("expiration {0:?} is not a number of milliseconds")]
    InvalidExpiration(ShortStr),
}

/// The 14 properties of the basic class, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    /// 1 = transient, 2 = persistent.
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    /// Per-message TTL in milliseconds, as decimal text; see
    /// [`BasicProperties::expiration_ms`].
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// The `type` property.
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    pub cluster_id: Option<ShortStr>,
    /// Flags words after the first that carry no property. Always 0 for
    /// properties built here; kept only so a decoded input re-encodes to
    /// the same octets.
    pub empty_flag_words: u32,
}

/// Where the headers table sits in a raw property list.
#[derive(Debug, Clone, Copy)]
struct HeadersAt {
    /// Offset of the table's u32 length, or where the table would go.
    start: usize,
    /// Offset just after the table; equals `start` when there is none.
    end: usize,
}

impl BasicProperties {
    /// Decode flags words and property list; all of `raw` must be used.
    pub fn decode(raw: &[u8]) -> Result<BasicProperties, PropertiesError> {
        decode_with_layout(raw).map(|(props, _)| props)
    }

    /// The wire form: flags words, then the present properties in order.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        Bytes::from(out)
    }

    /// Append the wire form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let more = if self.empty_flag_words > 0 {
            CONTINUATION
        } else {
            0
        };
        out.extend_from_slice(&(self.flags() | more).to_be_bytes());
        for i in 0..self.empty_flag_words {
            let more = if i + 1 < self.empty_flag_words {
                CONTINUATION
            } else {
                0
            };
            out.extend_from_slice(&more.to_be_bytes());
        }
        let short = |out: &mut Vec<u8>, s: &Option<ShortStr>| {
            if let Some(s) = s {
                s.encode(out);
            }
        };
        short(out, &self.content_type);
        short(out, &self.content_encoding);
        if let Some(headers) = &self.headers {
            headers.encode(out);
        }
        out.extend(self.delivery_mode);
        out.extend(self.priority);
        short(out, &self.correlation_id);
        short(out, &self.reply_to);
        short(out, &self.expiration);
        short(out, &self.message_id);
        if let Some(ts) = self.timestamp {
            out.extend_from_slice(&ts.to_be_bytes());
        }
        short(out, &self.kind);
        short(out, &self.user_id);
        short(out, &self.app_id);
        short(out, &self.cluster_id);
    }

    /// The first flags word, without the continuation bit.
    fn flags(&self) -> u16 {
        let bit = |present: bool, bit: u16| if present { bit } else { 0 };
        bit(self.content_type.is_some(), CONTENT_TYPE)
            | bit(self.content_encoding.is_some(), CONTENT_ENCODING)
            | bit(self.headers.is_some(), HEADERS)
            | bit(self.delivery_mode.is_some(), DELIVERY_MODE)
            | bit(self.priority.is_some(), PRIORITY)
            | bit(self.correlation_id.is_some(), CORRELATION_ID)
            | bit(self.reply_to.is_some(), REPLY_TO)
            | bit(self.expiration.is_some(), EXPIRATION)
            | bit(self.message_id.is_some(), MESSAGE_ID)
            | bit(self.timestamp.is_some(), TIMESTAMP)
            | bit(self.kind.is_some(), TYPE)
            | bit(self.user_id.is_some(), USER_ID)
            | bit(self.app_id.is_some(), APP_ID)
            | bit(self.cluster_id.is_some(), CLUSTER_ID)
    }

    pub fn headers(&self) -> Option<&FieldTable> {
        self.headers.as_ref()
    }

    /// The raw `expiration` text; see [`Self::expiration_ms`].
    pub fn expiration(&self) -> Option<&ShortStr> {
        self.expiration.as_ref()
    }

    /// The per-message TTL in milliseconds.
    ///
    /// `Ok(None)` when the property is absent. `Err(InvalidExpiration)` when
    /// it is not a whole, non-negative decimal number (an optional `+`, then
    /// digits, fitting u64): RabbitMQ refuses such a publish with
    /// PRECONDITION_FAILED rather than ignoring the TTL, so the caller must
    /// be able to tell the two apart.
    pub fn expiration_ms(&self) -> Result<Option<u64>, PropertiesError> {
        let Some(text) = &self.expiration else {
            return Ok(None);
        };
        let invalid = || PropertiesError::InvalidExpiration(text.clone());
        let ms = text.to_str().ok_or_else(invalid)?;
        ms.parse::<u64>().map(Some).map_err(|_| invalid())
    }

    pub fn delivery_mode(&self) -> Option<u8> {
        self.delivery_mode
    }

    /// The publisher's claimed user; RabbitMQ checks it against the
    /// authenticated user.
    pub fn user_id(&self) -> Option<&ShortStr> {
        self.user_id.as_ref()
    }
}

/// Read the flags words: the first word, and how many empty words follow.
fn read_flags(r: &mut Reader<'_>) -> Result<(u16, u32), PropertiesError> {
    let first = r.u16("property flags")?;
    if first & UNKNOWN_FIRST != 0 {
        let bits = first & UNKNOWN_FIRST;
        return Err(PropertiesError::UnknownFlags { word: 0, bits });
    }
    let mut more = first & CONTINUATION != 0;
    let mut n_empty: u32 = 0;
    // Bounded by the input: each round consumes two octets.
    while more {
        let word = r.u16("property flags")?;
        if word & !CONTINUATION != 0 {
            let bits = word & !CONTINUATION;
            let word = n_empty as usize + 1;
            return Err(PropertiesError::UnknownFlags { word, bits });
        }
        more = word & CONTINUATION != 0;
        n_empty = n_empty.saturating_add(1);
    }
    Ok((first & !CONTINUATION, n_empty))
}

/// Decode, and note where the headers table is (or would go).
fn decode_with_layout(raw: &[u8]) -> Result<(BasicProperties, HeadersAt), PropertiesError> {
    let mut r = Reader::new(raw);
    let (flags, empty_flag_words) = read_flags(&mut r)?;
    let has = |bit: u16| flags & bit != 0;
    let short = |r: &mut Reader<'_>, bit: u16, what| -> Result<_, Truncated> {
        Ok(match has(bit) {
            true => Some(ShortStr::from_wire(r.short_bytes(what)?)),
            false => None,
        })
    };
    let content_type = short(&mut r, CONTENT_TYPE, "content-type")?;
    let content_encoding = short(&mut r, CONTENT_ENCODING, "content-encoding")?;
    let start = r.position();
    let headers = match has(HEADERS) {
        true => Some(FieldTable::read(&mut r, 1)?),
        false => None,
    };
    let at = HeadersAt {
        start,
        end: r.position(),
    };
    let octet = |r: &mut Reader<'_>, bit: u16, what| -> Result<_, Truncated> {
        has(bit).then(|| r.u8(what)).transpose()
    };
    let props = BasicProperties {
        content_type,
        content_encoding,
        headers,
        delivery_mode: octet(&mut r, DELIVERY_MODE, "delivery-mode")?,
        priority: octet(&mut r, PRIORITY, "priority")?,
        correlation_id: short(&mut r, CORRELATION_ID, "correlation-id")?,
        reply_to: short(&mut r, REPLY_TO, "reply-to")?,
        expiration: short(&mut r, EXPIRATION, "expiration")?,
        message_id: short(&mut r, MESSAGE_ID, "message-id")?,
        timestamp: has(TIMESTAMP).then(|| r.u64("timestamp")).transpose()?,
        kind: short(&mut r, TYPE, "type")?,
        user_id: short(&mut r, USER_ID, "user-id")?,
        app_id: short(&mut r, APP_ID, "app-id")?,
        cluster_id: short(&mut r, CLUSTER_ID, "cluster-id")?,
        empty_flag_words,
    };
    if !r.is_empty() {
        return Err(PropertiesError::TrailingBytes(r.rest().len()));
    }
    Ok((props, at))
}

/// Set header `name` to `value` in raw properties, changing nothing else.
///
/// Replaces the value of the first header called `name` where it stands, or
/// appends the header to the table; without a headers table, adds one (and
/// its flag bit). Every other octet is copied, not re-encoded, so fields this
/// codec would normalise (a boolean octet of 2, say) survive too. `raw` must
/// decode as [`BasicProperties`].
pub fn set_header(raw: &[u8], name: &str, value: FieldValue) -> Result<Bytes, PropertiesError> {
    let name = ShortStr::try_from(name)?;
    let (props, at) = decode_with_layout(raw)?;
    let mut out = Vec::with_capacity(raw.len() + name.len() + 16);
    if props.headers.is_none() {
        debug_assert_eq!(at.start, at.end);
        // Decoding read the first flags word, so `raw` has two octets.
        let first = u16::from_be_bytes([raw[0], raw[1]]) | HEADERS;
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&raw[2..at.start]);
        FieldTable(vec![(name, value)]).encode(&mut out);
    } else {
        out.extend_from_slice(&raw[..at.start]);
        // The table decoded, so it holds its u32 length and then the body.
        let body = splice_field(&raw[at.start + 4..at.end], &name, &value)?;
        let len = u32::try_from(body.len()).map_err(|_| PropertiesError::HeadersTooLong)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
    }
    out.extend_from_slice(&raw[at.end..]);
    debug_assert!(BasicProperties::decode(&out).is_ok());
    Ok(Bytes::from(out))
}

/// A table body with the first field called `name` given `value`, or with
/// the field appended; the other fields' octets are copied as they are.
fn splice_field(
    body: &[u8],
    name: &ShortStr,
    value: &FieldValue,
) -> Result<Vec<u8>, PropertiesError> {
    let mut out = Vec::with_capacity(body.len() + name.len() + 16);
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let field_name = r.short_bytes("field name")?;
        let value_start = r.position();
        FieldValue::read(&mut r, 1)?;
        if field_name == name.as_bytes() {
            out.extend_from_slice(&body[..value_start]);
            value.encode(&mut out);
            out.extend_from_slice(r.rest());
            return Ok(out);
        }
    }
    out.extend_from_slice(body);
    name.encode(&mut out);
    value.encode(&mut out);
    Ok(out)
}

#[cfg(test)]
#[path = "properties_tests.rs"]
mod tests;
