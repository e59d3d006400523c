//! On-disk record framing for the Raft segment log.
//!
//! Every record is laid out as:
//!
//! ```text
//! [format version: u8 = 2][payload length: u32 LE][crc32c(payload): u32 LE]
//! [crc32c(the 9 bytes before): u32 LE][postcard payload]
//! ```
//!
//! The header has its own CRC so that a flipped bit in the length is never mistaken for a
//! torn write: with only the payload's CRC, a length flipped upwards in the last segment points
//! past the end of the file, which looks exactly like a record cut short by a crash, and the
//! opener would drop it and every acknowledged record after it as a "torn tail". Now a record
//! counts as torn only when its header is cut short or intact with the payload cut short; any
//! other decode failure is corruption. Decoding never panics on arbitrary bytes: every failure
//! is a typed [`RecordError`], so the log opener can tell a torn tail (expected after a crash
//! during a write) from real corruption (refuse to start).
//!
//! Version 1 (no header CRC) is still read, so a log written before it opens.

use serde::{Deserialize, Serialize};

use super::types::{Entry, LogId, Vote};

/// Current record format version.
pub const FORMAT_VERSION: u8 = 2;
/// Size of the fixed record header: version + length + payload crc + header crc.
pub const HEADER_LEN: usize = 1 + 4 + 4 + 4;
/// Version 1's header: no header crc.
const V1_HEADER_LEN: usize = 1 + 4 + 4;
/// Upper bound on a single record's payload; anything larger is treated as corruption rather
/// than an allocation request.
pub const MAX_PAYLOAD_LEN: usize = 256 * 1024 * 1024;

/// A logical mutation of the Raft log storage. Replaying all records in order rebuilds the
/// in-memory state. **Variants are only ever appended** (postcard encodes the variant index),
/// never reordered or removed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum LogRecord {
    /// Entries appended to the log (consecutive indexes).
    Append(Vec<Entry>),
    /// The node's current vote.
    Vote(Vote),
    /// Delete every entry with index greater than the given log id (`None`: delete all).
    TruncateAfter(Option<LogId>),
    /// Delete every entry up to and including the given log id.
    Purge(LogId),
    /// The last known committed log id.
    Committed(Option<LogId>),
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The buffer ends before the record does: a torn/short write at the log tail.
    #[error("truncated record: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed to finish the record (header + payload).
        needed: usize,
        /// Bytes actually available.
        available: usize,
    },
    /// The record declares a format version this build does not understand.
    #[error("unknown record format version {0}")]
    UnknownVersion(u8),
    /// The declared payload length is implausibly large.
    #[error("record payload length {0} exceeds limit")]
    TooLarge(usize),
    /// The header's own checksum does not match: a flipped bit in the version, length or
    /// payload crc.
    #[error("record header crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadHeaderCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the header's first 9 bytes.
        computed: u32,
    },
    /// The payload's checksum does not match the header.
    #[error("record crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the payload bytes.
        computed: u32,
    },
    /// The checksum matched but the payload is not a valid `LogRecord`.
    #[error("record payload malformed: {0}")]
    Malformed(String),
}

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// postcard serialization failed.
    #[error("record serialization failed: {0}")]
    Serialize(#[from] postcard::Error),
    /// Payload is larger than [`MAX_PAYLOAD_LEN`].
    #[error("record payload length {0} exceeds limit")]
    TooLarge(usize),
}

impl From<EncodeError> for std::io::Error {
    fn from(e: EncodeError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

/// Append the framed encoding of `record` to `out`.
pub fn encode_into(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let payload = postcard::to_stdvec(record)?;
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(EncodeError::TooLarge(payload.len()));
    }
    // Checked above: payload.len() <= MAX_PAYLOAD_LEN < u32::MAX.
    let len = payload.len() as u32;
    out.reserve(HEADER_LEN + payload.len());
    let start = out.len();
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// Encode `record` into a freshly allocated framed buffer.
pub fn encode(record: &LogRecord) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(record, &mut out)?;
    Ok(out)
}

/// Decode the record at the start of `buf`, returning it and the number of bytes it occupies.
pub fn decode(buf: &[u8]) -> Result<(LogRecord, usize), RecordError> {
    let header_len = match buf.first() {
        Some(1) => V1_HEADER_LEN,
        Some(&FORMAT_VERSION) => HEADER_LEN,
        Some(&v) => return Err(RecordError::UnknownVersion(v)),
        None => 0,
    };
    let Some(header) = buf.get(..header_len).filter(|_| header_len > 0) else {
        return Err(RecordError::Truncated {
            needed: header_len.max(HEADER_LEN),
            available: buf.len(),
        });
    };
    if header_len == HEADER_LEN {
        let stored = le_u32(&header[9..13]);
        let computed = crc32c::crc32c(&header[..9]);
        if stored != computed {
            return Err(RecordError::BadHeaderCrc { stored, computed });
        }
    }
    let len = le_u32(&header[1..5]) as usize;
    if len > MAX_PAYLOAD_LEN {
        return Err(RecordError::TooLarge(len));
    }
    let stored = le_u32(&header[5..9]);
    let total = header_len + len;
    let Some(payload) = buf.get(header_len..total) else {
        return Err(RecordError::Truncated {
            needed: total,
            available: buf.len(),
        });
    };
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        return Err(RecordError::BadCrc { stored, computed });
    }
    let record =
        postcard::from_bytes(payload).map_err(|e| RecordError::Malformed(e.to_string()))?;
    Ok((record, total))
}

/// The little-endian u32 in `bytes` (exactly four, sliced from a checked header).
fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderIdExt;
    use openraft::{BasicNode, Membership};

    use super::*;
    use crate::raft::types::{Request, TypeConfig};

    fn log_id(term: u64, node: u64, index: u64) -> LogId {
        LogId::new(
            <openraft::alias::LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(term, node),
            index,
        )
    }

    fn sample_records() -> Vec<LogRecord> {
        let normal = Entry::new_normal(log_id(2, 1, 3), Request(vec![1, 2, 3]));
        let membership = Membership::<u64, BasicNode>::new_with_defaults(
            vec![[1u64, 2, 3].into_iter().collect()],
            [],
        );
        vec![
            LogRecord::Append(vec![
                Entry::new_blank(log_id(1, 1, 1)),
                Entry::new_membership(log_id(1, 1, 2), membership),
                normal,
            ]),
            LogRecord::Append(vec![]),
            LogRecord::Vote(Vote::new(3, 2)),
            LogRecord::Vote(Vote::new_committed(4, 1)),
            LogRecord::TruncateAfter(None),
            LogRecord::TruncateAfter(Some(log_id(1, 1, 2))),
            LogRecord::Purge(log_id(1, 1, 1)),
            LogRecord::Committed(None),
            LogRecord::Committed(Some(log_id(2, 1, 3))),
        ]
    }

    #[test]
    fn record_round_trip() {
        for rec in sample_records() {
            let bytes = encode(&rec).expect("encode");
            let (decoded, used) = decode(&bytes).expect("decode");
            assert_eq!(decoded, rec);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn record_stream_round_trip() {
        let recs = sample_records();
        let mut buf = Vec::new();
        for r in &recs {
            encode_into(r, &mut buf).expect("encode");
        }
        let mut off = 0;
        let mut out = Vec::new();
        while off < buf.len() {
            let (r, n) = decode(&buf[off..]).expect("decode");
            out.push(r);
            off += n;
        }
        assert_eq!(out, recs);
    }

    #[test]
    fn truncated_tail_detected() {
        for rec in sample_records() {
            let bytes = encode(&rec).expect("encode");
            for cut in 0..bytes.len() {
                match decode(&bytes[..cut]) {
                    Err(RecordError::Truncated { .. }) => {}
                    other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn bit_flip_detected_and_never_taken_for_a_torn_write() {
        let rec = sample_records().remove(0);
        let bytes = encode(&rec).expect("encode");
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[byte] ^= 1 << bit;
                // A flip must be corruption, never `Truncated` (which the opener would cut
                // away as a torn tail, with every record after it).
                let res = decode(&b);
                let ok = match byte {
                    0 => matches!(res, Err(RecordError::UnknownVersion(_))),
                    1..=12 => matches!(res, Err(RecordError::BadHeaderCrc { .. })),
                    _ => matches!(res, Err(RecordError::BadCrc { .. })),
                };
                assert!(ok, "flip at {byte}:{bit} gave {res:?}");
            }
        }
    }

    #[test]
    fn version_1_records_are_still_read() {
        let rec = LogRecord::Committed(Some(log_id(3, 1, 9)));
        let payload = postcard::to_stdvec(&rec).expect("payload");
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v1.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        v1.extend_from_slice(&payload);
        assert_eq!(decode(&v1), Ok((rec, v1.len())));
    }

    #[test]
    fn unknown_version_rejected() {
        let mut bytes = encode(&LogRecord::Committed(None)).expect("encode");
        bytes[0] = 99;
        assert_eq!(decode(&bytes), Err(RecordError::UnknownVersion(99)));
    }

    #[test]
    fn oversized_length_rejected() {
        let mut bytes = encode(&LogRecord::Committed(None)).expect("encode");
        bytes[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        let header_crc = crc32c::crc32c(&bytes[..9]);
        bytes[9..13].copy_from_slice(&header_crc.to_le_bytes());
        assert_eq!(
            decode(&bytes),
            Err(RecordError::TooLarge(u32::MAX as usize))
        );
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic pseudo-random garbage, including a valid-looking header.
        let mut x: u32 = 0x1234_5678;
        for n in 0..2000usize {
            let len = n % 64;
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if let Some(b) = buf.first_mut() {
                *b = FORMAT_VERSION;
            }
            let _ = decode(&buf);
        }
    }
}
