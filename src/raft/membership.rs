//! Membership changes, carried out by the leader: join (learner first, caught up, then
//! voter), remove, promote, demote. Every change is one of openraft's joint-consensus changes,
//! so the cluster keeps committing (and confirming publishes) while it happens.
//!
//! A node that is not the leader answers `NotCommitted` with the leader it knows of; the
//! `warren` command that asked follows it there.
//!
//! A learner becomes a voter only once it holds every entry the leader held when asked
//! (`wait_caught_up`), as RabbitMQ waits for a new quorum member to catch up before it counts
//! it: a voter that lags is one the quorum counts on and cannot use. With one other voter
//! down, every commit waits for it (issue 20: a repaired node promoted while far behind,
//! then a RAM node's restart, stopped confirms for 34 s).

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::metrics::WaitError;
use openraft::{BasicNode, ChangeMembers};

use super::node::RaftNode;
use super::protocol::{MembershipChange, PeerResponse};
use super::types::{config_node_of, is_ram_id, NodeId, TypeConfig};
use crate::limits::PROMOTE_CATCH_UP_S_MAX;

type ChangeError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;
type Change = ChangeMembers<NodeId, BasicNode>;

/// Why a change was not carried out.
enum Refused {
    /// openraft refused it (not the leader, a change in progress, ...).
    Raft(ChangeError),
    /// A condition of the change does not hold (the node is no learner, or it did not catch
    /// up in time): nothing changed.
    Unmet(String),
}

impl From<ChangeError> for Refused {
    fn from(e: ChangeError) -> Refused {
        Refused::Raft(e)
    }
}

/// Carries out `change` if this node leads; says who leads otherwise.
pub async fn change(node: &RaftNode, change: MembershipChange) -> PeerResponse {
    let leader = node.raft.metrics().borrow_watched().current_leader;
    if leader != Some(node.id) {
        return not_leader(leader);
    }
    tracing::info!(?change, "membership change");
    match carry_out(node, change).await {
        Ok(done) => {
            tracing::info!(%done, "membership changed");
            PeerResponse::Done(done)
        }
        Err(Refused::Raft(e)) => match e.forward_to_leader() {
            Some(f) => not_leader(f.leader_id),
            None => PeerResponse::Error(format!("membership change refused: {e}")),
        },
        Err(Refused::Unmet(why)) => {
            tracing::warn!(%why, "membership change refused");
            PeerResponse::Error(format!("membership change refused: {why}"))
        }
    }
}

fn not_leader(leader: Option<NodeId>) -> PeerResponse {
    PeerResponse::NotCommitted {
        leader,
        reason: "not the leader".to_string(),
    }
}

async fn carry_out(node: &RaftNode, change: MembershipChange) -> Result<String, Refused> {
    let raft = &node.raft;
    let (voters, learners) = members(node);
    match change {
        MembershipChange::Join { id, addr, voter } => {
            // Earlier starts of the same RAM node: dead, and never to vote again.
            let gone: BTreeSet<NodeId> = voters
                .iter()
                .chain(&learners)
                .copied()
                .filter(|m| *m != id && is_ram_id(*m) && config_node_of(*m) == config_node_of(id))
                .collect();
            if voters.contains(&id) && gone.is_empty() {
                return Ok(format!("node {id} is already a voter"));
            }
            // Blocking: returns once the learner is within openraft's lag threshold (5,000
            // entries); the voter step below waits for the rest.
            raft.add_learner(id, BasicNode::new(addr), true).await?;
            if voter {
                wait_caught_up(node, id).await?;
            }
            // retain = false: removed voters leave the membership entirely.
            let (gone_voters, gone_learners): (BTreeSet<NodeId>, BTreeSet<NodeId>) =
                gone.iter().partition(|m| voters.contains(m));
            let mut steps = Vec::new();
            if voter {
                steps.push(Change::AddVoterIds(BTreeSet::from([id])));
            }
            if !gone_voters.is_empty() {
                steps.push(Change::RemoveVoters(gone_voters));
            }
            if !gone_learners.is_empty() {
                steps.push(Change::RemoveNodes(gone_learners));
            }
            if !steps.is_empty() {
                raft.change_membership(Change::Batch(steps), false).await?;
            }
            let role = if voter { "voter" } else { "learner" };
            Ok(format!("node {id} joined as a {role}; removed {gone:?}"))
        }
        MembershipChange::Remove { id } => {
            if voters.contains(&id) {
                raft.change_membership(Change::RemoveVoters(BTreeSet::from([id])), false)
                    .await?;
            } else if learners.contains(&id) {
                raft.change_membership(Change::RemoveNodes(BTreeSet::from([id])), false)
                    .await?;
            } else {
                return Ok(format!("node {id} is not a member"));
            }
            Ok(format!("node {id} removed"))
        }
        MembershipChange::Promote { id } => {
            if voters.contains(&id) {
                return Ok(format!("node {id} is already a voter"));
            }
            if !learners.contains(&id) {
                return Err(Refused::Unmet(format!("node {id} is not a learner")));
            }
            wait_caught_up(node, id).await?;
            raft.change_membership(Change::AddVoterIds(BTreeSet::from([id])), false)
                .await?;
            Ok(format!("node {id} is a voter"))
        }
        MembershipChange::Demote { id } => {
            // retain = true: the removed voter stays as a learner.
            raft.change_membership(Change::RemoveVoters(BTreeSet::from([id])), true)
                .await?;
            Ok(format!("node {id} is a learner"))
        }
    }
}

/// Waits until this leader has replicated to learner `id` every entry it holds now. Refuses
/// after `PROMOTE_CATCH_UP_S_MAX`, naming how far the learner got; returns at once when this
/// node no longer leads (the change that follows is then refused with the new leader).
async fn wait_caught_up(node: &RaftNode, id: NodeId) -> Result<(), Refused> {
    let target = node.raft.metrics().borrow_watched().last_log_index;
    let matched = |m: &openraft::RaftMetrics<TypeConfig>| {
        let replication = m.replication.as_ref()?;
        replication.get(&id).cloned().flatten().map(|l| l.index)
    };
    let bound = Duration::from_secs(PROMOTE_CATCH_UP_S_MAX);
    let waited = node
        .raft
        .wait(Some(bound))
        .metrics(
            |m| m.replication.is_none() || matched(m) >= target,
            format!("learner {id} holds the leader's log up to {target:?}"),
        )
        .await;
    match waited {
        Ok(_) => Ok(()),
        Err(WaitError::Timeout(..)) => {
            let now = matched(&node.raft.metrics().borrow_watched().clone());
            Err(Refused::Unmet(format!(
                "node {id} has not caught up: it holds the log up to {now:?}, the leader had \
                 {target:?} {PROMOTE_CATCH_UP_S_MAX} s ago; it stays a learner"
            )))
        }
        Err(WaitError::ShuttingDown) => Err(Refused::Unmet("raft is shutting down".into())),
    }
}

/// The voters and learners of the membership this node knows.
pub fn members(node: &RaftNode) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
    let m = node.raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    (
        membership.voter_ids().collect(),
        membership.learner_ids().collect(),
    )
}
