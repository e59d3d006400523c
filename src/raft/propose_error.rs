//! Why a proposal has no replies: the one error type of the write path, from openraft up
//! to the connection, and across the peer protocol (`PeerResponse::Refused`) as an enum, so
//! callers branch on variants, never on strings. Variants are only ever appended (wire).

use serde::{Deserialize, Serialize};

use super::types::NodeId;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    /// Refused before it was appended: the node asked does not lead (it names the leader it
    /// knows of). Definitely not in the log: safe to send to the leader.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// Applied by an earlier attempt whose replies are no longer kept: applied, replies
    /// unknown.
    #[error("applied by an earlier attempt whose replies expired")]
    Expired,
    /// Refused by its proposer's sequence: an earlier entry of it is not applied yet. Not
    /// applied; sent again after its predecessors.
    #[error("out of order in its proposer's sequence")]
    OutOfOrder,
    /// Raft failed under it, or no answer came (leader lost mid-commit, link broke, core
    /// stopped): it may or may not commit.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

impl ProposeError {
    /// An unknown outcome, from any error (context kept).
    pub fn unknown(error: impl std::fmt::Display) -> ProposeError {
        ProposeError::Unknown(error.to_string())
    }
}
