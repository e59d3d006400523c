//! Each node's own view of Raft, asked over the cluster transport exactly as
//! `warren cluster-status --json` does (src/cli/status.rs), but of every node at once with a
//! short timeout, so an isolated node does not hold up the others' samples.

use std::time::Duration;

use warren::cluster::handshake::ANY_NODE;
use warren::raft::peer_network::call_peer;
use warren::raft::protocol::{NodeStatus, PeerRequest, PeerResponse, StateDigest};

use super::cluster::Cluster;

/// How long a node may take to answer a status request before it counts as unreachable.
const VIEW_TIMEOUT: Duration = Duration::from_millis(1000);

/// A node's answer: the fields of `cluster-status --json` the harness uses.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub raft_state: String,
    /// The leader's Raft id (a RAM node's changes with every start).
    pub leader: Option<u64>,
    /// The leader's harness name ("n2"), from its cluster address in the membership.
    pub leader_name: Option<String>,
    pub term: u64,
    pub applied_index: u64,
}

/// Node `idx`'s own view, or None when it does not answer in time.
pub async fn view(cluster: &Cluster, idx: usize) -> Option<View> {
    let node = &cluster.nodes[idx];
    let addr = format!("{}:25672", node.ip);
    // ANY_NODE, as cluster-status: a RAM node's Raft id is not its configured id.
    let call = call_peer(&addr, ANY_NODE, 0, &cluster.cookie, PeerRequest::Status);
    let Ok(Ok(PeerResponse::Status(status))) = tokio::time::timeout(VIEW_TIMEOUT, call).await
    else {
        return None;
    };
    Some(View {
        leader_name: leader_name(&status),
        raft_state: status.raft_state,
        leader: status.leader,
        term: status.term,
        applied_index: status.applied_index.unwrap_or(0),
    })
}

/// Node `idx`'s applied index and state hash, read together (`cluster-status --digest`).
pub async fn digest(cluster: &Cluster, idx: usize) -> Option<StateDigest> {
    let node = &cluster.nodes[idx];
    let addr = format!("{}:25672", node.ip);
    let call = call_peer(&addr, ANY_NODE, 0, &cluster.cookie, PeerRequest::Digest);
    match tokio::time::timeout(VIEW_TIMEOUT, call).await {
        Ok(Ok(PeerResponse::Digest(digest))) => Some(digest),
        _ => None,
    }
}

/// The leader's name: its cluster address (10.213.0.N:25672) in the membership gives "nN".
fn leader_name(status: &NodeStatus) -> Option<String> {
    let leader = status.leader?;
    let (_, addr) = status
        .voters
        .iter()
        .chain(&status.learners)
        .find(|(id, _)| *id == leader)?;
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
    let octet = host.rsplit('.').next()?;
    Some(format!("n{octet}"))
}

/// Every node's view, asked concurrently.
pub async fn views(cluster: &Cluster) -> Vec<Option<View>> {
    let asks = (0..cluster.nodes.len()).map(|i| view(cluster, i));
    futures::future::join_all(asks).await
}

/// The index of the node that says it leads, at the highest term among those that do.
pub fn leader(views: &[Option<View>]) -> Option<usize> {
    views
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
        .filter(|(_, v)| v.raft_state == "leader")
        .max_by_key(|(_, v)| v.term)
        .map(|(i, _)| i)
}

/// Whether every node answers, exactly one leads, all agree on it, and all applied the same
/// index: the state the final heal waits for before the drain.
pub fn converged(views: &[Option<View>]) -> bool {
    let Some(all) = views.iter().cloned().collect::<Option<Vec<View>>>() else {
        return false;
    };
    let leaders = all.iter().filter(|v| v.raft_state == "leader").count();
    let Some(first) = all.first() else {
        return false;
    };
    leaders == 1
        && first.leader.is_some()
        && all
            .iter()
            .all(|v| v.leader == first.leader && v.applied_index == first.applied_index)
}

/// Polls until `converged` or `limit`; returns the last views and whether they converged.
pub async fn wait_converged(cluster: &Cluster, limit: Duration) -> (Vec<Option<View>>, bool) {
    let start = tokio::time::Instant::now();
    loop {
        let now = views(cluster).await;
        if converged(&now) {
            return (now, true);
        }
        if start.elapsed() >= limit {
            return (now, false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(state: &str, leader: Option<u64>, term: u64, applied: u64) -> Option<View> {
        Some(View {
            raft_state: state.into(),
            leader,
            leader_name: leader.map(|id| format!("n{id}")),
            term,
            applied_index: applied,
        })
    }

    #[test]
    fn the_leader_at_the_highest_term_wins_and_convergence_needs_everyone() {
        let stale = vec![
            v("leader", Some(1), 2, 10),
            v("leader", Some(2), 3, 12),
            v("follower", Some(2), 3, 12),
        ];
        assert_eq!(leader(&stale), Some(1));
        assert!(!converged(&stale));
        let ok = vec![
            v("follower", Some(2), 3, 12),
            v("leader", Some(2), 3, 12),
            v("follower", Some(2), 3, 12),
        ];
        assert!(converged(&ok));
        let lagging = vec![ok[0].clone(), ok[1].clone(), v("follower", Some(2), 3, 11)];
        assert!(!converged(&lagging));
        assert!(!converged(&[ok[0].clone(), ok[1].clone(), None]));
    }
}
