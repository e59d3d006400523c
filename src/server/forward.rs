//! One attempt to commit a sequenced batch: on this node when it leads, otherwise forwarded
//! to the leader over a pipelined cluster connection. Deliveries need no forwarding: every node
//! applies the entry and the node holding each consumer's channel delivers.
//!
//! Every failure is an `Attempt::Failed` with its typed reason; but for `Expired`, the batch
//! is sent again: it carries its proposer's sequence number, so resending it can neither
//! apply it twice nor out of order (`crate::raft::sessions`). The sequencer
//! (`super::sequencer`) decides when to give up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::command::{Refusal, Reply};
use crate::cluster::PeerAuth;
use crate::limits::CLUSTER_CALL_TIMEOUT_MS;
use crate::limits::FORWARD_LEADER_WAIT;
use crate::raft::node::RaftNode;
use crate::raft::propose_error::ProposeError;
use crate::raft::protocol::PeerClient;
use crate::raft::protocol::{Answer, PeerPipeline};
use crate::raft::protocol::{PeerRequest, PeerResponse};
use crate::raft::sessions::Sequenced;
use crate::raft::state_machine::Batch;
use crate::raft::types::{NodeId, Response};

/// What became of one attempt.
#[derive(Debug)]
pub enum Attempt {
    /// Applied (now, or by an earlier attempt): the replies.
    Committed(Vec<Result<Reply, Refusal>>),
    /// No replies, and why. `Expired`: applied by an earlier attempt whose replies are gone
    /// (the outcome is unknown). Any other: not known to be applied, so it is sent again
    /// (after the earlier ones of its sequence).
    Failed(ProposeError),
}

impl Attempt {
    /// The attempt's outcome from the state machine's answer.
    pub fn from_response(response: Response) -> Attempt {
        match response.sequenced {
            Sequenced::Applied | Sequenced::Replayed => Attempt::Committed(response.replies),
            Sequenced::Expired => Attempt::Failed(ProposeError::Expired),
            Sequenced::OutOfOrder => Attempt::Failed(ProposeError::OutOfOrder),
        }
    }

    fn unknown(why: impl std::fmt::Display) -> Attempt {
        Attempt::Failed(ProposeError::unknown(why))
    }
}

/// Appends `batch` on this node (the leader) and returns what waits for its outcome.
pub async fn submit_here(node: &RaftNode, batch: &Batch) -> AttemptFuture {
    match node.submit(batch).await {
        Ok(committed) => Box::pin(async move {
            match committed.await {
                Ok(response) => Attempt::from_response(response),
                Err(e) => Attempt::Failed(e),
            }
        }),
        Err(e) => Box::pin(std::future::ready(Attempt::Failed(e))),
    }
}

/// The pipeline to the leader, kept while that node leads and nothing on it failed.
pub type LeaderLink = Option<PeerPipeline>;

/// What an attempt waits on once started.
pub type AttemptFuture = Pin<Box<dyn Future<Output = Attempt> + Send>>;

/// Sends `batch` to `leader` on `link` (opened first when it leads elsewhere or broke) and
/// returns what waits for its outcome (with no leader known, a wait for one, then a retry). Batches sent on one link reach the leader in the
/// order sent, and it appends them in that order, so several can be on their way at once.
pub async fn forward(
    node: &Arc<RaftNode>,
    auth: &PeerAuth,
    link: &mut LeaderLink,
    leader: Option<NodeId>,
    batch: &Batch,
) -> AttemptFuture {
    let Some(leader) = leader else {
        let node = Arc::clone(node);
        return Box::pin(async move {
            match node.wait_for_leader(FORWARD_LEADER_WAIT).await {
                Ok(leader) => Attempt::Failed(ProposeError::NotLeader {
                    leader: Some(leader),
                }),
                Err(e) => Attempt::unknown(format!("{e:#}")),
            }
        });
    };
    let answer = match send(node, auth, link, leader, batch).await {
        Ok(answer) => answer,
        Err(e) => {
            *link = None;
            return Box::pin(std::future::ready(Attempt::unknown(format!("{e:#}"))));
        }
    };
    // A paused or cut-off leader may hold the answer until the timeout; once another node
    // leads, the batch is better sent there (the sessions make the resend safe).
    let node = Arc::clone(node);
    Box::pin(async move {
        let replaced = node.wait_leader_other_than(Some(leader), None);
        let timeout = Duration::from_millis(CLUSTER_CALL_TIMEOUT_MS);
        tokio::select! {
            answer = tokio::time::timeout(timeout, answer) => match answer {
                Ok(Ok(Ok(response))) => from_leader(leader, response),
                Ok(Ok(Err(e))) => Attempt::unknown(format!("forward to leader {leader}: {e:#}")),
                Ok(Err(_)) => Attempt::unknown(format!("forward to leader {leader}: link broke")),
                Err(_) => Attempt::unknown(format!("forward to leader {leader}: no answer in {timeout:?}")),
            },
            _ = replaced => Attempt::unknown(format!("leader {leader} replaced")),
        }
    })
}

async fn send(
    node: &RaftNode,
    auth: &PeerAuth,
    link: &mut LeaderLink,
    leader: NodeId,
    batch: &Batch,
) -> anyhow::Result<Answer> {
    if link
        .as_ref()
        .is_none_or(|l| l.to() != leader || l.is_broken())
    {
        let client = PeerClient::new(node.member_addr(leader)?, node.id, leader, auth.clone());
        *link = Some(PeerPipeline::open(&client).await?);
    }
    let Some(pipeline) = link.as_mut() else {
        anyhow::bail!("no link to leader {leader}");
    };
    let timeout = Duration::from_millis(CLUSTER_CALL_TIMEOUT_MS);
    pipeline
        .send(&PeerRequest::Propose(batch.clone()), timeout)
        .await
}

fn from_leader(leader: NodeId, response: PeerResponse) -> Attempt {
    match response {
        PeerResponse::Replies(replies) => Attempt::Committed(replies),
        PeerResponse::Refused(why) => Attempt::Failed(why),
        other => Attempt::unknown(format!("leader {leader}: unexpected answer {other:?}")),
    }
}
