//! What the rest of the node reads of Raft, and waits for, without naming openraft: the
//! leader, the members and their addresses, the heartbeat acknowledgements the leader has
//! seen, and the end of the Raft core. Architecture invariant 9: openraft's types stay
//! inside `src/raft`.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::Instant as _;

use super::node::RaftNode;
use super::types::NodeId;

/// The members of the membership this node knows, with their cluster addresses.
#[derive(Clone, Debug, Default)]
pub struct Members {
    pub voters: BTreeMap<NodeId, String>,
    pub learners: BTreeMap<NodeId, String>,
}

impl Members {
    /// Every member, voters first.
    pub fn all(&self) -> impl Iterator<Item = (&NodeId, &String)> {
        self.voters.iter().chain(&self.learners)
    }
}

/// The leader's term and, per other member, how long since it last acknowledged a
/// heartbeat (`None`: never, in this term).
pub type HeartbeatSilences = (u64, Vec<(NodeId, Option<Duration>)>);

/// This node's view of Raft, for `warren cluster-status`.
#[derive(Clone, Debug)]
pub struct RaftView {
    /// "leader", "follower", "learner", "candidate" or "shutdown".
    pub state: String,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub leader: Option<NodeId>,
    pub members: Members,
    /// On the leader: each member's matched log index.
    pub replication: Vec<(NodeId, Option<u64>)>,
}

impl RaftNode {
    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// The current term, as this node knows it.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// The members of the membership this node knows.
    pub fn members(&self) -> Members {
        members_of(&self.raft.metrics().borrow_watched())
    }

    /// Member `id`'s cluster address, if the membership this node knows gives one.
    pub fn member_addr(&self, id: NodeId) -> anyhow::Result<String> {
        let receiver = self.raft.metrics();
        let metrics = receiver.borrow_watched();
        let node = metrics.membership_config.membership().get_node(&id);
        let addr = node.map(|n| n.addr.clone()).filter(|a| !a.is_empty());
        addr.ok_or_else(|| anyhow::anyhow!("node {id} has no address in the membership"))
    }

    /// This node's view of Raft.
    pub fn view(&self) -> RaftView {
        let m = self.raft.metrics().borrow_watched().clone();
        let replication = m.replication.clone().map(|r| {
            let matched = r.into_iter().map(|(id, l)| (id, l.map(|l| l.index)));
            matched.collect()
        });
        RaftView {
            state: format!("{:?}", m.state).to_lowercase(),
            term: m.current_term,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            leader: m.current_leader,
            members: members_of(&m),
            replication: replication.unwrap_or_default(),
        }
    }

    /// On the leader, its term and how long since each other member last acknowledged a
    /// heartbeat (`None`: never, in this term); `None` on any other node.
    pub fn heartbeat_silences(&self) -> Option<HeartbeatSilences> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let leads = metrics.current_leader == Some(self.id);
        let heartbeats = metrics.heartbeat.filter(|_| leads)?;
        let others = heartbeats.iter().filter(|(id, _)| **id != self.id);
        let silences = others.map(|(id, at)| (*id, at.map(|at| at.elapsed())));
        Some((metrics.current_term, silences.collect()))
    }

    /// Waits (at most `timeout`) until a leader is known; its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<NodeId> {
        let known = self.raft.wait(Some(timeout));
        let metrics = known
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|e| anyhow::anyhow!("no leader: {e}"))?;
        metrics
            .current_leader
            .ok_or_else(|| anyhow::anyhow!("no leader"))
    }

    /// Resolves once a leader other than `leader` is known (at most `timeout`, if given);
    /// whether one is.
    pub async fn wait_leader_other_than(
        &self,
        leader: Option<NodeId>,
        timeout: Option<Duration>,
    ) -> bool {
        let other = |m: &openraft::RaftMetrics<super::types::TypeConfig>| {
            m.current_leader.is_some() && m.current_leader != leader
        };
        let wait = self.raft.wait(timeout);
        wait.metrics(other, "another leader").await.is_ok()
    }

    /// Resolves when the Raft core has stopped (on its own or by `shutdown`).
    pub async fn wait_stopped(&self) {
        let stopped = |m: &openraft::RaftMetrics<super::types::TypeConfig>| {
            m.state == openraft::ServerState::Shutdown
        };
        let wait = self.raft.wait(None);
        let _ = wait.metrics(stopped, "raft core stops").await;
    }
}

fn members_of(metrics: &openraft::RaftMetrics<super::types::TypeConfig>) -> Members {
    let membership = metrics.membership_config.membership();
    let addr = |id: NodeId| {
        let node = membership.get_node(&id);
        node.map(|n| n.addr.clone()).unwrap_or_default()
    };
    Members {
        voters: membership.voter_ids().map(|id| (id, addr(id))).collect(),
        learners: membership.learner_ids().map(|id| (id, addr(id))).collect(),
    }
}
