//! openraft type configuration for Warren.
//!
//! A `Request` is an entry's payload as opaque bytes (a postcard [`Batch`] of broker commands:
//! a payload that does not decode applies as nothing, so a log record never fails to load
//! over it). A `Response` is the list of replies, one per command; it never leaves the node.
//!
//! [`Batch`]: super::state_machine::Batch

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::broker::command::{Refusal, Reply};

/// An entry's payload: a postcard-encoded command batch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Request(pub Vec<u8>);

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({} bytes)", self.0.len())
    }
}

/// The state machine's replies to a [`Request`], one per command, in order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Response(pub Vec<Result<Reply, Refusal>>);

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({} replies)", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// Warren's Raft type configuration: `u64` node ids, `BasicNode` addresses, Tokio runtime.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// Raft node id.
pub type NodeId = u64;
/// A Raft log entry for [`TypeConfig`].
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A Raft log id for [`TypeConfig`].
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A Raft vote for [`TypeConfig`].
pub type Vote = openraft::alias::VoteOf<TypeConfig>;

/// The bit that marks a RAM node's Raft id.
const RAM_ID_BIT: u64 = 1 << 63;

/// A new Raft id for a start of RAM node `node` at `now_ms` (ms since the epoch): the node id
/// in bits 48..56, the start time in the 48 bits below. A RAM node forgets its vote and log
/// on restart, so it must never come back under an id that may have voted or acknowledged
/// entries; the clock makes every start's id new without anything kept on disk.
pub fn ram_node_id(node: u64, now_ms: u64) -> NodeId {
    RAM_ID_BIT | ((node & 0xFF) << 48) | (now_ms & ((1 << 48) - 1))
}

/// Whether a Raft id is a RAM node's.
pub fn is_ram_id(id: NodeId) -> bool {
    id & RAM_ID_BIT != 0
}

/// The configured node id behind a Raft id (a disk node's Raft id is its node id).
pub fn config_node_of(id: NodeId) -> u64 {
    if is_ram_id(id) {
        (id >> 48) & 0xFF
    } else {
        id
    }
}
