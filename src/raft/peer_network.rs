//! openraft's network over the cluster transport, and the receiving side of its RPCs.
//!
//! openraft 0.10 asks the factory for a separate client per purpose: `new_client` for the
//! replication stream (and a fresh one for every vote broadcast), `new_heartbeat_client`,
//! `new_snapshot_client`. Each purpose gets its own TCP connection per target, kept in
//! [`PeerLinks`] and shared by every client openraft creates for that target, so:
//! * a snapshot being sent, or a large append, never delays a heartbeat or a vote;
//! * an election does not open a new connection (and redo the handshake) per vote.
//!
//! Error mapping. A transport failure (refused, reset, bad frame, handshake refused) is
//! `Unreachable`: openraft then backs off before retrying instead of spinning on a dead peer.
//! A deadline is `Timeout` (the peer may only be slow). A `PeerResponse::Error` means the peer
//! was reached but its Raft could not take the RPC (it is shutting down or has stopped):
//! retrying at once cannot help, so it is `Unreachable` as well, which backs off.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RPCTypes};

use super::network_chunks::{cap_append, payload_bytes, read_chunk, receive_snapshot_chunk};
use super::protocol::{PeerClient, PeerRequest, PeerResponse};
use crate::cluster::PeerAuth;
use crate::limits::{
    APPEND_BYTES_MAX, CLUSTER_APPEND_BYTES_PER_S_MIN, CLUSTER_RPC_TIMEOUT_MIN_MS,
    CLUSTER_SNAPSHOT_TIMEOUT_MIN_MS, SNAPSHOT_CHUNK_BYTES,
};
use crate::raft::contact::LeaderContact;
use crate::raft::node::Raft;
use crate::raft::prompt_election::PromptElection;
use crate::raft::snapshot_data::SnapshotData;
use crate::raft::state_machine::BrokerStateMachine;
use crate::raft::types::{NodeId, TypeConfig};

/// Builds openraft's clients for node `id`; clones share the connections.
#[derive(Clone, Debug)]
pub struct ClusterNetwork {
    id: NodeId,
    auth: PeerAuth,
    links: Arc<Mutex<HashMap<NodeId, Arc<PeerLinks>>>>,
    dialer: Option<Dialer>,
}

/// Chooses the address to dial for a target, given the target's id and its advertised
/// address. Tests route each directed link through a proxy they control (raft-tests).
#[derive(Clone)]
pub struct Dialer(Arc<DialFn>);

/// (target id, advertised address) -> the address to dial.
type DialFn = dyn Fn(NodeId, &str) -> String + Send + Sync;

impl Dialer {
    pub fn new(dial: impl Fn(NodeId, &str) -> String + Send + Sync + 'static) -> Dialer {
        Dialer(Arc::new(dial))
    }

    /// The address to dial for `target`, advertised at `addr`.
    pub fn dial(&self, target: NodeId, addr: &str) -> String {
        (self.0)(target, addr)
    }
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

/// The connections from this node to one target, one per kind of traffic, each opened on
/// first use. The tokio mutex makes two clients of one kind take turns on its connection.
#[derive(Debug)]
pub struct PeerLinks {
    addr: String,
    replication: tokio::sync::Mutex<PeerClient>,
    heartbeat: tokio::sync::Mutex<PeerClient>,
    vote: tokio::sync::Mutex<PeerClient>,
    snapshot: tokio::sync::Mutex<PeerClient>,
}

/// Which connection a client sends append-entries on.
#[derive(Clone, Copy, Debug)]
enum AppendLink {
    Replication,
    Heartbeat,
}

/// openraft's client to one target.
#[derive(Debug)]
pub struct PeerNetwork {
    id: NodeId,
    target: NodeId,
    links: Arc<PeerLinks>,
    append: AppendLink,
}

impl ClusterNetwork {
    /// The network of node `id`, proving its cookie (inside TLS with `cluster_tls`) to every
    /// peer.
    pub fn new(id: NodeId, auth: impl Into<PeerAuth>) -> ClusterNetwork {
        ClusterNetwork {
            id,
            auth: auth.into(),
            links: Arc::default(),
            dialer: None,
        }
    }

    /// Like [`ClusterNetwork::new`], but every target is dialed at the address `dialer`
    /// picks instead of the advertised one (the handshake still names the real target).
    pub fn with_dialer(id: NodeId, auth: impl Into<PeerAuth>, dialer: Dialer) -> ClusterNetwork {
        ClusterNetwork {
            dialer: Some(dialer),
            ..ClusterNetwork::new(id, auth)
        }
    }

    /// The links to `target` at `node.addr`, made anew if the target moved to another address.
    fn links(&self, target: NodeId, node: &BasicNode) -> Arc<PeerLinks> {
        let addr = match &self.dialer {
            Some(dialer) => std::borrow::Cow::Owned(dialer.dial(target, &node.addr)),
            None => std::borrow::Cow::Borrowed(node.addr.as_str()),
        };
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match links.get(&target) {
            Some(existing) if existing.addr == *addr => existing.clone(),
            _ => {
                let client = || {
                    let client = PeerClient::new(&*addr, self.id, target, self.auth.clone());
                    tokio::sync::Mutex::new(client)
                };
                let fresh = Arc::new(PeerLinks {
                    addr: addr.to_string(),
                    replication: client(),
                    heartbeat: client(),
                    vote: client(),
                    snapshot: client(),
                });
                links.insert(target, fresh.clone());
                fresh
            }
        }
    }

    /// Asks voter `target` at `addr` whether it takes `request`'s leader for gone
    /// (`prompt_election.rs`), on the vote link: yes, no, or `None` when it could not be
    /// asked (taken for a no).
    pub async fn ask_leader_gone(
        &self,
        target: NodeId,
        addr: &str,
        request: PeerRequest,
    ) -> Option<bool> {
        let links = self.links(target, &BasicNode::new(addr));
        let mut client = links.vote.lock().await;
        let timeout = super::prompt_election::ask_timeout();
        match client.call_timeout(request, timeout).await {
            Ok(response) => Some(super::prompt_election::granted(&response)),
            Err(e) => {
                tracing::debug!(target, error = %e, "ask whether the leader is gone");
                None
            }
        }
    }

    fn client(&self, target: NodeId, node: &BasicNode, append: AppendLink) -> PeerNetwork {
        PeerNetwork {
            id: self.id,
            target,
            links: self.links(target, node),
            append,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for ClusterNetwork {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerNetwork {
        self.client(target, node, AppendLink::Replication)
    }

    async fn new_heartbeat_client(&mut self, target: NodeId, node: &BasicNode) -> PeerNetwork {
        self.client(target, node, AppendLink::Heartbeat)
    }

    async fn new_snapshot_client(&mut self, target: NodeId, node: &BasicNode) -> PeerNetwork {
        // Snapshots always go on the snapshot link; the append link is never used by it.
        self.client(target, node, AppendLink::Replication)
    }
}

/// The deadline for one RPC: openraft's, but never below `floor_ms`.
fn deadline(option: &RPCOption, floor_ms: u64) -> Duration {
    option.hard_ttl().max(Duration::from_millis(floor_ms))
}

impl PeerNetwork {
    /// Sends `request` on `link` and maps transport failures to openraft's errors.
    async fn call(
        &self,
        link: &tokio::sync::Mutex<PeerClient>,
        request: PeerRequest,
        action: RPCTypes,
        timeout: Duration,
    ) -> Result<PeerResponse, RPCError<TypeConfig>> {
        let mut client = link.lock().await;
        match client.call_timeout(request, timeout).await {
            Ok(PeerResponse::Error(reason)) => {
                Err(RPCError::Unreachable(Unreachable::from_string(format!(
                    "node {} refused {action}: {reason}",
                    self.target
                ))))
            }
            Ok(response) => Ok(response),
            Err(e) if e.downcast_ref::<tokio::time::error::Elapsed>().is_some() => {
                Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.id,
                    target: self.target,
                    timeout,
                }))
            }
            Err(e) => Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "{e:#}"
            )))),
        }
    }

    /// A vote or pre-vote request on the vote link; both are answered with a vote response.
    async fn ask_vote(
        &self,
        request: PeerRequest,
        option: &RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let timeout = deadline(option, CLUSTER_RPC_TIMEOUT_MIN_MS);
        let link = &self.links.vote;
        match self.call(link, request, RPCTypes::Vote, timeout).await? {
            PeerResponse::Vote(response) => Ok(response),
            other => Err(self.unexpected(RPCTypes::Vote, other)),
        }
    }

    fn unexpected(&self, action: RPCTypes, response: PeerResponse) -> RPCError<TypeConfig> {
        // A peer answering another question is a bug or a version mismatch; a retry after a
        // reconnect is the best openraft can do.
        let text = format!("node {} answered {action} with {response:?}", self.target);
        RPCError::Network(NetworkError::from_string(text))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let link = match self.append {
            AppendLink::Replication => &self.links.replication,
            AppendLink::Heartbeat => &self.links.heartbeat,
        };
        let action = RPCTypes::AppendEntries;
        let (rpc, sent_up_to) = cap_append(rpc, APPEND_BYTES_MAX);
        // A large append (up to one 192 MiB message) gets time for its bytes to cross and be
        // fsync'd: with the bare deadline it would time out on every retry and the follower
        // never catch up.
        let bytes = payload_bytes(&rpc) as u64;
        let for_bytes = Duration::from_millis(bytes * 1000 / CLUSTER_APPEND_BYTES_PER_S_MIN);
        let timeout = deadline(&option, CLUSTER_RPC_TIMEOUT_MIN_MS) + for_bytes;
        match self
            .call(link, PeerRequest::AppendEntries(rpc), action, timeout)
            .await?
        {
            PeerResponse::AppendEntries(AppendEntriesResponse::Success) if sent_up_to.is_some() => {
                Ok(AppendEntriesResponse::PartialSuccess(sent_up_to))
            }
            PeerResponse::AppendEntries(response) => Ok(response),
            other => Err(self.unexpected(action, other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.ask_vote(PeerRequest::Vote(rpc), &option).await
    }

    /// Pre-Vote (openraft `enable_pre_vote`): a node whose election timer fired asks first
    /// whether a quorum would vote for it, so one that cannot win (cut off, restarted, behind)
    /// does not raise the term and depose a healthy leader when it comes back.
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.ask_vote(PeerRequest::PreVote(rpc), &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: openraft::alias::VoteOf<TypeConfig>,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            response = self.send_snapshot(vote, snapshot, &option) => response,
        }
    }
}

impl PeerNetwork {
    /// Sends `snapshot` in chunks of openraft's `snapshot_max_chunk_size`, one request at a
    /// time on the snapshot link, reading it from its file as it goes: neither side holds
    /// it whole. Any failure fails the whole send; openraft sends it again from the start.
    async fn send_snapshot(
        &self,
        vote: openraft::alias::VoteOf<TypeConfig>,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotData>,
        option: &RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let action = RPCTypes::InstallSnapshot;
        let fail = |e: std::io::Error| {
            let text = format!("read the snapshot for node {}: {e}", self.target);
            StreamingError::Network(NetworkError::from_string(text))
        };
        let chunk_size = option
            .snapshot_chunk_size()
            .unwrap_or(SNAPSHOT_CHUNK_BYTES)
            .max(1);
        let timeout = deadline(option, CLUSTER_SNAPSHOT_TIMEOUT_MIN_MS);
        let total = snapshot.snapshot.len().map_err(fail)?;
        let mut reader = snapshot.snapshot.into_async_reader();
        let mut offset = 0u64;
        loop {
            let data = read_chunk(&mut reader, chunk_size).await.map_err(fail)?;
            let end = offset + data.len() as u64;
            let last = end >= total || data.is_empty();
            let request = PeerRequest::SnapshotChunk {
                vote,
                meta: snapshot.meta.clone(),
                offset,
                data,
                last,
            };
            let response = self
                .call(&self.links.snapshot, request, action, timeout)
                .await;
            match response.map_err(streaming)? {
                PeerResponse::FullSnapshot(response) if last => return Ok(response),
                PeerResponse::Done(_) if !last => offset = end,
                other => return Err(streaming(self.unexpected(action, other))),
            }
        }
    }
}

fn streaming(e: RPCError<TypeConfig>) -> StreamingError<TypeConfig> {
    match e {
        RPCError::Timeout(e) => StreamingError::Timeout(e),
        RPCError::Unreachable(e) => StreamingError::Unreachable(e),
        RPCError::Network(e) => StreamingError::Network(e),
        RPCError::RemoteError(e) => StreamingError::Unreachable(Unreachable::new(&e)),
    }
}

/// One request to node `to` at `addr` on a connection of its own, closed afterwards: for
/// rare calls (cluster-status, a forwarded batch) that need no standing connection.
pub async fn call_peer(
    addr: &str,
    to: NodeId,
    from: NodeId,
    auth: impl Into<PeerAuth>,
    request: PeerRequest,
) -> anyhow::Result<PeerResponse> {
    PeerClient::new(addr, from, to, auth).call(request).await
}

/// The receiving side of openraft's RPCs: hands them to the local Raft. Returns `None` for a
/// request that is not a Raft RPC, for the node's own handler to answer.
pub async fn serve_raft_rpc(
    raft: &Raft,
    state_machine: &BrokerStateMachine,
    contact: &LeaderContact,
    prompt: &PromptElection,
    request: PeerRequest,
) -> Option<PeerResponse> {
    let response = match request {
        PeerRequest::AppendEntries(rpc) => {
            let received = std::time::Instant::now();
            contact.receiving(received);
            prompt.append_arrived(received);
            match raft.append_entries(rpc).await {
                Ok(response) => {
                    // Any answer but a higher vote means the sender leads this term.
                    if !matches!(response, AppendEntriesResponse::HigherVote(_)) {
                        contact.heard(received);
                    }
                    PeerResponse::AppendEntries(response)
                }
                Err(e) => PeerResponse::Error(format!("append entries: {e}")),
            }
        }
        PeerRequest::Vote(rpc) => match raft.vote(prompt.vote_request(rpc)).await {
            Ok(response) => PeerResponse::Vote(response),
            Err(e) => PeerResponse::Error(format!("vote: {e}")),
        },
        PeerRequest::PreVote(rpc) => match raft.pre_vote(rpc).await {
            Ok(response) => PeerResponse::Vote(response),
            Err(e) => PeerResponse::Error(format!("pre-vote: {e}")),
        },
        PeerRequest::SnapshotChunk {
            vote,
            meta,
            offset,
            data,
            last,
        } => {
            let chunk = (offset, data, last);
            receive_snapshot_chunk(raft, state_machine, vote, meta, chunk).await
        }
        PeerRequest::LeaderGone {
            leader,
            candidate,
            last_log_index,
        } => PeerResponse::LeaderGone(prompt.answer(leader, candidate, last_log_index).await),
        PeerRequest::Propose(_)
        | PeerRequest::ReadIndex
        | PeerRequest::Status
        | PeerRequest::Digest
        | PeerRequest::ChangeMembership(_)
        | PeerRequest::Stop
        | PeerRequest::Admin(_)
        | PeerRequest::Definitions
        | PeerRequest::AppliedAtLeast { .. } => return None,
    };
    Some(response)
}
