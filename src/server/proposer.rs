//! The proposer: the only way the front end changes broker state.
//!
//! Connections submit commands; one batching task (`batching.rs`) packs whatever has queued
//! up into a single log entry (up to a command count and a byte budget) and hands it to
//! openraft without waiting for it, keeping up to `PROPOSE_ENTRIES_IN_FLIGHT_MAX` entries in
//! flight. While those
//! commit (one grouped fsync in the log's writer thread), new submissions queue, so the depth
//! of that pipeline is the linger: under load many publishes share one entry and one fsync,
//! and an idle node commits a lone command at once. Entries enter the log in submission
//! order, and a submission's commands always share one entry (tx.commit relies on that).
//!
//! Every queue is bounded: when the submission queue is full, `submit` waits, so the
//! connection stops reading from its socket and its publisher slows down instead of the
//! node's memory growing.
//!
//! Deliveries do not come back with replies: the state machine shows every applied entry to
//! the node's [`Routes`] (`routes.rs`), which hands each delivery, with its content, to the
//! connection holding the consumer, in apply order. The proposer's background tasks are in
//! `node_tasks.rs`, the ids that tell this start from earlier ones in `incarnation.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::batching::{batch_loop, Submission};
use super::incarnation::{conn_node, first_conn_id, next_incarnation, proposer_base};
use super::routes::{Dispatch, Routes};
use super::sequencer::Sequencer;
use crate::broker::command::{Command, Refusal, Reply};
use crate::config::NodeConfig;
use crate::limits::{PROPOSE_ENTRIES_IN_FLIGHT_MAX, PROPOSE_QUEUE_MAX};
use crate::raft::node::RaftNode;

/// The replies to one submission, in command order; `Err` when the outcome is unknown.
pub type SubmitReplies = Result<Vec<Result<Reply, Refusal>>, Unknown>;

/// The entry holding a submission may or may not have committed (raft failed under it).
#[derive(Clone, Debug)]
pub struct Unknown;

impl Unknown {
    /// The channel error for a command whose outcome is unknown: never a nack, since the
    /// entry may still commit.
    pub fn refusal() -> Refusal {
        Refusal {
            reply_code: 541,
            reply_text: "INTERNAL_ERROR - outcome unknown, raft commit failed".to_string(),
        }
    }
}

/// Commits commands through Raft in batches; deliveries reach connections via [`Routes`].
pub struct Proposer {
    pub(super) node: Arc<RaftNode>,
    queue: mpsc::Sender<Submission>,
    routes: Arc<Routes>,
    pub(super) next_conn: AtomicU64,
    /// Answers this node's peers, for as long as the node runs (dropping it stops it).
    _peer_server: Option<crate::cluster::PeerServer>,
    /// The cluster cookie and TLS, for the tasks that call peers.
    peer_auth: Option<crate::cluster::PeerAuth>,
    /// Notified when `warren stop` asks this node to stop.
    stop: Arc<tokio::sync::Notify>,
    /// Set once a graceful stop has begun, so Raft's end is not taken for a failure.
    pub(super) stopping: std::sync::atomic::AtomicBool,
    /// Where the peer handler finds this proposer for the operator's requests.
    admin: Arc<super::peer_admin::AdminSlot>,
}

impl Proposer {
    /// Opens this node's Raft state in `config.data_dir` (Raft id 1 on a single node) and starts
    /// the batching task.
    pub async fn open(config: &Arc<NodeConfig>) -> anyhow::Result<Proposer> {
        let incarnation = next_incarnation(&config.data_dir)?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let admin = Arc::new(super::peer_admin::AdminSlot::new());
        let (node, peer_auth, peer_server) = if config.is_clustered() {
            let (node, peer_auth, server) =
                super::cluster_node::open(config, Arc::clone(&stop), Arc::clone(&admin)).await?;
            (node, Some(peer_auth), Some(server))
        } else {
            let (node, server) =
                super::cluster_node::open_single(config, Arc::clone(&stop), Arc::clone(&admin))
                    .await?;
            (node, None, Some(server))
        };
        let routes = Arc::new(Routes::new(node.contact()));
        routes.attach(&node);
        let (queue, submissions) = mpsc::channel(PROPOSE_QUEUE_MAX);
        let (entries, pending) = mpsc::channel(PROPOSE_ENTRIES_IN_FLIGHT_MAX);
        let sequencer = Sequencer::new(
            Arc::clone(&node),
            peer_auth.clone(),
            proposer_base(config.node_id),
        );
        tokio::spawn(sequencer.run(pending));
        tokio::spawn(batch_loop(entries, submissions));
        let proposer = Proposer {
            node,
            queue,
            routes,
            next_conn: AtomicU64::new(first_conn_id(config.node_id, incarnation)),
            _peer_server: peer_server,
            peer_auth,
            stop,
            stopping: std::sync::atomic::AtomicBool::new(false),
            admin,
        };
        Ok(proposer)
    }

    /// Lets the peer handler submit the operator's changes through this proposer
    /// (`peer_admin.rs`); it holds it weakly, so the node still ends with its last user.
    pub fn serve_admin(self: &Arc<Self>) {
        let _ = self.admin.set(Arc::downgrade(self));
    }

    /// Resolves when `warren stop` has asked this node to stop.
    pub async fn stop_requested(&self) {
        self.stop.notified().await
    }

    /// Stops Raft on this node, handing leadership to the most caught-up voter first so the
    /// cluster does not wait an election timeout.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        crate::raft::hand_over::hand_over_leadership(&self.node).await;
        if let Err(e) = self.node.stop().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    /// Registers a new connection: its id and the receiving end of its deliveries. Ids carry
    /// the node's incarnation in their upper half, so no id is reused across restarts.
    ///
    /// The delivery queue is unbounded on purpose: it is filled under the state lock, which
    /// must never wait for a slow consumer. What bounds it is the state's credit: a
    /// consumer's prefetch, or for no_ack and prefetch-0 consumers (which prefetch does not
    /// bound) a credit window that the connection tops up as it writes to its socket
    /// (`Command::Credit`, `connection/credit.rs`); the contents it holds are shared `Bytes`.
    pub fn register(&self) -> (u64, mpsc::UnboundedReceiver<Dispatch>) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.register(id, tx);
        (id, rx)
    }

    /// Users, vhosts and permissions as this node applied them (`access_view.rs`).
    pub fn access(&self) -> tokio::sync::watch::Receiver<Arc<super::access_view::AccessView>> {
        self.routes.access()
    }

    /// Waits until this node applied what the cluster committed before the call, at most
    /// `timeout` (a login or vhost that may have been made a moment ago elsewhere).
    pub async fn catch_up(&self, timeout: std::time::Duration) -> bool {
        super::catch_up::catch_up(&self.node, self.peer_auth.as_ref(), timeout).await
    }

    /// Waits until every member applied what the cluster committed before the call, at
    /// most `timeout`; the members that had not (`catch_up.rs::spread`).
    pub async fn spread(&self, timeout: std::time::Duration) -> Vec<crate::raft::types::NodeId> {
        super::catch_up::spread(&self.node, self.peer_auth.as_ref(), timeout).await
    }

    /// Forgets a connection; deliveries to it are dropped from now on (its ChannelClosed
    /// commands return them to their queues).
    pub fn unregister(&self, conn: u64) {
        self.routes.unregister(conn);
    }

    /// Queues `commands` for one log entry; waits only while the submission queue is full.
    /// The receiver yields the replies once the entry is applied.
    pub async fn submit(&self, commands: Vec<Command>) -> oneshot::Receiver<SubmitReplies> {
        let (reply, receiver) = oneshot::channel();
        if let Some(refusal) = self.too_new(&commands) {
            let _ = reply.send(Ok(commands.iter().map(|_| Err(refusal.clone())).collect()));
            return receiver;
        }
        if let Err(mpsc::error::SendError(lost)) =
            self.queue.send(Submission { commands, reply }).await
        {
            // The batching task is gone (node shutting down): nothing was submitted.
            let _ = lost.reply.send(Err(Unknown));
        }
        receiver
    }

    /// A refusal when a command needs a newer state machine than the cluster runs: in a
    /// rolling upgrade, members still on the old build could not read it (`envelope.rs`).
    fn too_new(&self, commands: &[Command]) -> Option<Refusal> {
        let first = crate::raft::envelope::MACHINE_VERSION_FIRST;
        let newest = commands.iter().max_by_key(|c| c.machine_version_min())?;
        let needed = newest.machine_version_min();
        if needed <= first {
            return None;
        }
        // Published through a watch: no state lock on the submit path.
        let cluster = self.node.state_machine.machine_version();
        (needed > cluster).then(|| {
            Refusal::precondition_failed(format!(
                "{} needs state-machine version {needed}, the cluster runs {cluster} \
                 (it moves up once every member runs a build that applies it)",
                newest.name()
            ))
        })
    }

    /// Commits one command and returns its reply (541 when the outcome is unknown).
    pub async fn propose(&self, command: Command) -> Result<Reply, Refusal> {
        let receiver = self.submit(vec![command]).await;
        match receiver.await {
            Ok(Ok(mut replies)) if replies.len() == 1 => replies.remove(0),
            _ => Err(Unknown::refusal()),
        }
    }

    /// Commits an idempotent `command` (a channel or connection close), retrying while its
    /// outcome is unknown (no leader, a leader lost mid-commit) until it is known.
    pub async fn propose_until_committed(&self, command: Command) {
        self.submit_until_committed(vec![command], None).await;
    }

    /// Commits idempotent `commands` as one entry, submitting them again with backoff
    /// while the outcome is unknown, at most `attempts_max` times (`None`: until known).
    /// Whether they committed.
    pub async fn submit_until_committed(
        &self,
        commands: Vec<Command>,
        attempts_max: Option<u32>,
    ) -> bool {
        let mut wait = std::time::Duration::from_millis(50);
        let mut attempts = 0;
        loop {
            let receiver = self.submit(commands.clone()).await;
            if let Ok(Ok(_)) = receiver.await {
                return true;
            }
            attempts += 1;
            if attempts_max.is_some_and(|max| attempts >= max) {
                return false;
            }
            tracing::warn!(?commands, "not committed yet; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(2));
        }
    }

    /// The cluster cookie and TLS (`None` on a single node), loaded once at open.
    pub fn peer_auth(&self) -> Option<&crate::cluster::PeerAuth> {
        self.peer_auth.as_ref()
    }

    /// The connections the state names that are held by one of `nodes` (configured node
    /// ids, see `config_node_of`), as of the last entry applied: read from what the state
    /// machine publishes, not under its lock.
    pub fn connections_on(&self, nodes: &[u64]) -> Vec<u64> {
        self.node
            .state_machine
            .connections()
            .iter()
            .copied()
            .filter(|conn| nodes.contains(&conn_node(*conn)))
            .collect()
    }

    /// The node under this proposer (for status and tests).
    pub fn node(&self) -> &RaftNode {
        &self.node
    }
}
