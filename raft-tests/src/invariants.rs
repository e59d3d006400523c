//! The checks every test ends with, after healing the network:
//!
//! 1. Election safety: at most one leader per term, over everything the [`Recorder`] saw
//!    during the test (each node's own claim to lead, and each node's committed vote).
//! 2. Log matching: for every pair of running nodes, an index both logs hold with the same
//!    log id holds the same entry, and so does every index below it that both hold.
//! 3. State machine safety: once every live member has applied the leader's whole log,
//!    all of them report the same applied index and the same broker-state digest.
//! 4. Durability: every publish the cluster confirmed is in every live member's broker
//!    state exactly once (and no message is there twice).
//!
//! A live member is a running node in the leader's membership (a removed node, or a RAM
//! node not yet joined, only takes part in the log matching check).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use openraft::async_runtime::WatchReceiver;
use openraft::vote::RaftLeaderId;
use openraft::ServerState;

use warren::raft::node::Raft;
use warren::raft::types::{Entry, NodeId};

use crate::cluster::Cluster;
use crate::WAIT;

/// Who led each term, as seen in every node's metrics while the test ran.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    leaders: Arc<Mutex<BTreeMap<u64, BTreeSet<NodeId>>>>,
}

impl Recorder {
    /// Records `raft`'s observations until it shuts down. A watch shows the latest
    /// metrics, so a short-lived state may be missed: the check can only miss a violation,
    /// never report one that did not happen.
    pub fn watch(&self, raft: &Raft) {
        let mut metrics = raft.metrics();
        let leaders = Arc::clone(&self.leaders);
        tokio::spawn(async move {
            loop {
                let seen = {
                    let m = metrics.borrow_watched();
                    let mut seen = Vec::new();
                    if m.state == ServerState::Leader {
                        seen.push((m.current_term, m.id));
                    }
                    if m.vote.is_committed() {
                        let leader = m.vote.leader_id();
                        seen.push((leader.term(), *leader.node_id()));
                    }
                    seen
                };
                record(&leaders, seen);
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// The leaders seen for each term.
    pub fn leaders(&self) -> BTreeMap<u64, BTreeSet<NodeId>> {
        self.leaders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Check 1.
    pub fn assert_one_leader_per_term(&self) {
        for (term, ids) in self.leaders() {
            assert!(ids.len() <= 1, "term {term} had leaders {ids:?}");
        }
    }
}

fn record(leaders: &Mutex<BTreeMap<u64, BTreeSet<NodeId>>>, seen: Vec<(u64, NodeId)>) {
    let mut leaders = leaders.lock().unwrap_or_else(|p| p.into_inner());
    for (term, id) in seen {
        leaders.entry(term).or_default().insert(id);
    }
}

/// Heals the network and runs all four checks on `cluster`.
pub async fn check_invariants(cluster: &Cluster) {
    tracing::info!("--- invariants: heal, then check");
    cluster.net.heal_all();
    cluster.recorder.assert_one_leader_per_term();
    let live = live_members(cluster).await;
    assert_same_state(cluster, &live).await;
    assert_logs_match(cluster).await;
    assert_confirmed_everywhere(cluster, &live);
}

/// The running nodes in the membership of the leader they agree on.
async fn live_members(cluster: &Cluster) -> Vec<NodeId> {
    let running: BTreeSet<NodeId> = cluster.members.keys().copied().collect();
    let any = cluster.members.values().next().expect("a running node");
    let metrics = any
        .node
        .openraft()
        .wait(WAIT)
        .metrics(
            |m| m.current_leader.is_some_and(|l| running.contains(&l)),
            "a running leader",
        )
        .await
        .expect("a leader after healing");
    let leader = metrics.current_leader.expect("leader");
    let membership = cluster
        .node(leader)
        .openraft()
        .metrics()
        .borrow_watched()
        .clone();
    let live: Vec<NodeId> = membership
        .membership_config
        .nodes()
        .map(|(id, _)| *id)
        .filter(|id| running.contains(id))
        .collect();
    let agreed = cluster.leader_among(&live).await;
    assert_eq!(agreed, leader, "the live members follow the leader found");
    live
}

/// How many times the state check looks again because a new leader appended meanwhile.
const SETTLE_ATTEMPTS_MAX: usize = 5;

/// Check 3. Every live member applies the leader's whole log; then all must report one
/// applied index and one digest. A heal may cause an election (a node that campaigned
/// while cut off), whose first entry moves the goal: then look again.
async fn assert_same_state(cluster: &Cluster, live: &[NodeId]) {
    for _ in 0..SETTLE_ATTEMPTS_MAX {
        let leader = cluster.leader_among(live).await;
        let index = cluster.members[&leader].settled_index().await;
        for id in live {
            cluster
                .node(*id)
                .openraft()
                .wait(WAIT)
                .applied_index_at_least(Some(index), format!("node {id} applies {index}"))
                .await
                .expect("every live member applies the leader's log");
        }
        let digests: BTreeMap<NodeId, (Option<u64>, String)> = live
            .iter()
            .map(|id| (*id, cluster.node(*id).state_machine.digest()))
            .collect();
        let applied: BTreeSet<Option<u64>> = digests.values().map(|(at, _)| *at).collect();
        if applied.len() > 1 {
            tracing::info!(?digests, "invariants: applied indexes differ; settle again");
            continue;
        }
        let distinct: BTreeSet<&String> = digests.values().map(|(_, hash)| hash).collect();
        assert_eq!(
            distinct.len(),
            1,
            "state digests at index {index}: {digests:?}"
        );
        return;
    }
    panic!("live members never settled at one applied index");
}

/// Check 2, over every pair of running nodes.
async fn assert_logs_match(cluster: &Cluster) {
    let mut logs = BTreeMap::new();
    for (id, member) in &cluster.members {
        let entries = member.node.log_entries().await.expect("read the log");
        logs.insert(*id, entries);
    }
    for (a, log_a) in &logs {
        for (b, log_b) in logs.range(a + 1..) {
            assert_pair_matches((*a, log_a), (*b, log_b));
        }
    }
}

fn assert_pair_matches((a, log_a): (NodeId, &[Entry]), (b, log_b): (NodeId, &[Entry])) {
    let by_index: BTreeMap<u64, &Entry> = log_b.iter().map(|e| (e.log_id.index, e)).collect();
    let mut matched_from: Option<u64> = None;
    // From the top down: once a log id matches, everything below must match too.
    for entry in log_a.iter().rev() {
        let index = entry.log_id.index;
        let Some(other) = by_index.get(&index) else {
            continue;
        };
        if entry.log_id == other.log_id {
            assert!(
                **other == *entry,
                "nodes {a} and {b}: same log id, other entry at {index}"
            );
            matched_from.get_or_insert(index);
        } else {
            assert!(
                matched_from.is_none(),
                "nodes {a} and {b} match at {matched_from:?} but differ below, at {index}"
            );
        }
    }
}

/// Check 4.
fn assert_confirmed_everywhere(cluster: &Cluster, live: &[NodeId]) {
    for id in live {
        // A disk node keeps bodies in sled: read them through the state machine.
        let messages = cluster
            .node(*id)
            .state_machine
            .messages_with_bodies()
            .expect("read the bodies");
        let mut bodies: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for message in &messages {
            *bodies.entry(message.content.body.to_vec()).or_default() += 1;
        }
        for (body, n) in &bodies {
            assert_eq!(
                *n,
                1,
                "node {id} holds {:?} {n} times",
                String::from_utf8_lossy(body)
            );
        }
        for n in cluster.confirmed() {
            let body = format!("m{n}").into_bytes();
            assert!(
                bodies.contains_key(&body),
                "node {id} lost confirmed publish m{n}"
            );
        }
    }
}

#[cfg(test)]
#[path = "invariants_tests.rs"]
mod tests;
