//! A single Raft node: the segment log, the broker state machine and openraft, wired together.
//!
//! `RaftNode::open` starts openraft on a data directory; a fresh directory initialises a
//! one-member cluster, an existing one resumes from its snapshot file and log.
//! `RaftNode::open_cluster` does the same for a member of a multi-node cluster, over the
//! cluster network. `submit` puts a
//! batch of commands in one log entry without waiting: entries enter the log in the order they
//! were submitted, and each one's replies arrive once it is committed and applied, which is
//! the moment a publisher confirm may go out.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::contact::LeaderContact;
use super::log_store::SegmentLogStore;
use super::mem_log_store::MemLogStore;
use super::network::NoPeers;
use super::prompt_election::PromptElection;
use super::propose_error::ProposeError;
use super::sessions::Sequenced;
use super::snapshot_data::SnapshotData;
use super::state_machine::{Batch, BrokerStateMachine};
use super::types::{Entry, NodeId, Response, TypeConfig};
use crate::broker::command::{Command, Refusal, Reply};
use crate::limits::SINGLE_NODE_LEADER_WAIT_S;
use crate::limits::{
    RAFT_ELECTION_TIMEOUT_MAX_MS, RAFT_ELECTION_TIMEOUT_MIN_MS, RAFT_HEARTBEAT_MS,
};
use crate::raft::peer_network::ClusterNetwork;

pub type Raft = openraft::Raft<TypeConfig, BrokerStateMachine>;

/// The replies to one entry's commands, or why there are none.
pub type Replies = Result<Vec<Result<Reply, Refusal>>, ProposeError>;

pub struct RaftNode {
    /// openraft itself: used only inside `src/raft` (invariant 9) and, through
    /// [`RaftNode::openraft`], by raft-tests.
    pub(crate) raft: Raft,
    pub state_machine: BrokerStateMachine,
    pub id: NodeId,
    log: LogView,
    /// When a leader was last heard, and whether deliveries must wait to catch up.
    contact: Arc<LeaderContact>,
    /// Campaigns at once when the leader's connections close (`prompt_election.rs`).
    prompt: Arc<PromptElection>,
}

/// Reads the entries a node's log holds, whichever store it has. openraft owns the store
/// once it starts, and its `Raft` offers no read of the entries themselves; the invariant
/// checks in raft-tests (log matching) need them.
type LogView = Box<
    dyn Fn() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = std::io::Result<Vec<Entry>>> + Send>,
        > + Send
        + Sync,
>;

impl RaftNode {
    /// Opens (or creates) a node in `dir` and waits until it leads its one-member cluster.
    pub async fn open(dir: &Path, id: NodeId) -> anyhow::Result<RaftNode> {
        let node = RaftNode::start(dir, id, NoPeers, None).await?;
        if !node
            .raft
            .is_initialized()
            .await
            .context("read raft state")?
        {
            let members = BTreeMap::from([(id, openraft::BasicNode::default())]);
            node.raft
                .initialize(members)
                .await
                .context("initialise one-member cluster")?;
        }
        node.raft
            .wait(Some(Duration::from_secs(SINGLE_NODE_LEADER_WAIT_S)))
            .current_leader(id, "become leader")
            .await
            .context("wait for leadership")?;
        Ok(node)
    }

    /// Opens (or creates) node `id` of the cluster `members` in `dir`, reaching its peers
    /// through `network`. The member with the lowest id initialises the cluster when its
    /// directory is new; the others start empty and wait to hear from a leader. Returns at
    /// once: a leader may not be elected yet.
    /// [`RaftNode::open_cluster`] with the initial members given by their cluster addresses.
    pub async fn open_cluster_at(
        dir: &Path,
        id: NodeId,
        network: ClusterNetwork,
        addrs: BTreeMap<NodeId, String>,
    ) -> anyhow::Result<RaftNode> {
        let members = addrs
            .into_iter()
            .map(|(id, addr)| (id, openraft::BasicNode::new(addr)))
            .collect();
        RaftNode::open_cluster(dir, id, network, members).await
    }

    pub async fn open_cluster(
        dir: &Path,
        id: NodeId,
        network: ClusterNetwork,
        members: BTreeMap<NodeId, openraft::BasicNode>,
    ) -> anyhow::Result<RaftNode> {
        anyhow::ensure!(
            members.contains_key(&id),
            "node {id} is not one of the members {:?}",
            members.keys().collect::<Vec<_>>()
        );
        let node = RaftNode::start(dir, id, network.clone(), Some(network)).await?;
        let initialiser = members.keys().next() == Some(&id);
        if initialiser
            && !node
                .raft
                .is_initialized()
                .await
                .context("read raft state")?
        {
            node.raft
                .initialize(members)
                .await
                .context("initialise the cluster")?;
        }
        Ok(node)
    }

    /// Starts a RAM node's openraft: log and state in memory, nothing initialised. It is
    /// empty until the leader adds it as a learner and sends it a snapshot and the log.
    pub async fn open_ram(id: NodeId, network: ClusterNetwork) -> anyhow::Result<RaftNode> {
        RaftNode::start_with(
            id,
            network.clone(),
            MemLogStore::default(),
            BrokerStateMachine::in_memory(),
            Some(network),
        )
        .await
    }

    /// Starts openraft on `dir` with `network`, without initialising a membership. `peers`
    /// is the same network for a member of a cluster (prompt elections ask through it).
    async fn start<N>(
        dir: &Path,
        id: NodeId,
        network: N,
        peers: Option<ClusterNetwork>,
    ) -> anyhow::Result<RaftNode>
    where
        N: openraft::RaftNetworkFactory<TypeConfig>,
        N::Network: openraft::network::NetSnapshot<TypeConfig, SnapshotData = SnapshotData>,
    {
        // Both read files (a snapshot may be large) and may wait for a lock: off the
        // runtime's workers.
        let dir = dir.to_path_buf();
        let (log_store, state_machine) = tokio::task::spawn_blocking(move || {
            let log_store = SegmentLogStore::open(dir.join("raft-log")).context("open raft log")?;
            let state_machine =
                BrokerStateMachine::open(&dir.join("state")).context("open state machine")?;
            anyhow::Ok((log_store, state_machine))
        })
        .await
        .context("open raft log and state machine")??;
        RaftNode::start_with(id, network, log_store, state_machine, peers).await
    }

    async fn start_with<N, L>(
        id: NodeId,
        network: N,
        mut log_store: L,
        state_machine: BrokerStateMachine,
        peers: Option<ClusterNetwork>,
    ) -> anyhow::Result<RaftNode>
    where
        N: openraft::RaftNetworkFactory<TypeConfig>,
        N::Network: openraft::network::NetSnapshot<TypeConfig, SnapshotData = SnapshotData>,
        L: openraft::storage::RaftLogStorage<TypeConfig>,
        L::LogReader: Clone + Sync,
    {
        use openraft::storage::RaftLogReader;
        let reader = log_store.get_log_reader().await;
        let log: LogView = Box::new(move || {
            let mut reader = reader.clone();
            Box::pin(async move { reader.try_get_log_entries(..).await })
        });
        let config = openraft::Config {
            cluster_name: "warren".to_string(),
            heartbeat_interval: RAFT_HEARTBEAT_MS,
            election_timeout_min: RAFT_ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max: RAFT_ELECTION_TIMEOUT_MAX_MS,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
            snapshot_max_chunk_size: crate::limits::SNAPSHOT_CHUNK_BYTES as u64,
            // A leader sends entries to followers before its own fsync. If it restarted as
            // leader of the same term after losing that unsynced tail (power cut, EIO), it
            // would write new entries at (term, index) pairs the followers already hold with
            // other contents, and log matching would keep both: diverged state machines (the
            // chaos eio run found exactly that). A restarted node campaigns for a new term.
            enable_leader_restore: Some(false),
            // A node repaired from its peers (damaged log: demoted, wiped, restarted) comes
            // back with less log than the leader had matched for it. Without this the leader
            // never moves its progress backwards, keeps sending from the old match and the
            // node stays empty for ever (chaos finding 4: a node stuck after truncate-tail).
            // It lowers only that follower's progress, never the quorum-accepted (committed)
            // index, so it cannot un-commit anything; a silently reverted voter is no safer
            // left stuck than caught up again.
            allow_log_reversion: Some(true),
            // Pre-Vote (src/cluster/network.rs): a node that was cut off asks before it
            // campaigns, so its return does not depose a healthy leader with a higher term.
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        let config = Arc::new(config.validate().context("validate raft config")?);
        let raft = Raft::new(id, config, network, log_store, state_machine.clone())
            .await
            .context("start raft")?;
        tokio::spawn(trigger_wanted_snapshots(
            raft.clone(),
            state_machine.snapshot_wanted(),
        ));
        let contact = Arc::new(LeaderContact::new(peers.is_some()));
        tokio::spawn(hear_quorum_acks(raft.clone(), Arc::clone(&contact)));
        let prompt = Arc::new(PromptElection::new(
            id,
            raft.clone(),
            Arc::clone(&contact),
            peers,
        ));
        tokio::spawn(PromptElection::watch_silence(Arc::downgrade(&prompt)));
        Ok(RaftNode {
            raft,
            state_machine,
            id,
            log,
            contact,
            prompt,
        })
    }

    /// Appends `batch` as one log entry and returns at once with a future of its replies.
    /// Entries enter the log in the order of `submit` calls (it only hands the entry to
    /// openraft's core), so a caller that awaits `submit` in sequence keeps its order.
    pub async fn submit(
        &self,
        batch: &Batch,
    ) -> Result<
        impl std::future::Future<Output = Result<Response, ProposeError>> + Send + 'static,
        ProposeError,
    > {
        let (responder, receiver) = openraft::impls::ProgressResponder::complete_only();
        self.raft
            .client_write_ff(self.encode(batch), Some(responder))
            .await
            .map_err(|e| ProposeError::unknown(format!("submit command batch: {e}")))?;
        let expected = batch.commands.len();
        Ok(async move {
            let dropped = |_| ProposeError::unknown("raft dropped the entry");
            let response = match receiver.await.map_err(dropped)? {
                Ok(response) => response,
                Err(openraft::error::ClientWriteError::ForwardToLeader(f)) => {
                    let leader = f.leader_id;
                    return Err(ProposeError::NotLeader { leader });
                }
                Err(e) => return Err(ProposeError::unknown(format!("commit: {e}"))),
            };
            let response = response.data;
            // A batch its proposer's sequence kept from applying answers no replies.
            let n_replies = response.replies.len();
            if n_replies != expected && response.sequenced == Sequenced::Applied {
                let why = format!("state machine answered {n_replies} of {expected} commands");
                return Err(ProposeError::Unknown(why));
            }
            Ok(response)
        })
    }

    /// The payload for `batch`, at the machine version the cluster runs: every member can
    /// read it (`envelope.rs`).
    fn encode(&self, batch: &Batch) -> super::types::Request {
        super::envelope::encode(batch, self.state_machine.machine_version())
    }

    /// Every entry this node's log holds now (those not purged), in index order.
    pub async fn log_entries(&self) -> std::io::Result<Vec<Entry>> {
        (self.log)().await
    }

    /// openraft's handle, for raft-tests, which check openraft's own behaviour under
    /// Warren's storage and network. Nothing in `src/` outside `src/raft` calls it
    /// (architecture invariant 9; `.ci/run` checks).
    pub fn openraft(&self) -> &Raft {
        &self.raft
    }

    /// When a leader was last heard, and whether deliveries must wait (`contact.rs`).
    pub fn contact(&self) -> Arc<LeaderContact> {
        Arc::clone(&self.contact)
    }

    /// Prompt elections (`prompt_election.rs`): what the peer server reports closed
    /// connections to, and what raft-tests watch.
    pub fn prompt_election(&self) -> Arc<PromptElection> {
        Arc::clone(&self.prompt)
    }

    /// A connection that node `peer` opened to this one closed: evidence that it may be gone.
    pub fn peer_closed(&self, peer: NodeId) {
        self.prompt.peer_closed(peer);
    }

    /// The leader's read index (Raft's ReadIndex): this node confirms with a quorum that it
    /// still leads, so every entry committed before the call is at or below the index.
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        use openraft::error::{LinearizableReadError, RaftError};
        let policy = openraft::raft::ReadPolicy::ReadIndex;
        match self.raft.get_read_linearizer(policy).await {
            Ok(linearizer) => Ok(linearizer.read_log_id().log_id().index),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(ProposeError::unknown(format!("read index: {e}"))),
        }
    }

    /// Waits until this node applied the entry at `index`, at most `timeout`; whether it did.
    pub async fn wait_applied(&self, index: u64, timeout: std::time::Duration) -> bool {
        let wait = self.raft.wait(Some(timeout));
        wait.applied_index_at_least(Some(index), "caught up")
            .await
            .is_ok()
    }

    /// Whether this node leads, as far as it knows.
    pub fn is_leader(&self) -> bool {
        use openraft::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().current_leader == Some(self.id)
    }

    /// Commits `commands` as one log entry (now, by the wall clock) and returns their replies.
    pub async fn propose(&self, commands: &[Command]) -> Replies {
        let batch = Batch {
            time_ms: wall_clock_ms(),
            commands: commands.to_vec(),
            origin: None,
        };
        Ok(self.submit(&batch).await?.await?.replies)
    }

    /// Stops the Raft core (through a shared handle; see also [`RaftNode::shutdown`]).
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("shut down raft: {e}"))
    }

    /// Serves one of openraft's RPCs from a peer (`None` for a request that is not one).
    pub async fn serve_raft_rpc(
        &self,
        request: super::protocol::PeerRequest,
    ) -> Option<super::protocol::PeerResponse> {
        let (contact, prompt) = (&self.contact, &*self.prompt);
        let state_machine = &self.state_machine;
        super::peer_network::serve_raft_rpc(&self.raft, state_machine, contact, prompt, request)
            .await
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("shut down raft: {e}"))
    }
}

/// Builds a snapshot whenever the state machine says enough log went by since the last one
/// (openraft's policy counts entries only, and entries range from one command to 4 MiB).
/// Ends with the Raft core (its metrics channel closes).
async fn trigger_wanted_snapshots(raft: Raft, wanted: Arc<tokio::sync::Notify>) {
    use openraft::async_runtime::WatchReceiver;
    let mut metrics = raft.metrics();
    loop {
        tokio::select! {
            _ = wanted.notified() => {
                if let Err(error) = raft.trigger().snapshot().await {
                    tracing::info!(%error, "no snapshot: raft stopped");
                    return;
                }
            }
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// On the leader, contact is a quorum's acknowledgement (heartbeats included: openraft
/// reports it at each). Ends with the Raft core (its metrics channel closes).
async fn hear_quorum_acks(raft: Raft, contact: Arc<LeaderContact>) {
    use openraft::async_runtime::WatchReceiver;
    let mut metrics = raft.metrics();
    loop {
        {
            let m = metrics.borrow_watched();
            if m.state == openraft::ServerState::Leader {
                if let Some(acked) = &m.last_quorum_acked {
                    use openraft::Instant as _;
                    if let Some(at) = std::time::Instant::now().checked_sub(acked.elapsed()) {
                        contact.quorum_acked(at);
                    }
                }
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// This node's wall clock in ms since the epoch: the time a leader stamps on its entries.
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
