//! A graceful stop: a leader hands its leadership to the most caught-up voter before it goes,
//! so the others need not wait for an election timeout to commit again.

use openraft::async_runtime::WatchReceiver;

use super::node::RaftNode;
use crate::limits::HAND_OVER_WAIT;

/// If this node leads, asks the voter with the highest matched log index to take over and
/// waits (bounded) until it has. Without a willing voter the node stops anyway: the others
/// then elect a leader after their election timeout.
pub async fn hand_over_leadership(node: &RaftNode) {
    let metrics = node.raft.metrics().borrow_watched().clone();
    if metrics.current_leader != Some(node.id) {
        return;
    }
    let voters: Vec<u64> = metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != node.id)
        .collect();
    let matched = |id: &u64| {
        metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(id).cloned().flatten())
            .map(|log_id| log_id.index)
    };
    let Some(to) = voters.iter().copied().max_by_key(|id| matched(id)) else {
        return;
    };
    tracing::info!(to, "handing leadership over before stopping");
    if let Err(e) = node.raft.trigger().transfer_leader(to).await {
        tracing::warn!(error = %e, "leadership transfer");
        return;
    }
    let handed = node
        .raft
        .wait(Some(HAND_OVER_WAIT))
        .metrics(
            |m| m.current_leader != Some(node.id),
            "leadership handed over",
        )
        .await;
    if handed.is_err() {
        tracing::warn!(to, "leadership not handed over in time; stopping anyway");
    }
}
