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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, Phase};

    fn invoke(pid: u64, seq: u64, mid: u64, queue: &str) -> Event {
        Event::PublishInvoke {
            client: format!("p{pid}"),
            conn: 1,
            ch: 1,
            pid,
            seq,
            mid,
            queue: queue.into(),
            node: "n1".into(),
        }
    }

    fn deliver(pid: u64, seq: u64, mid: u64, body_ok: bool) -> Event {
        Event::Deliver {
            cid: 0,
            conn: 2,
            ch: 2,
            queue: "q0".into(),
            node: "n1".into(),
            pid,
            seq,
            mid,
            redelivered: false,
            delivery_count: None,
            tag: seq + 1,
            body_ok,
            phase: Phase::Run,
        }
    }

    /// The drain awaits confirmed messages not yet delivered with a good body; returned,
    /// nacked and unconfirmed ones are not awaited.
    #[test]
    fn awaited_ids_from_a_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.jsonl");
        let history = History::create(&path).expect("create");
        let events = [
            invoke(0, 0, 0, "q0"),
            Event::PublishOk { pid: 0, seq: 0 },
            invoke(0, 1, 1, "q0"),
            Event::PublishOk { pid: 0, seq: 1 },
            invoke(0, 2, 2, "q0"),
            Event::PublishReturned {
                pid: 0,
                seq: 2,
                reply_code: 312,
            },
            Event::PublishOk { pid: 0, seq: 2 },
            invoke(0, 3, 3, "q0"),
            Event::PublishNack { pid: 0, seq: 3 },
            invoke(1, 0, 0, "q1"),
            Event::PublishOk { pid: 1, seq: 0 },
            deliver(0, 0, 0, true),
            deliver(0, 1, 1, false),
        ];
        for event in events {
            history.record(event).expect("record");
        }
        history.flush().expect("flush");
        let ids = ConfirmedIds::from_history(&crate::history::read(&path).expect("read"));
        assert_eq!(ids.of_queue("q0"), BTreeSet::from([(0, 1)]));
        assert_eq!(ids.of_queue("q1"), BTreeSet::from([(1, 0)]));
        assert_eq!(ids.len(), 2);
    }
}
