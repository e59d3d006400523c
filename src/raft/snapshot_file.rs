//! The snapshot format: one framed record, written and read as a stream so that neither side
//! holds a whole snapshot (a backlog's bodies) in one buffer.
//!
//! ```text
//! header (21 bytes): [version u8 = 4][payload_len u64 LE][state_len u64 LE][crc32c u32 LE]
//! payload:           [state: postcard, state_len bytes]
//!                    ([msg_id u64 LE][body_len u64 LE][body, body_len bytes])*
//! ```
//! The CRC32C covers the payload. The header is written last (the lengths and the checksum
//! are known only once the payload went through), so a file cut short before its header was
//! patched has a zero version and is refused. A reader hands bodies to its caller as it
//! reads them; they are provisional until [`read`] returns `Ok` (checksum and lengths
//! verified). The format is a compatibility boundary (docs/formats.md): a change bumps
//! [`SNAPSHOT_FORMAT_VERSION`].

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// 2: proposer sessions joined the snapshot. 3: streamed; bodies after the state, one record
/// each; 64-bit lengths. 4: the state's encoding changed (consumers numbered; see
/// docs/formats.md).
pub const SNAPSHOT_FORMAT_VERSION: u8 = 4;
const HEADER_LEN: usize = 21;
/// The size of the write buffer between the encoder and the file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// A writer that counts and checksums every byte that passes through it.
struct Checksummed<W> {
    inner: W,
    len: u64,
    crc: u32,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"))
}

/// Writes `state` and then every body of `bodies` (msg id, bytes) to `out` at its current
/// position, and patches the header in. Returns `out`, positioned at the end; the caller
/// syncs it.
pub fn write<W, S, B>(
    mut out: W,
    state: &S,
    bodies: impl IntoIterator<Item = io::Result<(u64, B)>>,
) -> io::Result<W>
where
    W: Write + Seek,
    S: Serialize,
    B: AsRef<[u8]>,
{
    let start = out.stream_position()?;
    out.write_all(&[0u8; HEADER_LEN])?;
    let sum = Checksummed {
        inner: out,
        len: 0,
        crc: 0,
    };
    let mut w = BufWriter::with_capacity(WRITE_BUFFER_BYTES, sum);
    w = postcard::to_io(state, w).map_err(io::Error::other)?;
    w.flush()?;
    let state_len = w.get_ref().len;
    for item in bodies {
        let (msg_id, body) = item?;
        let body = body.as_ref();
        w.write_all(&msg_id.to_le_bytes())?;
        w.write_all(&(body.len() as u64).to_le_bytes())?;
        w.write_all(body)?;
    }
    let sum = w.into_inner().map_err(|e| e.into_error())?;
    let (mut out, payload_len, crc) = (sum.inner, sum.len, sum.crc);
    let mut header = [0u8; HEADER_LEN];
    header[0] = SNAPSHOT_FORMAT_VERSION;
    header[1..9].copy_from_slice(&payload_len.to_le_bytes());
    header[9..17].copy_from_slice(&state_len.to_le_bytes());
    header[17..21].copy_from_slice(&crc.to_le_bytes());
    out.seek(SeekFrom::Start(start))?;
    out.write_all(&header)?;
    out.seek(SeekFrom::End(0))?;
    Ok(out)
}

/// Reads a snapshot from `input`: returns its state once the whole payload was read and its
/// checksum matched. Every body is handed to `body` as it is read (provisional until `Ok`).
pub fn read<R, S>(
    mut input: R,
    mut body: impl FnMut(u64, Vec<u8>) -> io::Result<()>,
) -> io::Result<S>
where
    R: Read,
    S: DeserializeOwned,
{
    let mut header = [0u8; HEADER_LEN];
    input
        .read_exact(&mut header)
        .map_err(|_| bad("shorter than its header"))?;
    if header[0] != SNAPSHOT_FORMAT_VERSION {
        return Err(bad("unknown format version"));
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let (payload_len, state_len) = (u64_at(1), u64_at(9));
    let crc_expected = u32::from_le_bytes([header[17], header[18], header[19], header[20]]);
    if state_len > payload_len {
        return Err(bad("state longer than the payload"));
    }
    let mut crc = 0u32;
    let state_bytes = read_n(&mut input, state_len, &mut crc)?;
    let (state, rest): (S, _) =
        postcard::take_from_bytes(&state_bytes).map_err(|e| bad(&e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad("state shorter than its length"));
    }
    drop(state_bytes);
    let mut remaining = payload_len - state_len;
    while remaining > 0 {
        let head = read_n(&mut input, 16.min(remaining), &mut crc)?;
        let (Some(id), Some(len)) = (head.get(0..8), head.get(8..16)) else {
            return Err(bad("body record cut short"));
        };
        let msg_id = u64::from_le_bytes(id.try_into().map_err(|_| bad("msg id"))?);
        let len = u64::from_le_bytes(len.try_into().map_err(|_| bad("body length"))?);
        remaining -= 16;
        if len > remaining {
            return Err(bad("body longer than the payload"));
        }
        body(msg_id, read_n(&mut input, len, &mut crc)?)?;
        remaining -= len;
    }
    if crc != crc_expected {
        return Err(bad("checksum mismatch"));
    }
    let mut rest = [0u8; 1];
    if input.read(&mut rest)? != 0 {
        return Err(bad("bytes after the payload"));
    }
    Ok(state)
}

/// Reads exactly `n` bytes (growing the buffer as they come, so a corrupt length cannot
/// allocate more than the input holds) and adds them to `crc`.
fn read_n(input: &mut impl Read, n: u64, crc: &mut u32) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    input.by_ref().take(n).read_to_end(&mut buf)?;
    if buf.len() as u64 != n {
        return Err(bad("payload cut short"));
    }
    *crc = crc32c::crc32c_append(*crc, &buf);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn encode(state: &(u64, String), bodies: &[(u64, &[u8])]) -> Vec<u8> {
        let items = bodies.iter().map(|(id, b)| Ok((*id, *b)));
        write(Cursor::new(Vec::new()), state, items)
            .expect("write")
            .into_inner()
    }

    #[test]
    fn a_snapshot_round_trips_with_its_bodies_in_order() {
        let state = (7u64, "meta".to_string());
        let bytes = encode(&state, &[(1, b"one"), (5, b""), (9, &[0u8; 70_000])]);
        assert_eq!(bytes[0], SNAPSHOT_FORMAT_VERSION);
        let mut seen = Vec::new();
        let back: (u64, String) = read(Cursor::new(&bytes), |id, b| {
            seen.push((id, b.len()));
            Ok(())
        })
        .expect("read");
        assert_eq!(back, state);
        assert_eq!(seen, vec![(1, 3), (5, 0), (9, 70_000)]);
    }

    #[test]
    fn a_flipped_bit_a_short_file_or_a_trailing_byte_is_refused() {
        let bytes = encode(&(1, "s".into()), &[(1, b"body")]);
        let decode = |b: &[u8]| read::<_, (u64, String)>(Cursor::new(b), |_, _| Ok(()));
        assert!(decode(&bytes).is_ok());
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(decode(&flipped).is_err(), "flip at byte {i} accepted");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }
}
