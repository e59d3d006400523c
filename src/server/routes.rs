//! Routes: where each connection's deliveries go, fed by the state machine after every entry,
//! and the fence that keeps a node that was cut off from delivering what the cluster gave
//! back while it was away.
//!
//! The fence follows Raft progress, never clocks of two machines (`raft/contact.rs` says
//! when deliveries must wait). While they wait, the deliveries of each applied entry are held
//! here, in apply order, with their contents. Once the node has applied what the leader had
//! committed when it came back, each held delivery is checked against the state it has
//! applied: still checked out to the same consumer, it leaves; checked out elsewhere or
//! settled, it is dropped; if the state no longer holds its connection at all (the leader
//! took this node for down and closed it), the connection is fenced: closed with 320, so its
//! client reconnects and nothing it held is delivered twice as a first delivery.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{mpsc, watch};

use super::access_view::AccessView;
use crate::broker::command::Outcome;
use crate::broker::queue::{ConsumerKey, Delivery};
use crate::broker::state::{BrokerState, StoredMessage};
use crate::raft::contact::{Gate, Hold, LeaderContact};
use crate::raft::node::RaftNode;
use crate::raft::state_machine::{AppliedState, ApplyObserver};

/// What the state machine hands a connection.
// Deliver is the hot variant and Cancel the rare one: boxing the message (what clippy
// suggests now that it carries dead-letter metadata) would allocate once per delivery.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Dispatch {
    /// A delivery: which queue, the assignment, and the message itself.
    Deliver {
        queue: String,
        delivery: Delivery,
        message: StoredMessage,
    },
    /// The consumer's queue went away: the broker cancelled it (server-sent basic.cancel).
    Cancel {
        queue: String,
        consumer: ConsumerKey,
    },
    /// This node applied, late, a delivery to the connection, and by the time it caught up
    /// the cluster had closed the connection (node-down) and may have handed its messages
    /// to others. The connection is closed (320) instead of delivering.
    Fenced,
    /// A vhost was deleted: the connections to it close (320).
    VhostDeleted(String),
}

/// Where each connection's deliveries go; fed by the state machine after every entry.
pub struct Routes {
    connections: Mutex<HashMap<u64, mpsc::UnboundedSender<Dispatch>>>,
    contact: Arc<LeaderContact>,
    /// Deliveries held while the node catches up, in apply order.
    held: Mutex<Vec<(u64, Dispatch)>>,
    /// Users, vhosts and permissions as last applied, for the front end.
    access: watch::Sender<Arc<AccessView>>,
}

impl Routes {
    pub fn new(contact: Arc<LeaderContact>) -> Routes {
        Routes {
            connections: Mutex::default(),
            contact,
            held: Mutex::default(),
            access: watch::Sender::new(Arc::new(AccessView::unbuilt())),
        }
    }

    /// Users, vhosts and permissions as this node applied them, newest first.
    pub fn access(&self) -> watch::Receiver<Arc<AccessView>> {
        self.access.subscribe()
    }

    /// Connects the routes to `node`'s state machine, and releases held deliveries as soon
    /// as the leader's read index is learned, if this node has applied up to it already.
    pub fn attach(self: &Arc<Self>, node: &Arc<RaftNode>) {
        node.state_machine.set_observer(Arc::clone(self) as _);
        node.state_machine
            .observe_applied(|_, state| self.state_changed(state));
        let (routes, node) = (Arc::downgrade(self), Arc::downgrade(node));
        tokio::spawn(release_on_contact(routes, node));
    }

    pub fn register(&self, conn: u64, sender: mpsc::UnboundedSender<Dispatch>) {
        lock(&self.connections).insert(conn, sender);
    }

    pub fn unregister(&self, conn: u64) {
        lock(&self.connections).remove(&conn);
    }

    /// Lets held deliveries go if the node has caught up at `applied_index`.
    fn release_if_caught_up(&self, applied_index: u64, state: &AppliedState<'_>) {
        if lock(&self.held).is_empty() || self.contact.gate(applied_index) == Gate::Hold {
            return;
        }
        self.release(state.broker);
    }

    /// Sends each held delivery the state still stands by; fences connections it no longer
    /// holds.
    fn release(&self, broker: &BrokerState) {
        let held = std::mem::take(&mut *lock(&self.held));
        if held.is_empty() {
            return;
        }
        let connections = lock(&self.connections);
        let live = broker.connections();
        let mut fenced = BTreeSet::new();
        let (mut n_sent, mut n_dropped) = (0usize, 0usize);
        for (conn, dispatch) in held {
            let Some(sender) = connections.get(&conn) else {
                continue;
            };
            if stands(broker, &dispatch) {
                n_sent += 1;
                let _ = sender.send(dispatch);
            } else if !live.contains(&conn) {
                if fenced.insert(conn) {
                    let _ = sender.send(Dispatch::Fenced);
                }
            } else {
                n_dropped += 1;
            }
        }
        tracing::info!(
            n_sent,
            n_dropped,
            n_fenced = fenced.len(),
            "held deliveries released"
        );
    }
}

/// Whether the state still stands by a held dispatch.
fn stands(broker: &BrokerState, dispatch: &Dispatch) -> bool {
    match dispatch {
        Dispatch::Deliver {
            queue, delivery, ..
        // The vhost is not in the dispatch: a queue of that name in another vhost cannot
        // hold the same message (ids are cluster-wide) for the same consumer.
        } => broker.vhosts.values().any(|vhost| {
            let entry = vhost.queues.get(queue);
            entry.is_some_and(|entry| entry.queue.still_holds(delivery))
        }),
        Dispatch::Cancel { .. } | Dispatch::Fenced | Dispatch::VhostDeleted(_) => true,
    }
}

impl ApplyObserver for Routes {
    fn state_changed(&self, state: &AppliedState<'_>) {
        let access = &state.broker.access;
        if self.access.borrow().version != access.version {
            let view = AccessView::build(state.broker);
            self.access.send_replace(Arc::new(view));
        }
    }

    fn applied(&self, index: u64, outcomes: &[Outcome], state: &AppliedState<'_>) {
        let connections = lock(&self.connections);
        let mut dispatches = Vec::new();
        for outcome in outcomes {
            for (queue, delivery) in &outcome.deliveries {
                if !connections.contains_key(&delivery.consumer.conn) {
                    continue; // another node's connection
                }
                // A disk node reads it from its message store, unless this entry stored it.
                let Some(message) = state.delivered(outcome, delivery.msg_id) else {
                    continue;
                };
                let dispatch = Dispatch::Deliver {
                    queue: queue.clone(),
                    delivery: delivery.clone(),
                    message,
                };
                dispatches.push((delivery.consumer.conn, dispatch));
            }
            for (queue, consumer) in &outcome.cancelled {
                let dispatch = Dispatch::Cancel {
                    queue: queue.clone(),
                    consumer: consumer.clone(),
                };
                dispatches.push((consumer.conn, dispatch));
            }
            if let Some(vhost) = &outcome.vhost_deleted {
                let each = connections.keys();
                dispatches.extend(each.map(|c| (*c, Dispatch::VhostDeleted(vhost.clone()))));
            }
        }
        drop(connections);
        let mut held = lock(&self.held);
        if self.contact.gate(index) == Gate::Hold {
            held.extend(dispatches);
            return;
        }
        let was_holding = !held.is_empty();
        drop(held);
        if was_holding {
            self.release(state.broker);
        }
        let connections = lock(&self.connections);
        for (conn, dispatch) in dispatches {
            // A closed receiver means the connection is ending; its ConnectionClosed command
            // returns what it held.
            if let Some(sender) = connections.get(&conn) {
                let _ = sender.send(dispatch);
            }
        }
    }
}

/// Releases what is held when the leader's read index is learned, in case the node had
/// already applied up to it (no later entry would let it go).
async fn release_on_contact(routes: Weak<Routes>, node: Weak<RaftNode>) {
    let Some(mut hold) = routes.upgrade().map(|r| r.contact.subscribe()) else {
        return;
    };
    while hold.changed().await.is_ok() {
        if !matches!(*hold.borrow_and_update(), Hold::Until(_)) {
            continue;
        }
        let (Some(routes), Some(node)) = (routes.upgrade(), node.upgrade()) else {
            return;
        };
        // The state lock may be held by an entry's apply (through the message store's
        // writes): wait for it on a blocking thread, not on a runtime worker.
        let release = move || {
            node.state_machine.observe_applied(|applied_index, state| {
                routes.release_if_caught_up(applied_index.unwrap_or(0), state);
            })
        };
        if let Err(error) = tokio::task::spawn_blocking(release).await {
            tracing::error!(%error, "release held deliveries");
        }
    }
}

/// Locks a mutex, recovering the data if a holder panicked (the maps stay consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
