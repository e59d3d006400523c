//! On-disk record framing for the Raft segment log.
//!
//! Every record is laid out as:
//!
//! ```text
//! [format version: u8][payload length: u32 LE][crc32c(payload): u32 LE][postcard payload]
//! ```
//!
//! The CRC covers only the payload; the length is implicitly validated because a wrong length
//! yields a wrong payload slice and therefore (with overwhelming probability) a CRC mismatch, or a
//! short read. Decoding never panics on arbitrary bytes: every failure is a typed
//! [`RecordError`], so the log opener can tell a torn tail (expected after a crash during a
//! write) from real corruption (refuse to start).

use serde::{Deserialize, Serialize};

use super::types::{Entry, LogId, Vote};

/// Current record format version.
pub const FORMAT_VERSION: u8 = 1;
/// Size of the fixed record header: version + length + crc.
pub const HEADER_LEN: usize = 1 + 4 + 4;
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
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
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
    let header: &[u8; HEADER_LEN] = match buf.get(..HEADER_LEN).and_then(|h| h.try_into().ok()) {
        Some(h) => h,
        None => {
            return Err(RecordError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            })
        }
    };
    let [version, l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    if version != FORMAT_VERSION {
        return Err(RecordError::UnknownVersion(version));
    }
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len > MAX_PAYLOAD_LEN {
        return Err(RecordError::TooLarge(len));
    }
    let stored = u32::from_le_bytes([c0, c1, c2, c3]);
    let total = HEADER_LEN + len;
    let payload = match buf.get(HEADER_LEN..total) {
        Some(p) => p,
        None => {
            return Err(RecordError::Truncated {
                needed: total,
                available: buf.len(),
            })
        }
    };
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        return Err(RecordError::BadCrc { stored, computed });
    }
    let record =
        postcard::from_bytes(payload).map_err(|e| RecordError::Malformed(e.to_string()))?;
    Ok((record, total))
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
    fn bit_flip_detected() {
        let rec = sample_records().remove(0);
        let bytes = encode(&rec).expect("encode");
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[byte] ^= 1 << bit;
                // Any outcome except a successful decode of a *different* record is acceptable;
                // a flip in the payload or crc must be caught as BadCrc.
                let res = decode(&b);
                if byte >= 5 {
                    assert!(
                        matches!(res, Err(RecordError::BadCrc { .. })),
                        "flip at {byte}:{bit} gave {res:?}"
                    );
                } else {
                    assert!(res.is_err(), "flip at {byte}:{bit} decoded: {res:?}");
                }
            }
        }
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
