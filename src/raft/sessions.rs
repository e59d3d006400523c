//! Proposer sessions: each proposer's batches apply exactly once and in the order it numbered
//! them, however often and through however many leaders they are retried.
//!
//! A proposer (one per start of a node, renewed when it gives a batch up) numbers its
//! batches 1, 2, 3, ... The state machine applies batch `seq` only right after `seq - 1`:
//! * an older `seq` is a retry of a batch already applied: it is not applied again, and its
//!   replies are answered from a small window (or "expired" when they have left it);
//! * a newer one has a gap before it (an earlier batch was lost with a deposed leader): it
//!   is refused "out of order", and the proposer resends from the gap.
//!
//! So a leader change can neither reorder a proposer's batches (the rabbitmq-server #1906
//! class: an older batch retried after newer ones committed) nor apply one twice. Sessions
//! are part of the replicated state (in snapshots), so every node decides the same way.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::broker::command::{Refusal, Reply};

/// Replies kept per proposer for retries: more than the entries a proposer has in flight.
const REPLIES_KEPT: usize = 32;
/// Sessions kept; beyond it the one idle longest (lowest last index) is dropped.
const SESSIONS_MAX: usize = 1024;

/// Who proposed a batch, and its number in that proposer's sequence (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub proposer: u64,
    pub seq: u64,
}

/// What the state machine did with a sequenced batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sequenced {
    /// Applied now (or the batch carried no origin).
    #[default]
    Applied,
    /// Applied before: the replies are those of that first application.
    Replayed,
    /// Applied before, and its replies have left the window: the outcome is lost.
    Expired,
    /// Not applied: an earlier batch of the proposer is missing.
    OutOfOrder,
}

type BatchReplies = Vec<Result<Reply, Refusal>>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    by_proposer: BTreeMap<u64, Session>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    last_seq: u64,
    /// Log index of the entry that applied `last_seq` (for eviction, deterministic).
    last_index: u64,
    replies: VecDeque<(u64, BatchReplies)>,
}

impl Sessions {
    /// Whether `origin` is next in its sequence; if not, what to answer instead.
    pub fn check(&self, origin: Origin) -> Result<(), (Sequenced, BatchReplies)> {
        let Some(session) = self.by_proposer.get(&origin.proposer) else {
            return match origin.seq {
                1 => Ok(()),
                _ => Err((Sequenced::OutOfOrder, Vec::new())),
            };
        };
        if origin.seq == session.last_seq + 1 {
            return Ok(());
        }
        if origin.seq > session.last_seq {
            return Err((Sequenced::OutOfOrder, Vec::new()));
        }
        match session.replies.iter().find(|(seq, _)| *seq == origin.seq) {
            Some((_, replies)) => Err((Sequenced::Replayed, replies.clone())),
            None => Err((Sequenced::Expired, Vec::new())),
        }
    }

    /// Records that `origin` was applied at log `index` with `replies`.
    pub fn record(&mut self, origin: Origin, index: u64, replies: &BatchReplies) {
        let session = self.by_proposer.entry(origin.proposer).or_default();
        session.last_seq = origin.seq;
        session.last_index = index;
        session.replies.push_back((origin.seq, replies.clone()));
        if session.replies.len() > REPLIES_KEPT {
            session.replies.pop_front();
        }
        if self.by_proposer.len() > SESSIONS_MAX {
            let idle = self
                .by_proposer
                .iter()
                .min_by_key(|(_, s)| s.last_index)
                .map(|(p, _)| *p);
            if let Some(proposer) = idle {
                self.by_proposer.remove(&proposer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64) -> Origin {
        Origin { proposer: 7, seq }
    }

    #[test]
    fn in_order_once_replayed_expired_and_gaps() {
        let mut sessions = Sessions::default();
        assert_eq!(sessions.check(at(2)), Err((Sequenced::OutOfOrder, vec![])));
        assert_eq!(sessions.check(at(1)), Ok(()));
        let replies: BatchReplies = vec![Ok(Reply::Done)];
        sessions.record(at(1), 10, &replies);
        assert_eq!(sessions.check(at(1)), Err((Sequenced::Replayed, replies)));
        assert_eq!(sessions.check(at(3)), Err((Sequenced::OutOfOrder, vec![])));
        assert_eq!(sessions.check(at(2)), Ok(()));
        for seq in 2..=(REPLIES_KEPT as u64 + 2) {
            sessions.record(at(seq), 10 + seq, &Vec::new());
        }
        assert_eq!(sessions.check(at(1)), Err((Sequenced::Expired, vec![])));
        let other = Origin {
            proposer: 8,
            seq: 1,
        };
        assert_eq!(sessions.check(other), Ok(()));
    }
}
