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
pub const WIRE_VERSION: u8 = 3;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PeerRequest, PeerResponse};
    use crate::raft::propose_error::ProposeError;

    #[tokio::test]
    async fn a_frame_round_trips_over_a_pipe() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let writer = tokio::spawn(async move {
            write_frame(&mut a, &PeerRequest::Status)
                .await
                .expect("write");
            write_frame(&mut a, &PeerResponse::Error("boom".into()))
                .await
                .expect("write");
        });
        let req: PeerRequest = read_frame(&mut b, CLUSTER_FRAME_MAX).await.expect("read");
        assert!(matches!(req, PeerRequest::Status));
        let resp: PeerResponse = read_frame(&mut b, CLUSTER_FRAME_MAX).await.expect("read");
        assert!(matches!(resp, PeerResponse::Error(s) if s == "boom"));
        writer.await.expect("writer");
        let end = read_frame::<_, PeerRequest>(&mut b, CLUSTER_FRAME_MAX).await;
        assert!(matches!(end, Err(WireError::Closed)));
    }

    async fn read_bytes(bytes: Vec<u8>, max: usize) -> Result<PeerResponse, WireError> {
        read_frame(&mut bytes.as_slice(), max).await
    }

    #[tokio::test]
    async fn corrupt_frames_are_errors() {
        let frame = encode(&PeerResponse::Error("hello".into())).expect("encode");
        assert!(read_bytes(frame.clone(), CLUSTER_FRAME_MAX).await.is_ok());

        let mut flipped = frame.clone();
        *flipped.last_mut().expect("payload") ^= 0x40;
        let err = read_bytes(flipped, CLUSTER_FRAME_MAX)
            .await
            .expect_err("crc");
        assert!(matches!(err, WireError::BadCrc { .. }), "{err}");

        let mut version = frame.clone();
        version[0] = 9;
        let err = read_bytes(version, CLUSTER_FRAME_MAX).await.expect_err("v");
        assert!(matches!(err, WireError::UnknownVersion(9)), "{err}");

        let err = read_bytes(frame.clone(), 3).await.expect_err("size");
        assert!(matches!(err, WireError::TooLarge { max: 3, .. }), "{err}");

        let mut huge = frame.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_bytes(huge, CLUSTER_FRAME_MAX).await.expect_err("huge");
        assert!(matches!(err, WireError::TooLarge { .. }), "{err}");

        let short = frame[..frame.len() - 1].to_vec();
        let err = read_bytes(short, CLUSTER_FRAME_MAX)
            .await
            .expect_err("short");
        assert!(matches!(err, WireError::Io(_)), "{err}");

        // A valid CRC over bytes that are not a PeerResponse.
        let junk = [0xffu8; 7];
        let mut bad = vec![WIRE_VERSION];
        bad.extend_from_slice(&7u32.to_le_bytes());
        bad.extend_from_slice(&crc32c::crc32c(&junk).to_le_bytes());
        bad.extend_from_slice(&junk);
        let err = read_bytes(bad, CLUSTER_FRAME_MAX).await.expect_err("junk");
        assert!(matches!(err, WireError::Malformed(_)), "{err}");
    }

    /// Every peer message survives encode + decode (architecture invariant 4): compared by
    /// their Debug text, as openraft's messages do not all implement PartialEq.
    #[test]
    fn every_peer_message_round_trips() {
        use crate::cluster::NodeStatus;
        use crate::raft::types::{Entry, LogId, Request, TypeConfig, Vote};
        use openraft::entry::RaftEntry;
        use openraft::raft::{
            AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest,
            VoteResponse,
        };
        use openraft::vote::RaftLeaderIdExt;

        let log_id = LogId::new(
            <openraft::alias::LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(3, 1),
            7,
        );
        let vote = Vote::new_committed(3, 1);
        let meta = openraft::alias::SnapshotMetaOf::<TypeConfig> {
            last_log_id: Some(log_id),
            ..Default::default()
        };
        let requests = vec![
            PeerRequest::AppendEntries(AppendEntriesRequest {
                vote,
                prev_log_id: Some(log_id),
                leader_commit: Some(log_id),
                entries: vec![Entry::new_normal(log_id, Request(vec![1, 2, 3]))],
            }),
            PeerRequest::Vote(VoteRequest::new(Vote::new(4, 2), Some(log_id))),
            PeerRequest::SnapshotChunk {
                vote,
                meta,
                offset: 1 << 20,
                data: vec![9; 100],
                last: true,
            },
            PeerRequest::Propose(Default::default()),
            PeerRequest::Status,
            PeerRequest::ReadIndex,
        ];
        for request in requests {
            let frame = encode(&request).expect("encode");
            let (len, crc) = decode_header(
                frame[..HEADER_LEN].try_into().expect("header"),
                CLUSTER_FRAME_MAX,
            )
            .expect("header");
            assert_eq!(len, frame.len() - HEADER_LEN);
            let back: PeerRequest = decode_payload(&frame[HEADER_LEN..], crc).expect("decode");
            assert_eq!(format!("{back:?}"), format!("{request:?}"));
        }
        let responses = vec![
            PeerResponse::AppendEntries(AppendEntriesResponse::Success),
            PeerResponse::AppendEntries(AppendEntriesResponse::Conflict),
            PeerResponse::Vote(VoteResponse::new(vote, Some(log_id), true)),
            PeerResponse::FullSnapshot(SnapshotResponse::new(vote)),
            PeerResponse::Replies(Vec::new()),
            PeerResponse::NotCommitted {
                leader: Some(2),
                reason: "not the leader".into(),
            },
            PeerResponse::Status(NodeStatus {
                node_id: 3,
                voters: vec![(1, "a:1".into())],
                ..NodeStatus::default()
            }),
            PeerResponse::Error("no".into()),
            PeerResponse::ReadIndex(42),
            PeerResponse::Refused(ProposeError::NotLeader { leader: Some(2) }),
            PeerResponse::Refused(ProposeError::Expired),
            PeerResponse::Refused(ProposeError::OutOfOrder),
            PeerResponse::Refused(ProposeError::Unknown("link broke".into())),
        ];
        for response in responses {
            let frame = encode(&response).expect("encode");
            let (_, crc) = decode_header(
                frame[..HEADER_LEN].try_into().expect("header"),
                CLUSTER_FRAME_MAX,
            )
            .expect("header");
            let back: PeerResponse = decode_payload(&frame[HEADER_LEN..], crc).expect("decode");
            assert_eq!(format!("{back:?}"), format!("{response:?}"));
        }
    }
}
