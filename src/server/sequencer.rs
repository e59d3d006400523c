//! The sequencer: the one task that takes this node's entries to a commit, in order.
//!
//! It numbers every entry (its proposer id and sequence number, `crate::raft::sessions`),
//! keeps a window of entries whose outcome it has not seen, and sends them all at once
//! (pipelined): appended here when this node leads, down one connection to the leader
//! otherwise. Outcomes
//! are taken in sequence order. When one fails (a leader deposed mid-commit, a lost
//! connection, a gap), the attempts behind it are dropped and the window is sent again from
//! that entry, to whichever node leads now: the state machine applies each number once and
//! in order, so a resend can neither duplicate nor reorder. Only when the front entry's
//! outcome stays unknown past [`PROPOSE_GIVE_UP_AFTER`] are the window's submitters told "unknown"
//! (their channels close with 541, never a nack) and the sequence restarted under a new
//! proposer id.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::forward::{forward, submit_here, Attempt, AttemptFuture, LeaderLink};
use super::proposer::SubmitReplies;
use crate::cluster::PeerAuth;
use crate::limits::PROPOSE_ENTRIES_IN_FLIGHT_MAX;
use crate::limits::{PROPOSE_GIVE_UP_AFTER, PROPOSE_RETRY_WAIT};
use crate::raft::node::RaftNode;
use crate::raft::propose_error::ProposeError;
use crate::raft::sessions::Origin;
use crate::raft::state_machine::Batch;
use crate::raft::types::NodeId;

/// Who waits for a part of an entry's replies: how many commands are theirs, and where to.
pub type Waiters = Vec<(usize, oneshot::Sender<SubmitReplies>)>;

/// An entry on its way: the batch, who waits for its replies, and its in-flight slot.
pub struct Pending {
    pub batch: Batch,
    pub waiters: Waiters,
    pub permit: OwnedSemaphorePermit,
}

pub struct Sequencer {
    node: Arc<RaftNode>,
    /// The cluster cookie and TLS, to forward to the leader; `None` on a single node.
    auth: Option<PeerAuth>,
    /// Unanswered entries in sequence order; the first `in_flight.len()` are being tried.
    window: VecDeque<Pending>,
    in_flight: FuturesOrdered<AttemptFuture>,
    link: LeaderLink,
    /// This start's proposer ids are `base | epoch`.
    base: u64,
    epoch: u64,
    next_seq: u64,
    /// Since when the front entry has been failing.
    front_since: Option<Instant>,
}

impl Sequencer {
    /// `base` must differ from every earlier start's (node id and start time in its high
    /// bits); the low 16 bits count the sequences this start gives up.
    pub fn new(node: Arc<RaftNode>, auth: Option<PeerAuth>, base: u64) -> Sequencer {
        Sequencer {
            node,
            auth,
            window: VecDeque::new(),
            in_flight: FuturesOrdered::new(),
            link: None,
            base,
            epoch: 0,
            next_seq: 1,
            front_since: None,
        }
    }

    pub async fn run(mut self, mut entries: mpsc::Receiver<Pending>) {
        loop {
            if self.window.is_empty() {
                let Some(pending) = entries.recv().await else {
                    return;
                };
                self.admit(pending);
            }
            self.send_more().await;
            let has_room = self.window.len() < PROPOSE_ENTRIES_IN_FLIGHT_MAX;
            tokio::select! {
                Some(attempt) = self.in_flight.next() => self.settle(attempt).await,
                Some(pending) = entries.recv(), if has_room => self.admit(pending),
                else => return,
            }
        }
    }

    /// Numbers an entry and puts it at the back of the window.
    fn admit(&mut self, mut pending: Pending) {
        pending.batch.origin = Some(Origin {
            proposer: self.base | (self.epoch & 0xFFFF),
            seq: self.next_seq,
        });
        self.next_seq += 1;
        self.window.push_back(pending);
    }

    /// Starts attempts for the window's entries not being tried, in sequence order: appended
    /// here when this node leads, sent down one pipeline to the leader otherwise (both
    /// append in the order sent). Only one waits for a leader when none is known.
    async fn send_more(&mut self) {
        let leader = self.node.leader();
        let local = self.auth.is_none() || leader == Some(self.node.id);
        let limit = if local || leader.is_some() {
            PROPOSE_ENTRIES_IN_FLIGHT_MAX
        } else {
            1
        };
        while self.in_flight.len() < self.window.len().min(limit) {
            let batch = &self.window[self.in_flight.len()].batch;
            let attempt = match &self.auth {
                Some(auth) if !local => {
                    forward(&self.node, auth, &mut self.link, leader, batch).await
                }
                _ => submit_here(&self.node, batch).await,
            };
            self.in_flight.push_back(attempt);
        }
    }

    /// Handles the front entry's outcome.
    async fn settle(&mut self, attempt: Attempt) {
        match attempt {
            Attempt::Committed(replies) => self.answer_front(Ok(replies)),
            Attempt::Failed(ProposeError::Expired) => self.answer_front(Err(ProposeError::Expired)),
            Attempt::Failed(why) => {
                // What was sent behind it is sent again too, on a new link (late answers
                // on the old one would be out of step); the sessions sort it out.
                self.in_flight = FuturesOrdered::new();
                let tried = self.link.take().map(|link| link.to());
                let since = *self.front_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= PROPOSE_GIVE_UP_AFTER {
                    tracing::error!(%why, n = self.window.len(), "outcome unknown; giving up");
                    for pending in self.window.drain(..) {
                        super::batching::answer(pending.waiters, Err(why.clone()));
                    }
                    self.epoch += 1;
                    self.next_seq = 1;
                    self.front_since = None;
                    return;
                }
                tracing::debug!(%why, "entry not committed; sending it again");
                let leader = self.node.leader();
                if !retry_at_once(&why, leader, tried) {
                    let _ = self
                        .node
                        .wait_leader_other_than(leader, Some(PROPOSE_RETRY_WAIT))
                        .await;
                }
            }
        }
    }

    fn answer_front(&mut self, replies: crate::raft::node::Replies) {
        self.front_since = None;
        if let Some(pending) = self.window.pop_front() {
            super::batching::answer(pending.waiters, replies);
            drop(pending.permit);
        }
    }
}

/// Whether a failed attempt goes again without waiting for a leader change: it was refused
/// by a node that named a leader (or, with none known, a leader was found meanwhile), this
/// node knows that same leader now, and it is not the node just tried. Waiting for a change
/// here would only wait out [`PROPOSE_RETRY_WAIT`] after every election.
fn retry_at_once(why: &ProposeError, leader: Option<NodeId>, tried: Option<NodeId>) -> bool {
    match why {
        ProposeError::NotLeader {
            leader: Some(named),
        } => leader == Some(*named) && tried != Some(*named),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::retry_at_once;
    use crate::raft::propose_error::ProposeError;

    #[test]
    fn a_refusal_naming_the_known_leader_goes_again_at_once() {
        let named = |leader| ProposeError::NotLeader { leader };
        // Found a leader after none was known, or the old one named the new one.
        assert!(retry_at_once(&named(Some(2)), Some(2), None));
        assert!(retry_at_once(&named(Some(2)), Some(2), Some(1)));
        // This node knows another leader, or none, or the named one was just tried.
        assert!(!retry_at_once(&named(Some(2)), Some(3), Some(1)));
        assert!(!retry_at_once(&named(Some(2)), None, Some(1)));
        assert!(!retry_at_once(&named(Some(2)), Some(2), Some(2)));
        assert!(!retry_at_once(&named(None), Some(2), Some(1)));
        let broke = ProposeError::unknown("link broke");
        assert!(!retry_at_once(&broke, Some(2), Some(1)));
    }
}
