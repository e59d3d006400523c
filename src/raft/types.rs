//! openraft type configuration for Warren.
//!
//! `Request`/`Response` are placeholders wrapping opaque bytes; the broker's command batch
//! type will replace them once the state machine exists.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A client command replicated through the Raft log (placeholder: opaque bytes).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Request(pub Vec<u8>);

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({} bytes)", self.0.len())
    }
}

/// The state machine's reply to a [`Request`] (placeholder: opaque bytes).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Response(pub Vec<u8>);

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({} bytes)", self.0.len())
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
