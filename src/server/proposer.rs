//! The proposer: the only way the front end changes broker state.
//!
//! Each command is committed as an openraft log entry on this node's [`RaftNode`] (fsync'd
//! before commit) and applied by the state machine; only then does its outcome come back, so
//! a publisher confirm sent on that outcome means the publish is durable. The front end only
//! proposes [`Command`]s and acts on the resulting [`Outcome`]s; it never mutates broker
//! state itself.
//!
//! Interim: proposals are serialised (one entry per command, one at a time) so deliveries
//! reach each connection in apply order. Batching commands from many channels into one
//! entry, with deliveries dispatched in apply order, is the next step (docs/architecture.md).
//!
//! Deliveries in an outcome are routed to the connection holding the consumer through a
//! bounded per-connection queue of [`Dispatch`]es, with the message content attached (from
//! the state, or from `Outcome::released` for no_ack deliveries the state already let go of).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::broker::command::{Command, Content, Outcome, Refusal};
use crate::broker::queue::Delivery;
use crate::config::NodeConfig;
use crate::raft::node::RaftNode;

/// How many undelivered dispatches one connection may have queued.
pub const DISPATCH_QUEUE_MAX: usize = 65_536;

/// One delivery for a connection: which queue, the assignment, and the message itself.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub queue: String,
    pub delivery: Delivery,
    pub content: Content,
}

/// Commits commands through Raft and routes the deliveries they cause to connections.
pub struct Proposer {
    node: RaftNode,
    /// Held across commit and dispatch so deliveries leave in apply order.
    order: tokio::sync::Mutex<()>,
    connections: Mutex<HashMap<u64, mpsc::Sender<Dispatch>>>,
    next_conn: AtomicU64,
}

impl Proposer {
    /// Opens this node's Raft state in `config.data_dir` (node id 1: single node).
    pub async fn open(config: &NodeConfig) -> anyhow::Result<Proposer> {
        let node = RaftNode::open(&config.data_dir, 1).await?;
        Ok(Proposer {
            node,
            order: tokio::sync::Mutex::new(()),
            connections: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        })
    }

    /// Registers a new connection: its id and the receiving end of its deliveries.
    pub fn register(&self) -> (u64, mpsc::Receiver<Dispatch>) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(DISPATCH_QUEUE_MAX);
        lock(&self.connections).insert(id, tx);
        (id, rx)
    }

    /// Forgets a connection; deliveries to it are dropped from now on.
    pub fn unregister(&self, conn: u64) {
        lock(&self.connections).remove(&conn);
    }

    /// Commits `command` and hands every delivery it caused to the holder's connection.
    /// When the commit fails the outcome is unknown: the caller gets a 541 refusal, which
    /// closes the channel (never a nack: the entry may still be committed).
    pub async fn propose(&self, command: Command) -> Outcome {
        let _order = self.order.lock().await;
        let outcome = match self.node.propose(&[command]).await {
            Ok(mut outcomes) if outcomes.len() == 1 => outcomes.remove(0),
            Ok(_) | Err(_) => {
                tracing::error!("raft commit failed; the command's outcome is unknown");
                let reply = Err(Refusal {
                    reply_code: 541,
                    reply_text: "INTERNAL_ERROR - outcome unknown, raft commit failed".to_string(),
                });
                return Outcome {
                    reply,
                    deliveries: Vec::new(),
                    released: Vec::new(),
                    cancelled: Vec::new(),
                };
            }
        };
        let dispatches = self.node.state_machine.with_broker(|state| {
            let mut dispatches = Vec::with_capacity(outcome.deliveries.len());
            for (queue, delivery) in &outcome.deliveries {
                let content = outcome
                    .released
                    .iter()
                    .find(|(id, _)| *id == delivery.msg_id)
                    .map(|(_, c)| c.clone())
                    .or_else(|| state.content(delivery.msg_id).cloned());
                match content {
                    Some(content) => dispatches.push(Dispatch {
                        queue: queue.clone(),
                        delivery: delivery.clone(),
                        content,
                    }),
                    None => tracing::error!(msg_id = delivery.msg_id, "delivery without content"),
                }
            }
            dispatches
        });
        for dispatch in dispatches {
            let sender = lock(&self.connections)
                .get(&dispatch.delivery.consumer.conn)
                .cloned();
            if let Some(sender) = sender {
                // A closed receiver means the connection is ending; its ChannelClosed
                // commands return the message to the queue.
                let _ = sender.send(dispatch).await;
            }
        }
        outcome
    }
}

/// Locks a mutex, recovering the data if a holder panicked (apply is total, so the state
/// is consistent between commands).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
