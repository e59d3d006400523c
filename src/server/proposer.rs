//! The proposer: the only way the front end changes broker state.
//!
//! This is the interim single-node path. `LocalProposer` applies each command directly to an
//! in-memory [`BrokerState`] behind a mutex. The Raft-backed proposer (commands batched into
//! openraft entries, applied by the state machine on every node) replaces it; connections do
//! not change when it does, because the front end only proposes [`Command`]s and acts on the
//! resulting [`Outcome`]s. It never mutates broker state itself.
//!
//! Deliveries in an outcome are routed to the connection holding the consumer through a
//! bounded per-connection queue of [`Dispatch`]es, with the message content attached (from
//! the state, or from `Outcome::released` for no_ack deliveries the state already let go of).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::broker::command::{Command, Content, Outcome};
use crate::broker::queue::Delivery;
use crate::broker::state::BrokerState;

/// How many undelivered dispatches one connection may have queued.
pub const DISPATCH_QUEUE_MAX: usize = 65_536;

/// One delivery for a connection: which queue, the assignment, and the message itself.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub queue: String,
    pub delivery: Delivery,
    pub content: Content,
}

/// Applies commands to a local [`BrokerState`] and routes deliveries to connections.
pub struct LocalProposer {
    state: Mutex<BrokerState>,
    connections: Mutex<HashMap<u64, mpsc::Sender<Dispatch>>>,
    next_conn: AtomicU64,
}

impl Default for LocalProposer {
    fn default() -> Self {
        LocalProposer {
            state: Mutex::new(BrokerState::default()),
            connections: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        }
    }
}

impl LocalProposer {
    pub fn new() -> LocalProposer {
        LocalProposer::default()
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

    /// Applies `command` and hands every delivery it caused to the holder's connection.
    pub async fn propose(&self, command: Command) -> Outcome {
        let (outcome, dispatches) = {
            let mut state = lock(&self.state);
            let outcome = state.apply(command);
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
            (outcome, dispatches)
        };
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
