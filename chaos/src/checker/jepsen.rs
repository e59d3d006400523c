//! The Jepsen-compatible line: `total-queue` counted on attempt keys `(pid, seq)`, for
//! comparison with RabbitMQ's published Jepsen runs.
//!
//! As in Jepsen's checker: attempts are the enqueue invocations, acknowledged the enqueues
//! with an ok, and the dequeues every delivery line (valid or not). ok = acknowledged and
//! dequeued, lost = acknowledged and never dequeued, recovered = dequeued but not
//! acknowledged, unexpected = dequeued but never attempted, duplicated = dequeued more than
//! once.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::sets::{AttemptKey, Sets};

#[derive(Clone, Debug, Default, Serialize)]
pub struct JepsenLine {
    pub attempt_count: u64,
    pub acknowledged_count: u64,
    pub ok_count: u64,
    pub lost_count: u64,
    pub recovered_count: u64,
    pub unexpected_count: u64,
    pub duplicated_count: u64,
}

impl JepsenLine {
    pub fn from_sets(sets: &Sets) -> JepsenLine {
        let acknowledged: BTreeSet<AttemptKey> = sets
            .attempts
            .iter()
            .filter(|(_, a)| a.t_ok_ns.is_some())
            .map(|(k, _)| *k)
            .collect();
        let mut dequeued: BTreeMap<AttemptKey, u64> = BTreeMap::new();
        for d in &sets.deliveries {
            *dequeued.entry(d.attempt()).or_default() += 1;
        }
        let count =
            |keep: &dyn Fn(&AttemptKey) -> bool| dequeued.keys().filter(|k| keep(k)).count() as u64;
        JepsenLine {
            attempt_count: sets.attempts.len() as u64,
            acknowledged_count: acknowledged.len() as u64,
            ok_count: count(&|k| acknowledged.contains(k)),
            lost_count: acknowledged
                .iter()
                .filter(|k| !dequeued.contains_key(k))
                .count() as u64,
            recovered_count: count(&|k| sets.attempts.contains_key(k) && !acknowledged.contains(k)),
            unexpected_count: count(&|k| !sets.attempts.contains_key(k)),
            duplicated_count: dequeued.values().filter(|n| **n > 1).count() as u64,
        }
    }

    pub fn render(&self) -> String {
        format!(
            "attempt-count {} acknowledged-count {} ok-count {} lost {} recovered {} unexpected {} duplicated {}",
            self.attempt_count,
            self.acknowledged_count,
            self.ok_count,
            self.lost_count,
            self.recovered_count,
            self.unexpected_count,
            self.duplicated_count
        )
    }
}
