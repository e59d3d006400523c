//! The snapshot format: one framed record, written and read as a stream so that neither side
//! holds a whole snapshot (a backlog's messages) in one buffer.
//!
//! ```text
//! header (21 bytes): [version u8 = 5][payload_len u64 LE][state_len u64 LE][crc32c u32 LE]
//! payload:           [state: postcard, state_len bytes]
//!                    ([msg_id u64 LE][record_len u64 LE][record]
//!                     [body_len u64 LE][body])*
//! ```
//! The CRC32C covers the payload. The header is written last (the lengths and the checksum
//! are known only once the payload went through), so a file cut short before its header was
//! patched has a zero version and is refused. A reader hands each message (record and body)
//! to its caller as it reads it; they are provisional until [`read`] returns `Ok` (checksum
//! and lengths verified). What a record holds is the caller's (`message_record.rs`). The format is a compatibility boundary (docs/formats.md): a change bumps
//! [`SNAPSHOT_FORMAT_VERSION`].

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// 2: proposer sessions joined the snapshot. 3: streamed; bodies after the state, one record
/// each; 64-bit lengths. 4: whole messages (record and body) after the state, none in it;
/// the state's encoding changed too (consumers numbered, channel limits; docs/formats.md).
/// 5: the state ends with the cluster's machine version (`envelope.rs`). 6: vhosts, users
/// and permissions in the state (machine version 2). The format follows the cluster's
/// machine version, so members of an older build install what a newer leader sends while
/// the cluster has not moved up: 5 is still written at machine version 1, and read.
/// 7: the state is followed by its extras, what machine version 4 added (consumer
/// priorities, `broker/state_extras.rs`); 6 is still written at machine versions 2 and 3.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 7;
/// The oldest format this build reads.
pub const SNAPSHOT_FORMAT_OLDEST: u8 = 5;
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

/// Decodes a state of postcard bytes that must be wholly used.
pub fn decode_exact<S: DeserializeOwned>(bytes: &[u8]) -> io::Result<S> {
    let (state, rest): (S, _) =
        postcard::take_from_bytes(bytes).map_err(|e| bad(&e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad("state shorter than its length"));
    }
    Ok(state)
}

/// Writes `state` and then every message of `messages` (msg id, record, body) to `out` at
/// its current position, and patches the header in. Returns `out`, positioned at the end;
/// the caller syncs it.
pub fn write<W, S, R, B>(
    mut out: W,
    version: u8,
    state: &S,
    messages: impl IntoIterator<Item = io::Result<(u64, R, B)>>,
) -> io::Result<W>
where
    W: Write + Seek,
    S: Serialize,
    R: AsRef<[u8]>,
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
    for item in messages {
        let (msg_id, record, body) = item?;
        w.write_all(&msg_id.to_le_bytes())?;
        for part in [record.as_ref(), body.as_ref()] {
            w.write_all(&(part.len() as u64).to_le_bytes())?;
            w.write_all(part)?;
        }
    }
    let sum = w.into_inner().map_err(|e| e.into_error())?;
    let (mut out, payload_len, crc) = (sum.inner, sum.len, sum.crc);
    let mut header = [0u8; HEADER_LEN];
    header[0] = version;
    header[1..9].copy_from_slice(&payload_len.to_le_bytes());
    header[9..17].copy_from_slice(&state_len.to_le_bytes());
    header[17..21].copy_from_slice(&crc.to_le_bytes());
    out.seek(SeekFrom::Start(start))?;
    out.write_all(&header)?;
    out.seek(SeekFrom::End(0))?;
    Ok(out)
}

/// Reads a snapshot from `input`: returns its state, decoded by `decode` from the format
/// version and the state's bytes, once the whole payload was read and its checksum matched.
/// Every message (id, record, body) is handed to `message` as it is read (provisional until
/// `Ok`).
pub fn read<R, S>(
    mut input: R,
    decode: impl FnOnce(u8, &[u8]) -> io::Result<S>,
    mut message: impl FnMut(u64, Vec<u8>, Vec<u8>) -> io::Result<()>,
) -> io::Result<S>
where
    R: Read,
{
    let mut header = [0u8; HEADER_LEN];
    input
        .read_exact(&mut header)
        .map_err(|_| bad("shorter than its header"))?;
    let version = header[0];
    if !(SNAPSHOT_FORMAT_OLDEST..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
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
    let state = decode(version, &state_bytes)?;
    drop(state_bytes);
    let mut remaining = payload_len - state_len;
    while remaining > 0 {
        let msg_id = read_u64(&mut input, &mut remaining, &mut crc)?;
        let record = read_part(&mut input, &mut remaining, &mut crc)?;
        let body = read_part(&mut input, &mut remaining, &mut crc)?;
        message(msg_id, record, body)?;
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

/// Reads one little-endian u64 of the `remaining` payload.
fn read_u64(input: &mut impl Read, remaining: &mut u64, crc: &mut u32) -> io::Result<u64> {
    if *remaining < 8 {
        return Err(bad("message cut short"));
    }
    let bytes = read_n(input, 8, crc)?;
    *remaining -= 8;
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| bad("message cut short"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Reads one `[len u64 LE][len bytes]` part of a message out of the `remaining` payload.
fn read_part(input: &mut impl Read, remaining: &mut u64, crc: &mut u32) -> io::Result<Vec<u8>> {
    let len = read_u64(input, remaining, crc)?;
    if len > *remaining {
        return Err(bad("message longer than the payload"));
    }
    let part = read_n(input, len, crc)?;
    *remaining -= len;
    Ok(part)
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

    fn exact(_: u8, bytes: &[u8]) -> io::Result<(u64, String)> {
        decode_exact(bytes)
    }

    fn encode(state: &(u64, String), messages: &[(u64, &[u8], &[u8])]) -> Vec<u8> {
        let items = messages.iter().map(|(id, r, b)| Ok((*id, *r, *b)));
        write(
            Cursor::new(Vec::new()),
            SNAPSHOT_FORMAT_VERSION,
            state,
            items,
        )
        .expect("write")
        .into_inner()
    }

    #[test]
    fn a_snapshot_round_trips_with_its_messages_in_order() {
        let state = (7u64, "meta".to_string());
        let big = [0u8; 70_000];
        let messages: [(u64, &[u8], &[u8]); 3] =
            [(1, b"r1", b"one"), (5, b"", b""), (9, b"record", &big)];
        let bytes = encode(&state, &messages);
        assert_eq!(bytes[0], SNAPSHOT_FORMAT_VERSION);
        let mut seen = Vec::new();
        let back: (u64, String) = read(Cursor::new(&bytes), exact, |id, r, b| {
            seen.push((id, r, b.len()));
            Ok(())
        })
        .expect("read");
        assert_eq!(back, state);
        let expected = vec![
            (1, b"r1".to_vec(), 3),
            (5, Vec::new(), 0),
            (9, b"record".to_vec(), 70_000),
        ];
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_flipped_bit_a_short_file_or_a_trailing_byte_is_refused() {
        let bytes = encode(&(1, "s".into()), &[(1, b"rec", b"body")]);
        let decode = |b: &[u8]| read::<_, (u64, String)>(Cursor::new(b), exact, |_, _, _| Ok(()));
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
