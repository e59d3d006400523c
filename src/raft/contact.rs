//! Leader contact: whether what this node applies is current enough to deliver from.
//!
//! A node that was cut off or frozen while the cluster went on may apply entries late: the
//! leader may meanwhile have taken it for down and given its consumers' messages to others
//! (`server/node_down.rs`). Delivering from those entries would hand out a message a
//! second time, as a first delivery. This module decides when deliveries must wait, by Raft
//! progress and this node's own monotonic clock only, never by comparing the clocks of two
//! machines:
//!
//! * Contact is a leader's append (a heartbeat included) accepted here or, on the leader, a
//!   quorum's acknowledgement.
//! * A silence longer than [`LEADER_CONTACT_STALE_AFTER`] (shorter than the leader's
//!   node-down delay), seen when an entry is applied or when contact comes back, starts a
//!   hold: deliveries of what this node applies are held ([`Hold::Unknown`]).
//! * The node then asks the leader for its read index (`PeerRequest::ReadIndex`: the
//!   leader confirms its leadership with a quorum, so the index is current when it
//!   answers). The question is asked after the hold began, so the answer covers every
//!   node-down committed while the node was away, even one whose append still sat unread
//!   in a socket when the node came back. Messages that arrive after a silence are no proof
//!   of freshness; a round trip begun after it is.
//! * Once the node has applied up to that index, held deliveries are released, each only if
//!   the state it has applied still checks the message out to that connection
//!   (`server/routes.rs`).
//!
//! A single node (no peers) is never cut off.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

use crate::limits::LEADER_CONTACT_STALE_AFTER;

/// Whether, and until when, deliveries are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Deliveries leave as entries are applied.
    Open,
    /// Held; the leader's read index is being asked for (by the `generation`th hold).
    Unknown { generation: u64 },
    /// Held until this node has applied this index.
    Until(u64),
}

/// What to do with an entry's deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Deliver them (after anything held, released first).
    Open,
    /// Hold them until the node has caught up.
    Hold,
}

#[derive(Debug)]
pub struct LeaderContact {
    /// When a leader was last heard (this node's monotonic clock), and the hold.
    state: Mutex<State>,
    /// The hold, for the tasks that ask the leader and release what is held.
    hold: watch::Sender<Hold>,
    /// False on a single node: nobody can take it for down.
    clustered: bool,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    generation: u64,
}

impl LeaderContact {
    pub fn new(clustered: bool) -> LeaderContact {
        // A clustered node starts held: until it has asked a leader it cannot know what
        // the cluster decided about its earlier life.
        let hold = match clustered {
            true => Hold::Unknown { generation: 1 },
            false => Hold::Open,
        };
        LeaderContact {
            state: Mutex::new(State {
                last: None,
                generation: 1,
            }),
            hold: watch::Sender::new(hold),
            clustered,
        }
    }

    /// An append from a leader arrived at `at`, before it is handed to Raft: if the node
    /// had heard nothing for too long, hold from now on (its entries may apply at once).
    pub fn receiving(&self, at: Instant) {
        let mut state = lock(&self.state);
        if self.silent_until(&state, at) {
            self.start_hold(&mut state, "a leader heard again after a silence");
        }
    }

    /// A leader's append that arrived at `at` was accepted.
    pub fn heard(&self, at: Instant) {
        let mut state = lock(&self.state);
        if state.last.is_none_or(|last| at > last) {
            state.last = Some(at);
        }
    }

    /// When an append from a leader last arrived here and was accepted (`None` before the
    /// first, or since a hold began after a silence).
    pub fn last_heard(&self) -> Option<Instant> {
        lock(&self.state).last
    }

    /// This node leads and a quorum acknowledged it at `at`.
    pub fn quorum_acked(&self, at: Instant) {
        self.receiving(at);
        self.heard(at);
    }

    /// Whether the deliveries of the entry at `applied_index`, applied now, may leave.
    pub fn gate(&self, applied_index: u64) -> Gate {
        if !self.clustered {
            return Gate::Open;
        }
        let mut state = lock(&self.state);
        if self.silent_until(&state, Instant::now()) {
            self.start_hold(&mut state, "no word from a leader");
        }
        match *self.hold.borrow() {
            Hold::Open => return Gate::Open,
            Hold::Unknown { .. } => return Gate::Hold,
            Hold::Until(target) if applied_index < target => return Gate::Hold,
            Hold::Until(_) => {}
        }
        tracing::info!(
            applied_index,
            "caught up with the leader: deliveries resume"
        );
        self.hold.send_replace(Hold::Open);
        Gate::Open
    }

    /// The leader answered the `generation`th hold's question, asked at `asked_at`: its
    /// read index. The answer is contact too.
    pub fn learned(&self, generation: u64, read_index: u64, asked_at: Instant) {
        let mut state = lock(&self.state);
        if state.last.is_none_or(|last| asked_at > last) {
            state.last = Some(asked_at);
        }
        if *self.hold.borrow() == (Hold::Unknown { generation }) {
            tracing::info!(
                read_index,
                "learned the leader's read index: holding until applied"
            );
            self.hold.send_replace(Hold::Until(read_index));
        }
    }

    /// Follows the hold (for the tasks that ask the leader and release what is held).
    pub fn subscribe(&self) -> watch::Receiver<Hold> {
        self.hold.subscribe()
    }

    fn silent_until(&self, state: &State, now: Instant) -> bool {
        self.clustered
            && state.last.is_some_and(|last| {
                now.saturating_duration_since(last) > LEADER_CONTACT_STALE_AFTER
            })
            && !matches!(*self.hold.borrow(), Hold::Unknown { .. })
    }

    fn start_hold(&self, state: &mut State, why: &'static str) {
        state.generation += 1;
        state.last = None;
        tracing::warn!(why, "deliveries held until this node has caught up");
        let generation = state.generation;
        self.hold.send_replace(Hold::Unknown { generation });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "contact_tests.rs"]
mod tests;
