//! Framing of the messages nodes send each other over TCP.
//!
//! ```text
//! [format version: u8][payload length: u32 LE][crc32c(payload): u32 LE][postcard payload]
//! ```
//!
//! The same layout as the Raft log's records (`raft::record`), so one habit covers disk and
//! wire. TCP already checksums segments, but weakly; the CRC catches what slips through and a
//! peer speaking another format. Every failure is a [`WireError`], never a panic: these bytes
//! come from the network (architecture invariant 5). The reader takes a size limit so the
//! handshake can refuse a large frame before anyone has proven they know the cookie.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::limits::CLUSTER_FRAME_MAX;

/// Current wire format version. A node refuses frames of any other version. 2: a snapshot
/// travels in chunks (`PeerRequest::SnapshotChunk` where 1 had the whole `FullSnapshot`).
/// 3: `ReadIndex`, asked by a node back from a silence (`raft/contact.rs`).
/// 4: `Admin` and `Definitions`, the CLI's administration of users, vhosts and definitions.
pub const WIRE_VERSION: u8 = 4;
/// Size of the fixed frame header: version + length + crc.
pub const HEADER_LEN: usize = 1 + 4 + 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("unknown wire format version {0} (this node speaks {WIRE_VERSION})")]
    UnknownVersion(u8),
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("frame payload malformed: {0}")]
    Malformed(postcard::Error),
    #[error("cannot encode message: {0}")]
    Encode(postcard::Error),
}

/// The framed bytes of `msg`.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let payload = postcard::to_stdvec(msg).map_err(WireError::Encode)?;
    if payload.len() > CLUSTER_FRAME_MAX {
        return Err(WireError::TooLarge {
            len: payload.len(),
            max: CLUSTER_FRAME_MAX,
        });
    }
    // Checked above: CLUSTER_FRAME_MAX fits a u32 (asserted in limits).
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(WIRE_VERSION);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Checks a frame header; returns the payload length and its CRC.
pub fn decode_header(header: &[u8; HEADER_LEN], max: usize) -> Result<(usize, u32), WireError> {
    let [version, l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    if version != WIRE_VERSION {
        return Err(WireError::UnknownVersion(version));
    }
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    Ok((len, u32::from_le_bytes([c0, c1, c2, c3])))
}

/// Checks a payload against its CRC and decodes it.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8], crc: u32) -> Result<T, WireError> {
    let computed = crc32c::crc32c(payload);
    if computed != crc {
        return Err(WireError::BadCrc {
            stored: crc,
            computed,
        });
    }
    postcard::from_bytes(payload).map_err(WireError::Malformed)
}

/// Writes `msg` as one frame and flushes it.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), WireError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode(msg)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame of at most `max` payload bytes. EOF before the first header byte is
/// [`WireError::Closed`]; EOF inside a frame is an I/O error.
pub async fn read_frame<R, T>(r: &mut R, max: usize) -> Result<T, WireError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut header = [0u8; HEADER_LEN];
    let n = r.read(&mut header).await?;
    if n == 0 {
        return Err(WireError::Closed);
    }
    r.read_exact(&mut header[n..]).await?;
    let (len, crc) = decode_header(&header, max)?;
    // Grow the buffer as bytes arrive rather than trusting the header's length up front.
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    let got = r.take(len as u64).read_to_end(&mut payload).await?;
    if got != len {
        return Err(WireError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("frame cut short: {got} of {len} payload bytes"),
        )));
    }
    decode_payload(&payload, crc)
}
