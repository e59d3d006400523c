//! Node-to-node: the cluster transport (TCP, cookie-authenticated), the messages nodes send
//! each other, and the openraft network built on them.
//!
//! * [`PeerRequest`] / [`PeerResponse`]: everything one node asks another: openraft's RPCs
//!   (append entries, vote, a snapshot in chunks), a command batch forwarded to the leader, and the
//!   node's status for `warren cluster-status`.
//! * [`PeerHandler`]: what a node does with a request it received.
//! * [`ask_leader`]: finding the leader from outside it (CLI, a RAM node's join).
//! * [`cookie`]: the shared secret, loaded from an owner-only file.
//! * [`wire`]: framing of peer messages (version, length, crc32c, postcard).
//! * [`handshake`]: challenge-response proof of the cookie when a connection opens.
//! * [`transport`]: `PeerServer` (accept, handshake, serve) and `PeerClient` (one connection).
//! * [`network`]: openraft's network over `PeerClient`s, and the server side of its RPCs.
//! * [`network_chunks`]: what keeps every peer message within a frame: appends capped by
//!   bytes, snapshots in chunks.

pub mod ask_leader;
pub mod cookie;
pub mod handshake;
pub mod network;
pub mod network_chunks;
pub mod pipeline;
pub mod transport;
pub mod wire;

pub use cookie::Cookie;
pub use network::{call_peer, serve_raft_rpc, ClusterNetwork};
pub use transport::{PeerClient, PeerServer};

use serde::{Deserialize, Serialize};

use crate::broker::command::{Refusal, Reply};
use crate::raft::state_machine::Batch;
use crate::raft::types::{NodeId, TypeConfig};

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
    Refused(crate::raft::propose_error::ProposeError),
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

/// A response still on its way (see [`PeerHandler::start`]).
pub type PendingResponse<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = PeerResponse> + Send + 'a>>;

/// What a node does with the requests it receives from peers.
pub trait PeerHandler: Send + Sync + 'static {
    fn handle(
        &self,
        request: PeerRequest,
    ) -> impl std::future::Future<Output = PeerResponse> + Send;

    /// Starts `request` and returns what finishes it. A connection starts its requests one
    /// at a time, in the order they arrive, and writes their responses in that order; a
    /// request whose start returns early lets the next one start while it finishes (a
    /// forwarded batch is appended to the log, then waits for its commit). By default a
    /// request is handled whole before the next starts.
    fn start(
        &self,
        request: PeerRequest,
    ) -> impl std::future::Future<Output = PendingResponse<'_>> + Send {
        // Two stages by design: the outer future starts, the inner one finishes.
        #[allow(clippy::async_yields_async)]
        async move {
            let response = self.handle(request).await;
            Box::pin(std::future::ready(response)) as PendingResponse<'_>
        }
    }
}
