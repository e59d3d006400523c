//! The node protocol over the cluster's wire format: frames round-trip, corrupt ones are
//! refused, and every request and response survives encode + decode (architecture
//! invariant 4).

use super::*;
use crate::cluster::wire::*;
use crate::limits::CLUSTER_FRAME_MAX;
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
    use crate::raft::protocol::NodeStatus;
    use crate::raft::types::{Entry, LogId, Request, TypeConfig, Vote};
    use openraft::entry::RaftEntry;
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
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
        PeerRequest::LeaderGone {
            leader: 1,
            candidate: 2,
            last_log_index: Some(7),
        },
        PeerRequest::AppliedAtLeast {
            index: 9,
            wait_ms: 2000,
        },
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
        PeerResponse::LeaderGone(true),
        PeerResponse::AppliedAtLeast(false),
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

/// Wire version 4's requests and answer survive encode + decode: an admin batch and a
/// node's applied definitions (postcard cannot carry free-form JSON, hence typed rows).
#[tokio::test]
async fn admin_requests_and_definitions_round_trip() {
    use crate::broker::access::{PasswordHash, User};
    use crate::broker::command::Command;
    use crate::definitions::applied::{Applied, QueueRow};
    let admin = PeerRequest::Admin(vec![Command::AddVhost { name: "v".into() }]);
    let frame = encode(&admin).expect("encode");
    let decoded: PeerRequest = read_frame(&mut frame.as_slice(), CLUSTER_FRAME_MAX)
        .await
        .expect("decode");
    assert!(
        matches!(decoded, PeerRequest::Admin(c) if c == vec![Command::AddVhost { name: "v".into() }])
    );
    let applied = Applied {
        users: vec![(
            "u".into(),
            User {
                password: PasswordHash::new([1, 2, 3, 4], b"pw"),
                tags: vec!["management".into()],
            },
        )],
        vhosts: vec!["/".into()],
        queues: vec![QueueRow {
            vhost: "/".into(),
            name: "q".into(),
            durable: true,
            auto_delete: false,
            exclusive: false,
            arguments: vec![(
                "x-max-length".into(),
                crate::broker::exchange::HeaderValue::Int(3),
            )],
            messages_ready: 2,
            messages_unacknowledged: 1,
            consumers: 1,
        }],
        ..Applied::default()
    };
    let frame = encode(&PeerResponse::Definitions(Box::new(applied.clone()))).expect("encode");
    let decoded = read_bytes(frame, CLUSTER_FRAME_MAX).await.expect("decode");
    assert!(matches!(decoded, PeerResponse::Definitions(a) if *a == applied));
}

/// The requests appended without a new wire version must keep their place and shape: a node
/// of the previous build decodes every variant before them, and these bytes are what the
/// next build must still read. A variant inserted before them, or a field changed, fails.
#[test]
fn appended_requests_keep_their_bytes() {
    let cases: Vec<(Vec<u8>, &[u8])> = vec![
        (
            postcard::to_stdvec(&PeerRequest::LeaderGone {
                leader: 1,
                candidate: 2,
                last_log_index: Some(7),
            })
            .expect("encode"),
            &[12, 1, 2, 1, 7],
        ),
        (
            postcard::to_stdvec(&PeerRequest::AppliedAtLeast {
                index: 9,
                wait_ms: 2000,
            })
            .expect("encode"),
            &[13, 9, 0xd0, 0x0f],
        ),
        (
            postcard::to_stdvec(&PeerResponse::LeaderGone(true)).expect("encode"),
            &[12, 1],
        ),
        (
            postcard::to_stdvec(&PeerResponse::AppliedAtLeast(false)).expect("encode"),
            &[13, 0],
        ),
    ];
    for (encoded, golden) in cases {
        assert_eq!(encoded, golden);
    }
}
