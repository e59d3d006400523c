//! What the workload knows at the end of a run: which messages were confirmed and which were
//! delivered, per queue, so the drain knows what it still waits for.
//!
//! Producers and consumers write here as they record into the history; the ledger is a
//! convenience for the drain, never a substitute for the history, which the checker reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::history::{Event, ReadHistory};

/// A logical message: its producer and its `mid` (mids are numbered per producer).
pub type MsgKey = (u64, u64);

/// Per queue, the confirmed messages the drain must still see.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfirmedIds {
    pub awaiting: BTreeMap<String, BTreeSet<MsgKey>>,
}

impl ConfirmedIds {
    /// The messages of `queue` still awaited (empty if none).
    pub fn of_queue(&self, queue: &str) -> BTreeSet<MsgKey> {
        self.awaiting.get(queue).cloned().unwrap_or_default()
    }

    /// Total awaited messages over all queues.
    pub fn len(&self) -> usize {
        self.awaiting.values().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Derives the awaited set from a history read back: messages with a `publish_ok` and no
    /// `publish_returned`, minus those delivered with a good body. For a harness that only
    /// has the history file.
    pub fn from_history(history: &ReadHistory) -> ConfirmedIds {
        let ledger = Ledger::default();
        let mut attempts: BTreeMap<(u64, u64), (u64, String)> = BTreeMap::new();
        let mut returned: BTreeSet<MsgKey> = BTreeSet::new();
        for line in &history.lines {
            match &line.event {
                Event::PublishInvoke {
                    pid,
                    seq,
                    mid,
                    queue,
                    ..
                } => {
                    attempts.insert((*pid, *seq), (*mid, queue.clone()));
                }
                Event::PublishOk { pid, seq } => {
                    if let Some((mid, queue)) = attempts.get(&(*pid, *seq)) {
                        ledger.confirmed(queue, (*pid, *mid));
                    }
                }
                Event::PublishReturned { pid, seq, .. } => {
                    if let Some((mid, _)) = attempts.get(&(*pid, *seq)) {
                        returned.insert((*pid, *mid));
                    }
                }
                Event::Deliver {
                    queue,
                    pid,
                    mid,
                    body_ok: true,
                    ..
                } => ledger.delivered(queue, (*pid, *mid)),
                _ => {}
            }
        }
        let mut ids = ledger.awaiting();
        for set in ids.awaiting.values_mut() {
            set.retain(|key| !returned.contains(key));
        }
        ids
    }
}

#[derive(Default)]
struct Sets {
    confirmed: BTreeMap<String, BTreeSet<MsgKey>>,
    delivered: BTreeMap<String, BTreeSet<MsgKey>>,
}

/// Confirmed and delivered messages per queue, shared by the workload's tasks.
#[derive(Default)]
pub struct Ledger {
    sets: Mutex<Sets>,
}

impl Ledger {
    pub fn confirmed(&self, queue: &str, key: MsgKey) {
        if let Ok(mut sets) = self.sets.lock() {
            sets.confirmed
                .entry(queue.to_string())
                .or_default()
                .insert(key);
        }
    }

    pub fn delivered(&self, queue: &str, key: MsgKey) {
        if let Ok(mut sets) = self.sets.lock() {
            sets.delivered
                .entry(queue.to_string())
                .or_default()
                .insert(key);
        }
    }

    /// Number of distinct confirmed messages.
    pub fn n_confirmed(&self) -> usize {
        self.sets
            .lock()
            .map(|s| s.confirmed.values().map(BTreeSet::len).sum())
            .unwrap_or(0)
    }

    /// Confirmed minus delivered, per queue.
    pub fn awaiting(&self) -> ConfirmedIds {
        let Ok(sets) = self.sets.lock() else {
            return ConfirmedIds::default();
        };
        let mut awaiting = BTreeMap::new();
        for (queue, confirmed) in &sets.confirmed {
            let delivered = sets.delivered.get(queue);
            let left: BTreeSet<MsgKey> = confirmed
                .iter()
                .filter(|key| !delivered.is_some_and(|d| d.contains(key)))
                .copied()
                .collect();
            awaiting.insert(queue.clone(), left);
        }
        ConfirmedIds { awaiting }
    }
}
