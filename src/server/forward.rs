//! Forwarding: a follower's proposer hands its batches to the leader over the cluster
//! transport, one at a time and in order, and gets the replies back once the leader has
//! committed and applied them. Deliveries need no forwarding: every node applies the entry
//! and the node holding each consumer's channel delivers.
//!
//! A batch the leader reports as "not committed: not the leader" was never appended, so it
//! is retried on the leader this node learns of next. Any other failure after the request left
//! (a lost connection, a timeout) leaves the outcome unknown: the submitters get `Unknown`
//! and close their channels with 541 (never a nack).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::cluster::cookie::Cookie;
use crate::cluster::transport::PeerClient;
use crate::cluster::{PeerRequest, PeerResponse};
use crate::raft::node::{NotLeader, RaftNode, Replies};
use crate::raft::state_machine::Batch;
use crate::raft::types::NodeId;

/// How long a batch waits for the cluster to have a leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// How many leaders a batch is offered to before its submitters are told "unknown".
const FORWARD_ATTEMPTS: usize = 40;

/// A batch to forward, who waits for its replies, and its in-flight slot.
pub struct Forward {
    pub batch: Batch,
    pub answer: Box<dyn FnOnce(Replies) + Send>,
    pub permit: OwnedSemaphorePermit,
}

/// Hands batches to the forwarding task, which sends them to the leader in order.
#[derive(Clone)]
pub struct Forwarder {
    queue: mpsc::Sender<Forward>,
}

impl Forwarder {
    pub fn start(node: Arc<RaftNode>, cookie: Cookie) -> Forwarder {
        let (queue, batches) = mpsc::channel(crate::limits::PROPOSE_ENTRIES_IN_FLIGHT_MAX);
        tokio::spawn(forward_loop(node, cookie, batches));
        Forwarder { queue }
    }

    pub async fn forward(&self, forward: Forward) {
        if let Err(mpsc::error::SendError(lost)) = self.queue.send(forward).await {
            (lost.answer)(Err(anyhow::anyhow!("forwarder stopped")));
        }
    }
}

async fn forward_loop(node: Arc<RaftNode>, cookie: Cookie, mut batches: mpsc::Receiver<Forward>) {
    let mut client: Option<(NodeId, PeerClient)> = None;
    while let Some(forward) = batches.recv().await {
        let replies = forward_one(&node, &cookie, &mut client, forward.batch).await;
        (forward.answer)(replies);
        drop(forward.permit);
    }
}

async fn forward_one(
    node: &RaftNode,
    cookie: &Cookie,
    client: &mut Option<(NodeId, PeerClient)>,
    batch: Batch,
) -> Replies {
    for _ in 0..FORWARD_ATTEMPTS {
        let leader = wait_for_leader(node).await?;
        if leader == node.id {
            match node.submit(&batch).await?.await {
                // A new leader takes writes once a quorum has acknowledged it.
                Err(e) if e.downcast_ref::<NotLeader>().is_some() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                replies => return replies,
            }
        }
        if client.as_ref().is_none_or(|(id, _)| *id != leader) {
            let addr = leader_addr(node, leader)?;
            *client = Some((
                leader,
                PeerClient::new(addr, node.id, leader, cookie.clone()),
            ));
        }
        let Some((_, peer)) = client.as_mut() else {
            continue;
        };
        match peer.call(PeerRequest::Propose(batch.clone())).await {
            Ok(PeerResponse::Replies(replies)) => return Ok(replies),
            Ok(PeerResponse::NotCommitted { reason, .. }) if reason == "not the leader" => {
                // Never appended there: safe to offer to the next leader.
                *client = None;
                node.raft
                    .wait(Some(Duration::from_millis(300)))
                    .metrics(|m| m.current_leader != Some(leader), "leader change")
                    .await
                    .ok();
            }
            Ok(other) => anyhow::bail!("leader {leader} did not commit the batch: {other:?}"),
            Err(e) => {
                *client = None;
                return Err(e.context(format!("forward to leader {leader}; outcome unknown")));
            }
        }
    }
    anyhow::bail!("no leader took the batch after {FORWARD_ATTEMPTS} attempts")
}

async fn wait_for_leader(node: &RaftNode) -> anyhow::Result<NodeId> {
    let metrics = node
        .raft
        .wait(Some(LEADER_WAIT))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .context("no leader")?;
    metrics.current_leader.context("no leader")
}

fn leader_addr(node: &RaftNode, leader: NodeId) -> anyhow::Result<String> {
    let metrics = node.raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    let addr = membership
        .get_node(&leader)
        .map(|n| n.addr.clone())
        .with_context(|| format!("leader {leader} has no address in the membership"))?;
    Ok(addr)
}
