//! A queue's ready messages, oldest first, with the sum of their body sizes.
//!
//! Every change to the list goes through this type, so the byte count that
//! `x-max-length-bytes` bounds is always the sum over the messages in the list; a queue never
//! recounts. It only moves ids and sizes: bodies live in the state's message store.

use std::cmp::Reverse;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// A message waiting in the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub msg_id: u64,
    /// How many times it was returned to the queue after a delivery (x-delivery-count).
    pub delivery_count: u32,
    /// When it expires if still ready (TTL); requeues keep the original expiry.
    pub expires_at_ms: Option<u64>,
    /// The size of its body, counted against `x-max-length-bytes`.
    pub body_bytes: u64,
    /// Its priority in a priority queue (`x-max-priority`, machine version 4), already held
    /// at the queue's maximum; 0 in any other queue. Not in the serialized layout of
    /// snapshot formats 5 and 6: format 7 carries it apart (`state_extras.rs`).
    #[serde(skip)]
    pub priority: u8,
}

/// Where a message stands among the ready ones: higher priorities first, then by id (which
/// is publish order). In a queue that is not a priority queue every priority is 0, so this
/// is the id alone.
fn place(ready: &Ready) -> (Reverse<u8>, u64) {
    (Reverse(ready.priority), ready.msg_id)
}

/// Where a message returned to the queue (a requeue) goes among the ready ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequeueTo {
    /// The head, delivered next (machine version 2 and before): requeues that come one at
    /// a time reverse the order.
    Head,
    /// Its original place, ahead of every message published after it, whatever order the
    /// requeues come in (RabbitMQ's classic queues; machine version 3).
    Place,
}

impl RequeueTo {
    /// The rule of the cluster's machine version.
    pub fn at(machine_version: u16) -> RequeueTo {
        match machine_version >= crate::broker::command::Command::COMPAT_MACHINE_VERSION {
            true => RequeueTo::Place,
            false => RequeueTo::Head,
        }
    }
}

/// The ready messages of one queue in delivery order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyList {
    items: VecDeque<Ready>,
    /// The sum of `body_bytes` over `items`.
    n_bytes: u64,
}

impl ReadyList {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The body bytes of every ready message together.
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }

    pub fn front(&self) -> Option<&Ready> {
        self.items.front()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ready> {
        self.items.iter()
    }

    /// A newly published message: the youngest.
    pub fn push_back(&mut self, ready: Ready) {
        self.n_bytes = self.n_bytes.saturating_add(ready.body_bytes);
        self.items.push_back(ready);
    }

    /// A returned message: delivered next.
    pub fn push_front(&mut self, ready: Ready) {
        self.n_bytes = self.n_bytes.saturating_add(ready.body_bytes);
        self.items.push_front(ready);
    }

    /// A message returned to the queue, put where `to` says. Message ids grow with every
    /// message stored, and a queue takes each new one at its tail, so with `Place` the list
    /// stays in id order, which is publish order: the returned message goes before the
    /// first one with a higher id. (A list a version-2 cluster reordered is not in id
    /// order; the search still gives every node the same place.)
    pub fn put_back(&mut self, ready: Ready, to: RequeueTo) {
        match to {
            RequeueTo::Head => self.push_front(ready),
            RequeueTo::Place => self.insert_in_place(ready),
        }
    }

    /// A message put where it stands by priority, then id (`place`): a priority queue's
    /// publish, and any requeue to its place. The list of a priority queue is always in
    /// that order (a cluster below machine version 4 has no priority queue).
    pub fn insert_in_place(&mut self, ready: Ready) {
        let key = place(&ready);
        let at = self.items.partition_point(|r| place(r) < key);
        debug_assert!(self.items.get(at).is_none_or(|r| r.msg_id != ready.msg_id));
        self.n_bytes = self.n_bytes.saturating_add(ready.body_bytes);
        self.items.insert(at, ready);
    }

    /// (id, priority) of every ready message whose priority is not 0.
    pub fn priorities(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        let prioritised = self.items.iter().filter(|r| r.priority != 0);
        prioritised.map(|r| (r.msg_id, r.priority))
    }

    /// Sets the priority of each ready message `by_id` names (loading a snapshot, whose
    /// list is already in its order); returns how many it named.
    pub fn restore_priorities(&mut self, by_id: &std::collections::BTreeMap<u64, u8>) -> usize {
        let mut n_found = 0;
        for ready in self.items.iter_mut() {
            if let Some(&priority) = by_id.get(&ready.msg_id) {
                ready.priority = priority;
                n_found += 1;
            }
        }
        n_found
    }

    pub fn pop_front(&mut self) -> Option<Ready> {
        let ready = self.items.pop_front()?;
        debug_assert!(self.n_bytes >= ready.body_bytes, "ready bytes out of step");
        self.n_bytes = self.n_bytes.saturating_sub(ready.body_bytes);
        Some(ready)
    }

    /// Empties the list (queue.purge), oldest first.
    pub fn drain(&mut self) -> Vec<Ready> {
        self.n_bytes = 0;
        self.items.drain(..).collect()
    }
}
