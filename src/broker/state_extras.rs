//! What machine version 4 added to the state (issue 16's queue features), laid out apart
//! from the rest of it: snapshot format 7 is format 6's state followed by these extras.
//!
//! The new fields (`Consumer::priority`, `Queue::max_priority`, `Queue::single_active`,
//! `Ready::priority`, `Unacked::priority`) are not in the state's own serialized layout, so
//! formats 5 and 6 keep theirs: a node still writes format 6 while its cluster runs machine
//! version 3 (members of the older build install it), and reads both. Only what differs
//! from a default is listed, so a state with no priorities has empty extras.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::BrokerState;

/// The extras of every queue that has any, by (vhost, queue name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateExtras {
    pub queues: BTreeMap<(String, String), QueueExtras>,
}

/// One queue's extras.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueExtras {
    /// (consumer id, `x-priority`) of every consumer whose priority is not 0.
    pub consumer_priorities: Vec<(u64, i32)>,
    /// `x-max-priority` of a priority queue.
    pub max_priority: Option<u8>,
    /// (message id, priority) of every message held, ready or checked out, whose priority
    /// is not 0, in id order.
    pub message_priorities: Vec<(u64, u8)>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
}

impl QueueExtras {
    fn is_empty(&self) -> bool {
        self.consumer_priorities.is_empty()
            && self.max_priority.is_none()
            && self.message_priorities.is_empty()
            && !self.single_active_consumer
    }
}

impl StateExtras {
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

impl BrokerState {
    /// The extras of the state, for a snapshot (outside apply: every vhost is in place).
    pub fn extras(&self) -> StateExtras {
        let mut extras = StateExtras::default();
        for (vhost_name, vhost) in &self.vhosts {
            for (queue_name, entry) in &vhost.queues {
                let queue = QueueExtras {
                    consumer_priorities: entry.queue.consumer_priorities(),
                    max_priority: entry.queue.max_priority(),
                    message_priorities: entry.queue.message_priorities(),
                    single_active_consumer: entry.queue.single_active(),
                };
                if !queue.is_empty() {
                    let key = (vhost_name.clone(), queue_name.clone());
                    extras.queues.insert(key, queue);
                }
            }
        }
        extras
    }

    /// Puts a snapshot's extras back into the state it was read with. A queue or consumer
    /// the state does not hold means the snapshot is not what it says: an error.
    pub fn restore_extras(&mut self, extras: StateExtras) -> Result<(), String> {
        for ((vhost_name, queue_name), queue) in extras.queues {
            let entry = self
                .vhosts
                .get_mut(&vhost_name)
                .and_then(|v| v.queues.get_mut(&queue_name))
                .ok_or_else(|| format!("extras for a queue not there: {queue_name}"))?;
            for (id, priority) in queue.consumer_priorities {
                if !entry.queue.set_consumer_priority(id, priority) {
                    return Err(format!("a priority for a consumer not there: {id}"));
                }
            }
            if queue.max_priority.is_none() && !queue.message_priorities.is_empty() {
                return Err(format!("message priorities in a plain queue: {queue_name}"));
            }
            // Set on the queue as read, before its messages' priorities (the queue's
            // messages are already in their order).
            entry.queue.restore_max_priority(queue.max_priority);
            entry.queue.set_single_active(queue.single_active_consumer);
            let by_id = queue.message_priorities.into_iter().collect();
            entry.queue.restore_message_priorities(&by_id)?;
        }
        Ok(())
    }
}
