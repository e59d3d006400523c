//! Leader loss: the evidence that lets a follower take its leader for gone before the
//! election timeout.
//!
//! When a process is killed, its kernel closes its TCP connections at once, so the followers
//! see the leader's connections to them end within a round trip (RabbitMQ learns of a dead
//! node the same way). Waiting for openraft's election timer instead costs its leader lease
//! and a drawn timeout (over half a second). This module keeps that evidence and states the
//! rule; `prompt_election.rs` acts on it.
//!
//! The rule ([`verdict`]): the leader is *gone* when a connection from it closed, nothing was
//! heard from it since, and the silence has lasted [`LEADER_GONE_SILENCE`] (two heartbeats).
//! One connection dropped by a live leader (a timeout on its side, then a redial) is followed
//! by its next heartbeat on another connection or the new one, so it never counts. A frozen
//! (SIGSTOP) or cut-off leader keeps its connections open: it is gone once nothing was heard
//! from it for [`LEADER_SILENT_GONE`] (five heartbeats), well before openraft's own timer.
//!
//! It never decides alone: a follower campaigns early only when a quorum of voters each see
//! the same evidence themselves (`prompt_election.rs`), which plays the part of Pre-Vote.
//! It reads only this node's monotonic clock (architecture invariant 7).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::contact::LeaderContact;
use super::types::NodeId;
use crate::limits::{LEADER_GONE_SILENCE, LEADER_SILENT_GONE};

/// What the evidence says about one leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A connection from it closed, nothing was heard since, and the silence is long enough.
    Gone,
    /// A connection closed and nothing was heard since, but the silence is still short: look
    /// again at this instant.
    NotYet(Instant),
    /// No connection from it closed, or it was heard from since one did.
    Alive,
}

/// The rule, on its own: `closed_at`, when a connection from the leader last closed here;
/// `last_heard`, when an append from a leader last arrived (see `LeaderContact::last_heard`).
pub fn verdict(closed_at: Option<Instant>, last_heard: Option<Instant>, now: Instant) -> Verdict {
    let closed_at = match closed_at {
        // Heard at or after the close: whatever closed, the leader still speaks.
        Some(closed) if last_heard.is_none_or(|heard| heard < closed) => closed,
        _ => return silent_since(last_heard, now),
    };
    // Never heard (or not since a hold began): the silence counts from the close only.
    let silent_since = last_heard.unwrap_or(closed_at);
    let gone_at = silent_since + LEADER_GONE_SILENCE;
    if now >= gone_at {
        Verdict::Gone
    } else {
        Verdict::NotYet(gone_at)
    }
}

/// The rule without a close: gone after [`LEADER_SILENT_GONE`] of silence. Never heard (a
/// node that just started, or one holding after a silence) counts as alive: the ordinary
/// timer elects then.
fn silent_since(last_heard: Option<Instant>, now: Instant) -> Verdict {
    let Some(heard) = last_heard else {
        return Verdict::Alive;
    };
    let gone_at = heard + LEADER_SILENT_GONE;
    if now >= gone_at {
        Verdict::Gone
    } else {
        Verdict::NotYet(gone_at)
    }
}

/// When each peer's connection to this node last closed, and when an append last arrived.
#[derive(Debug)]
pub struct LeaderLoss {
    closed: Mutex<BTreeMap<NodeId, Instant>>,
    /// When an append (a heartbeat included) last arrived, before Raft took it: a leader whose
    /// append waits here for a long fsync still speaks, though `LeaderContact` hears it only
    /// once the append is accepted (and the leader's call may time out and redial meanwhile).
    arrived: Mutex<Option<Instant>>,
    /// Bumped at every close, to wake those waiting for evidence.
    closes: watch::Sender<u64>,
}

impl Default for LeaderLoss {
    fn default() -> Self {
        LeaderLoss {
            closed: Mutex::new(BTreeMap::new()),
            arrived: Mutex::new(None),
            closes: watch::Sender::new(0),
        }
    }
}

impl LeaderLoss {
    /// A connection from `peer` (which it had opened to this node) closed at `at`.
    pub fn closed(&self, peer: NodeId, at: Instant) {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        let latest = closed.entry(peer).or_insert(at);
        if at > *latest {
            *latest = at;
        }
        drop(closed);
        self.closes.send_modify(|n| *n += 1);
    }

    /// An append from a leader arrived at `at`.
    pub fn append_arrived(&self, at: Instant) {
        let mut arrived = self.arrived.lock().unwrap_or_else(|p| p.into_inner());
        if arrived.is_none_or(|last| at > last) {
            *arrived = Some(at);
        }
    }

    /// When a connection from `peer` last closed here.
    pub fn closed_at(&self, peer: NodeId) -> Option<Instant> {
        let closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        closed.get(&peer).copied()
    }

    /// What the evidence says about `leader` now.
    pub fn verdict(&self, leader: NodeId, contact: &LeaderContact) -> Verdict {
        let arrived = *self.arrived.lock().unwrap_or_else(|p| p.into_inner());
        let last_heard = contact.last_heard().max(arrived);
        verdict(self.closed_at(leader), last_heard, Instant::now())
    }

    /// Waits, at most `bound`, for the evidence to say `leader` is gone: a close still to
    /// come, or a silence still to last. Whether it did.
    pub async fn wait_gone(
        &self,
        leader: NodeId,
        contact: &LeaderContact,
        bound: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        let mut closes = self.closes.subscribe();
        loop {
            let wake = match self.verdict(leader, contact) {
                Verdict::Gone => return true,
                Verdict::NotYet(at) => tokio::time::Instant::from_std(at).min(deadline),
                Verdict::Alive => deadline,
            };
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                changed = closes.changed() => {
                    if changed.is_err() {
                        return false; // Never: `self` holds the sender.
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

#[cfg(test)]
#[path = "leader_loss_tests.rs"]
mod tests;
