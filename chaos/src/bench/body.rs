//! The message body `warren-bench` publishes: a fixed 24-byte header (producer id, sequence
//! number, send time) padded to the requested size.
//!
//! The header is big-endian, as PerfTest writes its own, so a body can be read by eye in a
//! packet capture. Decoding never panics: a body from somewhere else (a message left in the
//! queue by another client) is reported as `None`, not trusted.

/// Bytes at the start of every body that carry the header.
pub const HEADER_SIZE: usize = 24;

/// What a producer stamps into each body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub producer_id: u64,
    pub seq: u64,
    /// Nanoseconds since the tool started, from the monotonic clock.
    pub sent_ns: u64,
}

impl Header {
    /// Writes the header into the first `HEADER_SIZE` bytes of `body`.
    pub fn write(&self, body: &mut [u8]) {
        assert!(body.len() >= HEADER_SIZE, "body shorter than its header");
        body[0..8].copy_from_slice(&self.producer_id.to_be_bytes());
        body[8..16].copy_from_slice(&self.seq.to_be_bytes());
        body[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads the header of a body; `None` if the body is too short to hold one.
    pub fn read(body: &[u8]) -> Option<Header> {
        let field = |at: usize| -> Option<u64> {
            let bytes: [u8; 8] = body.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        };
        Some(Header {
            producer_id: field(0)?,
            seq: field(8)?,
            sent_ns: field(16)?,
        })
    }
}

/// A zeroed body of `size_bytes` (at least the header), to be stamped per publish.
pub fn new_body(size_bytes: usize) -> Vec<u8> {
    vec![0u8; size_bytes.max(HEADER_SIZE)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_keeps_the_padding() {
        let mut body = new_body(1000);
        let header = Header {
            producer_id: 3,
            seq: u64::MAX - 1,
            sent_ns: 123_456_789,
        };
        header.write(&mut body);
        assert_eq!(body.len(), 1000);
        assert_eq!(Header::read(&body), Some(header));
        assert!(body[HEADER_SIZE..].iter().all(|&b| b == 0));
    }

    #[test]
    fn short_bodies_have_no_header() {
        assert_eq!(Header::read(b"hello"), None);
        assert_eq!(Header::read(&[0u8; HEADER_SIZE - 1]), None);
        assert_eq!(new_body(1).len(), HEADER_SIZE);
    }
}
