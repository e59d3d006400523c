//! One attempt to commit a sequenced batch: on this node when it leads, otherwise forwarded
//! to the leader over the cluster transport. Deliveries need no forwarding: every node
//! applies the entry and the node holding each consumer's channel delivers.
//!
//! Every failure is an `Attempt::Retry`: the batch carries its proposer's sequence number,
//! so resending it can neither apply it twice nor out of order (`crate::raft::sessions`).
//! The sequencer (`super::sequencer`) decides when to give up.

use std::time::Duration;

use anyhow::Context;
use openraft::async_runtime::WatchReceiver;

use crate::broker::command::{Refusal, Reply};
use crate::cluster::cookie::Cookie;
use crate::cluster::transport::PeerClient;
use crate::cluster::{PeerRequest, PeerResponse};
use crate::raft::node::RaftNode;
use crate::raft::sessions::Sequenced;
use crate::raft::state_machine::Batch;
use crate::raft::types::{NodeId, Response};

/// How long an attempt waits for the cluster to have a leader.
const LEADER_WAIT: Duration = Duration::from_secs(2);

/// What became of one attempt.
#[derive(Debug)]
pub enum Attempt {
    /// Applied (now, or by an earlier attempt): the replies.
    Committed(Vec<Result<Reply, Refusal>>),
    /// Applied by an earlier attempt whose replies are gone: the outcome is unknown.
    Expired,
    /// Not known to be applied: send it again (after the earlier ones of its sequence).
    Retry(String),
}

impl Attempt {
    /// The attempt's outcome from the state machine's answer.
    pub fn from_response(response: Response) -> Attempt {
        match response.sequenced {
            Sequenced::Applied | Sequenced::Replayed => Attempt::Committed(response.replies),
            Sequenced::Expired => Attempt::Expired,
            Sequenced::OutOfOrder => Attempt::Retry("out of order".to_string()),
        }
    }
}

/// Appends `batch` on this node (the leader) and waits for its outcome.
pub async fn commit_here(node: &RaftNode, batch: &Batch) -> Attempt {
    let committed = match node.submit(batch).await {
        Ok(response) => response.await,
        Err(e) => Err(e),
    };
    match committed {
        Ok(response) => Attempt::from_response(response),
        Err(e) => Attempt::Retry(format!("{e:#}")),
    }
}

/// The connection to the leader, kept between attempts while the leader stays the same.
pub type LeaderLink = Option<(NodeId, PeerClient)>;

/// Sends `batch` to the leader and waits for its outcome.
pub async fn commit_at_leader(
    node: &RaftNode,
    cookie: &Cookie,
    link: &mut LeaderLink,
    batch: &Batch,
) -> Attempt {
    let leader = match wait_for_leader(node).await {
        Ok(leader) => leader,
        Err(e) => return Attempt::Retry(format!("{e:#}")),
    };
    if leader == node.id {
        return commit_here(node, batch).await;
    }
    if link.as_ref().is_none_or(|(id, _)| *id != leader) {
        let addr = match leader_addr(node, leader) {
            Ok(addr) => addr,
            Err(e) => return Attempt::Retry(format!("{e:#}")),
        };
        *link = Some((
            leader,
            PeerClient::new(addr, node.id, leader, cookie.clone()),
        ));
    }
    let Some((_, peer)) = link.as_mut() else {
        return Attempt::Retry("no link to the leader".to_string());
    };
    // A paused or cut-off leader may hold the call until its timeout; once another node
    // leads, the batch is better sent there (the sessions make the resend safe).
    let waiter = node.raft.wait(None);
    let replaced = waiter.metrics(
        |m| m.current_leader.is_some() && m.current_leader != Some(leader),
        "leader replaced",
    );
    let answer = tokio::select! {
        answer = peer.call(PeerRequest::Propose(batch.clone())) => answer,
        _ = replaced => {
            *link = None;
            return Attempt::Retry(format!("leader {leader} replaced"));
        }
    };
    match answer {
        Ok(PeerResponse::Replies(replies)) => Attempt::Committed(replies),
        Ok(PeerResponse::NotCommitted { reason, .. }) if reason == "expired" => Attempt::Expired,
        Ok(other) => {
            *link = None;
            Attempt::Retry(format!("leader {leader}: {other:?}"))
        }
        Err(e) => {
            *link = None;
            Attempt::Retry(format!("forward to leader {leader}: {e:#}"))
        }
    }
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
