//! Catching up after a silence: while `raft/contact.rs` holds deliveries without knowing
//! until when, this task asks the leader for its read index (itself, when it leads), and
//! tells the contact the answer. The question is asked only after the hold began, which is
//! what makes the answer cover everything the cluster decided while this node was away.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::cluster::PeerAuth;
use crate::limits::CATCH_UP_RETRY;
use crate::raft::contact::Hold;
use crate::raft::node::RaftNode;
use crate::raft::peer_network::call_peer;
use crate::raft::protocol::{PeerRequest, PeerResponse};
use crate::raft::types::NodeId;

/// Starts the task; it ends with the node.
pub fn start(node: &Arc<RaftNode>, auth: PeerAuth) {
    let mut hold = node.contact().subscribe();
    let node = Arc::downgrade(node);
    tokio::spawn(async move {
        loop {
            let asked = hold.wait_for(|h| matches!(h, Hold::Unknown { .. })).await;
            let Ok(Hold::Unknown { generation }) = asked.map(|h| *h) else {
                return;
            };
            if !ask_once(&node, &auth, generation).await {
                return;
            }
        }
    });
}

/// One question to whoever leads; false once the node is gone.
async fn ask_once(node: &Weak<RaftNode>, auth: &PeerAuth, generation: u64) -> bool {
    let Some(node) = node.upgrade() else {
        return false;
    };
    let asked_at = Instant::now();
    match read_index(&node, auth).await {
        Ok(index) => node.contact().learned(generation, index, asked_at),
        Err(why) => {
            tracing::debug!(%why, "no read index yet; asking again");
            drop(node);
            tokio::time::sleep(CATCH_UP_RETRY).await;
        }
    }
    true
}

/// Waits until this node applied everything the cluster committed before the call (the
/// leader's read index), at most `timeout`; whether it did. A single node always has.
pub async fn catch_up(node: &RaftNode, auth: Option<&PeerAuth>, timeout: Duration) -> bool {
    let Some(auth) = auth else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    let asked = tokio::time::timeout(timeout, read_index(node, auth)).await;
    let Ok(Ok(index)) = asked else {
        return false;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    node.wait_applied(index, left).await
}

/// Waits until every member of the membership this node knows applied what the cluster
/// committed before the call, at most `timeout`; the members that did not answer yes in
/// time. A member that is down costs the wait, not a failure: the change is committed.
pub async fn spread(node: &RaftNode, auth: Option<&PeerAuth>, timeout: Duration) -> Vec<NodeId> {
    let Some(auth) = auth else {
        return Vec::new();
    };
    let deadline = Instant::now() + timeout;
    let Ok(Ok(index)) = tokio::time::timeout(timeout, read_index(node, auth)).await else {
        return node.members().all().map(|(id, _)| *id).collect();
    };
    let wait_ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis() as u64;
    let members = node.members();
    let asks = members.all().map(|(&id, addr)| {
        let addr = addr.clone();
        async move {
            let applied = if id == node.id {
                node.wait_applied(index, Duration::from_millis(wait_ms))
                    .await
            } else {
                let request = PeerRequest::AppliedAtLeast { index, wait_ms };
                let call = call_peer(&addr, id, node.id, auth, request);
                let answer = tokio::time::timeout_at(deadline.into(), call).await;
                matches!(answer, Ok(Ok(PeerResponse::AppliedAtLeast(true))))
            };
            (!applied).then_some(id)
        }
    });
    let missing = futures::future::join_all(asks).await;
    missing.into_iter().flatten().collect()
}

async fn read_index(node: &RaftNode, auth: &PeerAuth) -> anyhow::Result<u64> {
    let leader = node
        .leader()
        .ok_or_else(|| anyhow::anyhow!("no leader known"))?;
    if leader == node.id {
        return Ok(node.read_index().await?);
    }
    let addr = node.member_addr(leader)?;
    match call_peer(&addr, leader, node.id, auth, PeerRequest::ReadIndex).await? {
        PeerResponse::ReadIndex(index) => Ok(index),
        other => anyhow::bail!("leader {leader} answered {other:?}"),
    }
}
