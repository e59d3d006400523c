//! Whether the drain completed, and whether nodes at the same applied index agree on the
//! state (CHECKER.md: drain_incomplete, digest_mismatch).

use std::collections::{BTreeMap, BTreeSet};

use super::report::Report;
use super::sets::Sets;

/// A queue's drain is complete when its last `drain_end` says complete with nothing ready or
/// unacked. Every queue that was published to must have one: a queue the drain skipped
/// cannot prove anything lost or not.
pub fn check_drain(sets: &Sets, report: &mut Report) {
    report.drain_seen = sets.t_drain_start_ns.is_some();
    let mut queues: BTreeSet<&String> = sets.attempts.values().map(|a| &a.queue).collect();
    queues.extend(sets.drain_ends.keys());
    for queue in queues {
        let done = match sets.drain_ends.get(queue) {
            Some((complete, ready, unacked)) => *complete && *ready == 0 && *unacked == 0,
            None => false,
        };
        if !done {
            report.drain_incomplete += 1;
            report.example("drain_incomplete", queue.clone());
        }
    }
}

/// Counts node pairs that report the same applied index with different hashes.
pub fn check_digests(sets: &Sets, report: &mut Report) {
    let mut by_index: BTreeMap<u64, Vec<(&String, &String)>> = BTreeMap::new();
    for (node, index, hash) in &sets.digests {
        by_index.entry(*index).or_default().push((node, hash));
    }
    for (index, nodes) in &by_index {
        for (i, (node_a, hash_a)) in nodes.iter().enumerate() {
            for (node_b, hash_b) in &nodes[i + 1..] {
                if hash_a != hash_b {
                    report.digest_mismatch += 1;
                    report.example("digest_mismatch", format!("{node_a}/{node_b}@{index}"));
                }
            }
        }
    }
}
