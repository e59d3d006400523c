//! The chaos workload's message body: who published it (`pid`), which attempt (`seq`), which
//! logical message (`mid`), and a CRC32C over all of it, so a delivery identifies itself and a
//! corrupted body is caught by the consumer.
//!
//! Layout (big-endian): `pid u64 | seq u64 | mid u64 | crc u32 | payload`. The CRC covers the
//! three ids and the payload, so a flipped bit anywhere is seen. The payload is derived from
//! `(pid, seq)`, not zeros, so a body swapped for another one's of the same length does not
//! pass either. Decoding never panics: a body from elsewhere is reported, not trusted.

/// Bytes before the payload: three ids and the CRC.
pub const HEADER_SIZE: usize = 28;

/// The ids a body carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyIds {
    pub pid: u64,
    pub seq: u64,
    pub mid: u64,
}

/// What a consumer learns from a body: its ids (zeros when too short to hold them) and whether
/// the CRC checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub ids: BodyIds,
    pub body_ok: bool,
}

/// Builds a body of `size_bytes` (at least the header) for one publish attempt.
pub fn encode(ids: BodyIds, size_bytes: usize) -> Vec<u8> {
    let mut body = vec![0u8; size_bytes.max(HEADER_SIZE)];
    body[0..8].copy_from_slice(&ids.pid.to_be_bytes());
    body[8..16].copy_from_slice(&ids.seq.to_be_bytes());
    body[16..24].copy_from_slice(&ids.mid.to_be_bytes());
    fill_payload(&mut body[HEADER_SIZE..], ids);
    let crc = crc_of(&body);
    body[24..28].copy_from_slice(&crc.to_be_bytes());
    body
}

/// Reads a body's ids and checks its CRC.
pub fn decode(body: &[u8]) -> Decoded {
    let field = |at: usize| -> Option<u64> {
        let bytes: [u8; 8] = body.get(at..at + 8)?.try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    };
    let ids = BodyIds {
        pid: field(0).unwrap_or(0),
        seq: field(8).unwrap_or(0),
        mid: field(16).unwrap_or(0),
    };
    let stored = body
        .get(24..28)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes);
    let body_ok = stored.is_some_and(|crc| crc == crc_of(body));
    Decoded { ids, body_ok }
}

/// CRC32C of the ids and the payload (the CRC field itself is skipped).
fn crc_of(body: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&body[0..24]);
    crc32c::crc32c_append(crc, &body[HEADER_SIZE..])
}

/// A cheap xorshift stream seeded by the ids: different bodies differ byte for byte.
fn fill_payload(payload: &mut [u8], ids: BodyIds) {
    let mut state = ids.pid.rotate_left(32) ^ ids.seq ^ 0x9E37_79B9_7F4A_7C15;
    for byte in payload {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: BodyIds = BodyIds {
        pid: 3,
        seq: 99,
        mid: 42,
    };

    #[test]
    fn a_body_round_trips() {
        let body = encode(IDS, 256);
        assert_eq!(body.len(), 256);
        assert_eq!(
            decode(&body),
            Decoded {
                ids: IDS,
                body_ok: true
            }
        );
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_the_crc() {
        let body = encode(IDS, 64);
        for at in 0..body.len() {
            let mut bad = body.clone();
            bad[at] ^= 0x10;
            assert!(!decode(&bad).body_ok, "flip at byte {at} passed");
        }
    }

    #[test]
    fn short_or_foreign_bodies_are_not_ok() {
        assert!(!decode(b"hello").body_ok);
        assert!(!decode(&[0u8; HEADER_SIZE - 1]).body_ok);
        assert_eq!(encode(IDS, 1).len(), HEADER_SIZE);
        assert!(decode(&encode(IDS, 1)).body_ok);
    }
}
