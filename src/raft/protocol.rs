//! The node protocol: everything one node asks another, carried by the cluster transport
//! (`crate::cluster`): openraft's RPCs (append entries, vote, a snapshot in chunks), a
//! command batch forwarded to the leader, a read index, membership changes, and the node's
//! status for `warren cluster-status`, and the CLI's administration (users, vhosts,
//! permissions, definitions). Variants are only ever appended (wire version,
//! `cluster/wire.rs`).

use serde::{Deserialize, Serialize};

use super::propose_error::ProposeError;
use super::state_machine::Batch;
use super::types::{NodeId, TypeConfig};
use crate::broker::command::{Command, Refusal, Reply};
use crate::definitions::applied::Applied;

/// The node protocol, for the transport.
#[derive(Debug)]
pub struct NodeProtocol;

impl crate::cluster::Protocol for NodeProtocol {
    type Request = PeerRequest;
    type Response = PeerResponse;
}

/// One connection to a peer, one call at a time.
pub type PeerClient = crate::cluster::transport::PeerClient<NodeProtocol>;
/// One connection to a peer, requests pipelined.
pub type PeerPipeline = crate::cluster::pipeline::PeerPipeline<NodeProtocol>;
/// Where the response to one pipelined request arrives.
pub type Answer = crate::cluster::pipeline::Answer<NodeProtocol>;
/// A response still on its way (see `crate::cluster::PeerHandler::start`).
pub type PendingResponse<'a> = crate::cluster::Pending<'a, PeerResponse>;

/// A request from one node to another. Every request names the node id it is meant for: a
/// RAM node's new incarnation reuses its predecessor's address under a new id.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(openraft::raft::AppendEntriesRequest<TypeConfig>),
    Vote(openraft::raft::VoteRequest<TypeConfig>),
    /// One chunk of a snapshot, `offset` bytes into it; the receiver installs the snapshot
    /// when the `last` arrives and answers that one with `FullSnapshot`, the others with
    /// `Done`. No message holds a whole snapshot.
    SnapshotChunk {
        vote: openraft::alias::VoteOf<TypeConfig>,
        meta: openraft::alias::SnapshotMetaOf<TypeConfig>,
        offset: u64,
        data: Vec<u8>,
        last: bool,
    },
    /// A batch of commands for the leader to commit as one entry.
    Propose(Batch),
    /// The receiving node's own view of itself and of Raft.
    Status,
    /// The receiving node's applied index and a hash of its state there.
    Digest,
    /// A change of the members, for the leader to commit (`warren join`, `forget`, ...).
    ChangeMembership(MembershipChange),
    /// Stop the receiving node gracefully, handing leadership over first (`warren stop`).
    Stop,
    /// Raft's Pre-Vote: would the receiver grant this vote? Nothing is persisted.
    PreVote(openraft::raft::VoteRequest<TypeConfig>),
    /// The leader's read index, confirmed with a quorum (`raft/contact.rs`: what a node
    /// back from a silence must apply before it delivers again). Wire version 3.
    ReadIndex,
    /// An operator's change (`warren add_user`, `import_definitions`, ...): the receiver
    /// submits the commands through its proposer, which forwards them to the leader, as one
    /// entry, and answers `Replies` (or `Error` when the outcome is unknown). Wire version 4.
    Admin(Vec<Command>),
    /// What the receiver applied of users, vhosts, permissions, exchanges, queues, bindings
    /// and consumers, once caught up with the leader's read index when it can be: answered
    /// with `Definitions`. Wire version 4.
    Definitions,
    /// A follower saw a connection from its `leader` close and has heard nothing from it
    /// since: does the receiver, by its own evidence, take that leader for gone too, and
    /// would it rather see `candidate` (whose log ends at `last_log_index`) lead than itself?
    /// Answered with `LeaderGone` (`raft/prompt_election.rs`). Appended without a new wire
    /// version: a node of version 4 cannot decode it and closes the connection, which the
    /// asker takes for a no, so mixed clusters keep the ordinary election.
    LeaderGone {
        leader: NodeId,
        candidate: NodeId,
        last_log_index: Option<u64>,
    },
    /// Has the receiver applied the entry at `index`? It waits up to `wait_ms` for it and
    /// answers `AppliedAtLeast`: how an operator's change returns only once every reachable
    /// member applied it (`server/catch_up.rs::spread`), as RabbitMQ's replicated metadata
    /// does. Appended without a new wire version, as `LeaderGone`: a node of version 4
    /// closes the connection, which the asker takes for a no.
    AppliedAtLeast {
        index: u64,
        wait_ms: u64,
    },
}

/// A change of the cluster's members, carried out by the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add node `id`, reached at `addr`, as a learner (the call returns once it has caught
    /// up), then make it a voter when `voter`; in the same joint change the leader removes
    /// the earlier starts of the same RAM node (same node id, older Raft ids).
    Join {
        id: NodeId,
        addr: String,
        voter: bool,
    },
    /// Remove node `id` (a voter or a learner) from the cluster.
    Remove { id: NodeId },
    /// Make learner `id` a voter.
    Promote { id: NodeId },
    /// Make voter `id` a learner: it keeps a copy but no longer votes or counts to commit.
    Demote { id: NodeId },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    AppendEntries(openraft::raft::AppendEntriesResponse<TypeConfig>),
    Vote(openraft::raft::VoteResponse<TypeConfig>),
    FullSnapshot(openraft::raft::SnapshotResponse<TypeConfig>),
    /// The replies of a forwarded batch, one per command.
    Replies(Vec<Result<Reply, Refusal>>),
    /// A membership change was not made here: this node is not the leader (it names the
    /// leader it knows of, if any), or it failed.
    NotCommitted {
        leader: Option<NodeId>,
        reason: String,
    },
    Status(NodeStatus),
    Digest(StateDigest),
    /// The request was carried out; the text says what now holds.
    Done(String),
    /// The request could not be handled (e.g. openraft refused it); the text says why.
    Error(String),
    /// The answer to `ReadIndex`. Wire version 3.
    ReadIndex(u64),
    /// A forwarded batch, or a read index, not answered, and why (wire version 3: forwarded
    /// batches used `NotCommitted` with a text before).
    Refused(ProposeError),
    /// The answer to `Definitions`. Wire version 4.
    Definitions(Box<Applied>),
    /// The answer to `LeaderGone`: yes or no.
    LeaderGone(bool),
    /// The answer to `AppliedAtLeast`: whether the receiver applied that entry in time.
    AppliedAtLeast(bool),
}

/// One node's report for cluster-status.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub node_name: String,
    pub amqp_addr: String,
    pub cluster_addr: String,
    /// "disk" or "ram".
    pub role: String,
    /// "leader", "follower", "learner", "candidate" or "shutdown".
    pub raft_state: String,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub leader: Option<NodeId>,
    /// The voters and learners of the current membership, by node id, with their cluster
    /// addresses.
    pub voters: Vec<(NodeId, String)>,
    pub learners: Vec<(NodeId, String)>,
    /// On the leader: each member's matched log index.
    pub replication: Vec<(NodeId, Option<u64>)>,
    /// The state-machine version the cluster runs, as this node has applied it, and the
    /// newest this node's build applies (`raft/envelope.rs`). Wire version 3.
    pub machine_version: u16,
    pub machine_version_max: u16,
}

/// A node's applied index and the SHA-256 (hex) of its broker state at that index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDigest {
    pub applied_index: Option<u64>,
    pub hash: String,
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
