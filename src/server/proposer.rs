//! The proposer: the only way the front end changes broker state.
//!
//! Connections submit commands; one batching task packs whatever has queued up into a single
//! log entry (up to a command count and a byte budget) and hands it to openraft without
//! waiting for it, keeping up to [`PROPOSE_ENTRIES_IN_FLIGHT_MAX`] entries in flight. While those
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
//! connection holding the consumer, in apply order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::routes::{Dispatch, Routes};
use super::sequencer::{Pending, Sequencer};
use crate::broker::command::{Command, Refusal, Reply};
use crate::config::NodeConfig;
use crate::limits::{
    PROPOSE_BATCH_BYTES_MAX, PROPOSE_BATCH_COMMANDS_MAX, PROPOSE_ENTRIES_IN_FLIGHT_MAX,
    PROPOSE_QUEUE_MAX,
};
use crate::raft::node::{wall_clock_ms, RaftNode, Replies};
use crate::raft::propose_error::ProposeError;
use crate::raft::state_machine::Batch;

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

struct Submission {
    commands: Vec<Command>,
    reply: oneshot::Sender<SubmitReplies>,
}

/// How often the proposer looks for expired messages.
const TICK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// How often a node looks for connections of its earlier lives in the state.
const STALE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Commits commands through Raft in batches; deliveries reach connections via [`Routes`].
pub struct Proposer {
    node: Arc<RaftNode>,
    queue: mpsc::Sender<Submission>,
    routes: Arc<Routes>,
    next_conn: AtomicU64,
    /// Answers this node's peers, for as long as the node runs (dropping it stops it).
    _peer_server: Option<crate::cluster::PeerServer>,
    /// Notified when `warren stop` asks this node to stop.
    stop: Arc<tokio::sync::Notify>,
    /// Set once a graceful stop has begun, so Raft's end is not taken for a failure.
    stopping: std::sync::atomic::AtomicBool,
}

impl Proposer {
    /// Opens this node's Raft state in `config.data_dir` (node id 1: single node) and starts
    /// the batching task.
    pub async fn open(config: &Arc<NodeConfig>) -> anyhow::Result<Proposer> {
        let incarnation = next_incarnation(&config.data_dir)?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let (node, cookie, peer_server) = if config.is_clustered() {
            let (node, cookie, server) =
                super::cluster_node::open(config, Arc::clone(&stop)).await?;
            (node, Some(cookie), Some(server))
        } else {
            (
                Arc::new(RaftNode::open(&config.data_dir, 1).await?),
                None,
                None,
            )
        };
        let routes = Arc::new(Routes::new(node.contact()));
        routes.attach(&node);
        let (queue, submissions) = mpsc::channel(PROPOSE_QUEUE_MAX);
        let (entries, pending) = mpsc::channel(PROPOSE_ENTRIES_IN_FLIGHT_MAX);
        let sequencer = Sequencer::new(Arc::clone(&node), cookie, proposer_base(config.node_id));
        tokio::spawn(sequencer.run(pending));
        tokio::spawn(batch_loop(entries, submissions));
        let proposer = Proposer {
            node,
            queue,
            routes,
            next_conn: AtomicU64::new(first_conn_id(config.node_id, incarnation)),
            _peer_server: peer_server,
            stop,
            stopping: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(proposer)
    }

    /// Resolves when `warren stop` has asked this node to stop.
    pub async fn stop_requested(&self) {
        self.stop.notified().await
    }

    /// Stops Raft on this node, handing leadership to the most caught-up voter first so the
    /// cluster does not wait an election timeout.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        super::stop::hand_over_leadership(&self.node).await;
        if let Err(e) = self.node.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    /// Fail-stop: when openraft's core stops by itself (a log write or fsync failed: EIO,
    /// disk full), the node can no longer commit, vote or apply, and serving clients from a
    /// frozen state would only mislead them. The process exits (status 70) so a supervisor
    /// restarts it, which recovers from the log as it is on disk.
    pub fn start_fail_stop(self: &Arc<Self>) {
        let proposer = Arc::clone(self);
        tokio::spawn(async move {
            let stopped = proposer
                .node
                .raft
                .wait(None)
                .metrics(
                    |m| m.state == openraft::ServerState::Shutdown,
                    "raft core stops",
                )
                .await;
            let stopped = match stopped {
                Ok(_) | Err(openraft::metrics::WaitError::ShuttingDown) => true,
                Err(openraft::metrics::WaitError::Timeout(..)) => false,
            };
            if stopped && !proposer.stopping.load(Ordering::SeqCst) {
                tracing::error!("raft stopped on its own (storage failure?); exiting");
                std::process::exit(70);
            }
        });
    }

    /// Proposes a `Tick` whenever a queue's head message has expired, so expired messages
    /// leave queues without waiting for other traffic (the state machine has no clock).
    pub fn start_ticks(self: &Arc<Self>) {
        let proposer = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(TICK_EVERY);
            loop {
                ticks.tick().await;
                let Some(proposer) = proposer.upgrade() else {
                    return;
                };
                if !proposer.node.is_leader() {
                    continue; // the leader ticks for everyone
                }
                let due = proposer
                    .node
                    .state_machine
                    .with_broker(|broker| broker.next_expiry())
                    .is_some_and(|at| at <= wall_clock_ms());
                if due {
                    let _ = proposer.propose(Command::Tick).await;
                }
            }
        });
    }

    /// The state may name connections of this node's earlier lives (consumers, unacked
    /// deliveries, exclusive queues): they are gone, so close them. Not only at start: a
    /// node wiped and repaired from its peers (or any node still catching up) learns of its
    /// earlier connections only once the leader's snapshot and log reach it, and if it came
    /// back within `NODE_DOWN_AFTER` no leader took it for down (chaos seed 51: consumers of
    /// a wiped node's earlier life held their messages for ever). So it looks again every
    /// `STALE_CHECK_EVERY`. In the background: in a cluster this waits for a leader.
    pub fn start_closing_stale_connections(self: &Arc<Self>) {
        let proposer = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(STALE_CHECK_EVERY);
            loop {
                ticks.tick().await;
                let Some(proposer) = proposer.upgrade() else {
                    return;
                };
                if let Err(e) = proposer.close_stale_connections().await {
                    tracing::warn!(error = %e, "connections of an earlier life stay open for now");
                }
            }
        });
    }

    async fn close_stale_connections(&self) -> anyhow::Result<()> {
        // Ids of this start share the first id's high half (node, incarnation).
        let ours = self.next_conn.load(Ordering::Relaxed) >> 32;
        let me = crate::raft::types::config_node_of(self.node.id);
        let stale: Vec<u64> = self
            .connections_on(&[me])
            .into_iter()
            .filter(|conn| conn >> 32 != ours)
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        tracing::info!(n = stale.len(), "closing connections of an earlier life");
        let commands = stale
            .into_iter()
            .map(|conn| Command::ConnectionClosed { conn })
            .collect();
        match self.submit(commands).await.await {
            Ok(Ok(_)) => Ok(()),
            _ => anyhow::bail!("could not commit the close of stale connections"),
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

    /// Forgets a connection; deliveries to it are dropped from now on (its ChannelClosed
    /// commands return them to their queues).
    pub fn unregister(&self, conn: u64) {
        self.routes.unregister(conn);
    }

    /// Queues `commands` for one log entry; waits only while the submission queue is full.
    /// The receiver yields the replies once the entry is applied.
    pub async fn submit(&self, commands: Vec<Command>) -> oneshot::Receiver<SubmitReplies> {
        let (reply, receiver) = oneshot::channel();
        if let Err(mpsc::error::SendError(lost)) =
            self.queue.send(Submission { commands, reply }).await
        {
            // The batching task is gone (node shutting down): nothing was submitted.
            let _ = lost.reply.send(Err(Unknown));
        }
        receiver
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
        let mut wait = std::time::Duration::from_millis(50);
        loop {
            let receiver = self.submit(vec![command.clone()]).await;
            if let Ok(Ok(_)) = receiver.await {
                return;
            }
            tracing::warn!(?command, "close not committed yet; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(2));
        }
    }

    /// The connections the state names that are held by one of `nodes` (configured node
    /// ids, see `config_node_of`).
    pub fn connections_on(&self, nodes: &[u64]) -> Vec<u64> {
        self.node
            .state_machine
            .with_broker(|broker| broker.connections())
            .into_iter()
            .filter(|conn| nodes.contains(&conn_node(*conn)))
            .collect()
    }

    /// The node under this proposer (for status and tests).
    pub fn node(&self) -> &RaftNode {
        &self.node
    }
}

/// Packs queued submissions into entries, in order, and hands them to the sequencer, with a
/// bounded number unanswered.
async fn batch_loop(entries: mpsc::Sender<Pending>, mut submissions: mpsc::Receiver<Submission>) {
    let in_flight = Arc::new(Semaphore::new(PROPOSE_ENTRIES_IN_FLIGHT_MAX));
    while let Some(first) = submissions.recv().await {
        // Waiting for a free slot is what lets the next batch grow.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        let mut n_commands = batch[0].commands.len();
        let mut n_bytes = content_bytes(&batch[0].commands);
        while n_commands < PROPOSE_BATCH_COMMANDS_MAX && n_bytes < PROPOSE_BATCH_BYTES_MAX {
            match submissions.try_recv() {
                Ok(next) => {
                    n_commands += next.commands.len();
                    n_bytes += content_bytes(&next.commands);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let mut entry = Batch {
            time_ms: wall_clock_ms(),
            commands: Vec::with_capacity(n_commands),
            origin: None, // numbered by the sequencer
        };
        let mut waiters = Vec::with_capacity(batch.len());
        for submission in batch {
            waiters.push((submission.commands.len(), submission.reply));
            entry.commands.extend(submission.commands);
        }
        let pending = Pending {
            batch: entry,
            waiters,
            permit,
        };
        if let Err(mpsc::error::SendError(lost)) = entries.send(pending).await {
            let stopped = ProposeError::unknown("sequencer stopped");
            answer(lost.waiters, Err(stopped));
        }
    }
}

/// This start's proposer id base: the node id in the top 8 bits, the start time (ms, 40
/// bits) below, 16 bits left for the sequencer's epochs. No two starts share it, even a RAM
/// node's whose data directory was wiped.
fn proposer_base(node_id: u64) -> u64 {
    ((node_id & 0xFF) << 56) | ((wall_clock_ms() & ((1 << 40) - 1)) << 16)
}

/// Splits an entry's replies back over the submissions it was built from.
pub(super) fn answer(waiters: Vec<(usize, oneshot::Sender<SubmitReplies>)>, replies: Replies) {
    match replies {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            for (n, waiter) in waiters {
                let _ = waiter.send(Ok(replies.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "raft commit failed; outcomes unknown");
            for (_, waiter) in waiters {
                let _ = waiter.send(Err(Unknown));
            }
        }
    }
}

/// Connection ids: the node id in the top 8 bits (so every node's ids differ and a node's
/// consumers can be found after it is lost), its incarnation in the next 24 (so no id is
/// reused across restarts), then a counter.
fn first_conn_id(node_id: u64, incarnation: u32) -> u64 {
    ((node_id & 0xFF) << 56) | ((u64::from(incarnation) & 0xFF_FFFF) << 32) | 1
}

/// The node that holds connection `conn`.
pub fn conn_node(conn: u64) -> u64 {
    conn >> 56
}

/// Reads, bumps and durably rewrites the node's incarnation number (file `incarnation` in
/// the data directory): each start of the node gets a new one. It never falls below the
/// wall clock in 10 ms units (the 24 bits a connection id keeps: they wrap every 46 hours):
/// a node wiped and repaired from its peers has lost the file, and starting again from 1,
/// its first life's number, would give its new connections the ids of connections the
/// cluster still holds for its earlier life, which then could not be told apart and closed.
/// Those are closed within seconds of the new life seeing them, so the wrap does not
/// matter.
fn next_incarnation(dir: &std::path::Path) -> anyhow::Result<u32> {
    use anyhow::Context;
    use std::io::Write;
    std::fs::create_dir_all(dir).context("create data directory")?;
    let path = dir.join("incarnation");
    let last = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .with_context(|| format!("{} is not a number", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).context("read incarnation"),
    };
    let clock = (crate::raft::node::wall_clock_ms() / 10) & 0xFF_FFFF;
    let next = last
        .checked_add(1)
        .context("incarnation number exhausted")?
        .max(clock as u32);
    let tmp = dir.join("incarnation.tmp");
    let mut file = std::fs::File::create(&tmp).context("write incarnation")?;
    file.write_all(format!("{next}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(next)
}

fn content_bytes(commands: &[Command]) -> usize {
    commands
        .iter()
        .map(|c| match c {
            Command::Publish { content, .. } => content.body.len() + content.properties.len(),
            _ => 64,
        })
        .sum()
}

#[cfg(test)]
#[path = "proposer_tests.rs"]
mod tests;
