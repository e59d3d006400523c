//! Membership changes, carried out by the leader: join (learner first, caught up, then
//! voter), remove, promote, demote. Every change is one of openraft's joint-consensus changes,
//! so the cluster keeps committing (and confirming publishes) while it happens.
//!
//! A node that is not the leader answers `NotCommitted` with the leader it knows of; the
//! `warren` command that asked follows it there.

use std::collections::BTreeSet;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use crate::cluster::{MembershipChange, PeerResponse};
use crate::raft::node::RaftNode;
use crate::raft::types::{config_node_of, is_ram_id, NodeId, TypeConfig};

type ChangeError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;
type Change = ChangeMembers<NodeId, BasicNode>;

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
        Err(e) => match e.forward_to_leader() {
            Some(f) => not_leader(f.leader_id),
            None => PeerResponse::Error(format!("membership change refused: {e}")),
        },
    }
}

fn not_leader(leader: Option<NodeId>) -> PeerResponse {
    PeerResponse::NotCommitted {
        leader,
        reason: "not the leader".to_string(),
    }
}

async fn carry_out(node: &RaftNode, change: MembershipChange) -> Result<String, ChangeError> {
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
            // Blocking: returns once the learner has caught up (by snapshot if it must), so
            // it can count toward commits from the moment it becomes a voter.
            raft.add_learner(id, BasicNode::new(addr), true).await?;
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

/// The voters and learners of the membership this node knows.
pub fn members(node: &RaftNode) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
    let m = node.raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    (
        membership.voter_ids().collect(),
        membership.learner_ids().collect(),
    )
}
