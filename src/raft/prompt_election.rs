//! Prompt elections: a follower that sees its leader gone (`leader_loss.rs`) campaigns at
//! once instead of after openraft's leader lease and election timeout.
//!
//! A Pre-Vote of our own, since openraft's cannot serve here: its voters refuse while their
//! leader lease lasts (the whole election timeout maximum after the last heartbeat), which is
//! exactly the wait to be cut. So:
//!
//! 1. A follower whose leader's connection closed waits for the rule's silence, then asks
//!    every other voter (`PeerRequest::LeaderGone`) whether it, too, takes that leader for
//!    gone by its own evidence ([`PromptElection::answer`]). A voter that hears the leader
//!    says no, so a link that flaps between a live leader and one follower deposes no one,
//!    and the term does not move.
//! 2. Only with a quorum of yes (itself included) does it start a real election
//!    (`trigger().elect(false)`: no openraft Pre-Vote, which its own lease would refuse).
//!    Of two followers that both saw the leader go, each says yes only to the one with the
//!    longer log (the lower id on a tie), so they do not split the vote.
//! 3. A voter that takes the leader for gone treats the vote request as openraft treats a
//!    leadership transfer: its lease is not in the way ([`PromptElection::vote_request`]).
//!    The log and term checks are openraft's, unchanged, so Raft's safety is untouched;
//!    only the lease is waived, and Warren reads nothing under a lease (its read index asks
//!    a quorum afresh, `node.rs`).
//!
//! The same happens, with the same quorum of yes, when a leader has been silent for
//! [`LEADER_SILENT_GONE`] with its connections open (a frozen or cut-off process:
//! [`PromptElection::watch_silence`]).
//!
//! A campaign that is refused or fails leaves the ordinary timer in charge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;
use tokio::sync::watch;

use super::contact::LeaderContact;
use super::leader_loss::{LeaderLoss, Verdict};
use super::node::Raft;
use super::peer_network::ClusterNetwork;
use super::protocol::{PeerRequest, PeerResponse};
use super::types::{NodeId, TypeConfig};
use crate::limits::{
    CLUSTER_RPC_TIMEOUT_MIN_MS, LEADER_GONE_ANSWER_WAIT, LEADER_GONE_SILENCE, LEADER_SILENT_GONE,
    RAFT_HEARTBEAT_MS,
};

/// What the prompt elections of this node came to, for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Campaigns {
    /// Elections started after a quorum agreed the leader was gone.
    pub started: u64,
    /// Campaigns given up: a voter said no, or the leader spoke again.
    pub refused: u64,
}

pub struct PromptElection {
    id: NodeId,
    raft: Raft,
    contact: Arc<LeaderContact>,
    loss: LeaderLoss,
    /// `None` on a single node: there is no one to ask.
    network: Option<ClusterNetwork>,
    campaigning: AtomicBool,
    campaigns: watch::Sender<Campaigns>,
}

impl PromptElection {
    pub fn new(
        id: NodeId,
        raft: Raft,
        contact: Arc<LeaderContact>,
        network: Option<ClusterNetwork>,
    ) -> PromptElection {
        PromptElection {
            id,
            raft,
            contact,
            loss: LeaderLoss::default(),
            network,
            campaigning: AtomicBool::new(false),
            campaigns: watch::Sender::new(Campaigns::default()),
        }
    }

    /// An append from a leader arrived at `at` (before Raft takes it).
    pub fn append_arrived(&self, at: Instant) {
        self.loss.append_arrived(at);
    }

    /// Follows what the campaigns came to.
    pub fn campaigns(&self) -> watch::Receiver<Campaigns> {
        self.campaigns.subscribe()
    }

    /// A connection that `peer` opened to this node closed (the transport saw its end or an
    /// error). When `peer` is the leader this node follows, a campaign starts in the
    /// background (one at a time).
    pub fn peer_closed(self: &Arc<Self>, peer: NodeId) {
        self.loss.closed(peer, Instant::now());
        self.start_campaign(peer);
    }

    /// Watches for a leader that went silent with its connections open (frozen by SIGSTOP,
    /// or cut off): every heartbeat interval, a follower whose leader is gone by the rule
    /// (`leader_loss.rs`, [`LEADER_SILENT_GONE`]) campaigns as after a close; after a
    /// campaign it lets the silence rule's span pass before it tries again, so a follower
    /// cut off from a live leader asks its peers twice a second, not without pause. Ends
    /// with the node.
    pub async fn watch_silence(this: Weak<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(RAFT_HEARTBEAT_MS)).await;
            let Some(prompt) = this.upgrade() else {
                return;
            };
            let leader = prompt.raft.metrics().borrow_watched().current_leader;
            let gone = leader.filter(|l| {
                *l != prompt.id && prompt.loss.verdict(*l, &prompt.contact) == Verdict::Gone
            });
            let started = gone.is_some_and(|leader| prompt.start_campaign(leader));
            drop(prompt);
            if started {
                tokio::time::sleep(LEADER_SILENT_GONE).await;
            }
        }
    }

    /// Starts a campaign against `leader` in the background, if this node is a voter that
    /// follows it and no other campaign runs; whether it started one.
    fn start_campaign(self: &Arc<Self>, leader: NodeId) -> bool {
        if self.network.is_none() || self.follows(leader).is_none() {
            return false;
        }
        if self.campaigning.swap(true, Ordering::AcqRel) {
            return false;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let started = this.campaign(leader).await;
            this.campaigns.send_modify(|c| match started {
                true => c.started += 1,
                false => c.refused += 1,
            });
            this.campaigning.store(false, Ordering::Release);
        });
        true
    }

    /// This node's last log index and the voters of its membership, if it is a voter that
    /// follows `leader`.
    fn follows(&self, leader: NodeId) -> Option<(Option<u64>, Vec<NodeId>)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        let follows = m.state == ServerState::Follower && m.current_leader == Some(leader);
        if !follows || !voters.contains(&self.id) {
            return None;
        }
        Some((m.last_log_index, voters))
    }

    /// Waits for the evidence, asks the other voters, and elects with a quorum's yes.
    /// Whether it started an election.
    async fn campaign(&self, leader: NodeId) -> bool {
        // The silence counts from the last word, at most a heartbeat before the close; twice
        // the silence is ample for the rule to decide.
        if !self
            .loss
            .wait_gone(leader, &self.contact, 2 * LEADER_GONE_SILENCE)
            .await
        {
            return false;
        }
        let Some((last, voters)) = self.follows(leader) else {
            return false;
        };
        let Some(network) = &self.network else {
            return false;
        };
        let quorum = voters.len() / 2 + 1;
        let asked = voters.iter().filter(|v| **v != self.id && **v != leader);
        let answers = asked.map(|&voter| {
            let request = PeerRequest::LeaderGone {
                leader,
                candidate: self.id,
                last_log_index: last,
            };
            let addr = self.member_addr(voter);
            async move { network.ask_leader_gone(voter, &addr?, request).await }
        });
        let yes = futures::future::join_all(answers)
            .await
            .into_iter()
            .filter(|answer| *answer == Some(true))
            .count();
        // Still gone (a live leader may have spoken meanwhile), still its follower.
        let gone = self.loss.verdict(leader, &self.contact) == Verdict::Gone;
        if 1 + yes < quorum || !gone || self.follows(leader).is_none() {
            tracing::info!(
                leader,
                yes,
                quorum,
                gone,
                "leader gone by this node's evidence, not by a quorum's; no prompt election"
            );
            return false;
        }
        tracing::info!(leader, yes, quorum, "leader gone: electing at once");
        self.raft.trigger().elect(false).await.is_ok()
    }

    fn member_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let node = m.membership_config.membership().get_node(&id);
        node.map(|n| n.addr.clone())
    }

    /// A voter's answer to `candidate`, whose leader's connection closed: yes if this node
    /// takes `leader` for gone by its own evidence (waiting a little for it), follows no
    /// other leader, and would rather see `candidate` lead than itself.
    pub async fn answer(&self, leader: NodeId, candidate: NodeId, last: Option<u64>) -> bool {
        let Some((mine, _)) = self.follows(leader) else {
            return false;
        };
        let gone = self
            .loss
            .wait_gone(leader, &self.contact, LEADER_GONE_ANSWER_WAIT);
        if !gone.await || self.follows(leader).is_none() {
            return false;
        }
        // The longer log wins, as in a vote; the lower id on a tie, so that of two followers
        // who both saw the leader go exactly one gets the other's yes. Indexes, not log ids:
        // followers of one leader hold entries of its term at the end of their logs, and a
        // wrong pick only means openraft's vote refuses it and the timer elects instead.
        last > mine || (last == mine && candidate < self.id)
    }

    /// A vote request as this node should judge it: when the leader it follows is gone by
    /// its own evidence, like a leadership transfer, which openraft grants despite the lease.
    pub fn vote_request(
        &self,
        mut rpc: openraft::raft::VoteRequest<TypeConfig>,
    ) -> openraft::raft::VoteRequest<TypeConfig> {
        let leader = self.raft.metrics().borrow_watched().current_leader;
        let candidate = rpc.vote.leader_id().node_id;
        if let Some(leader) = leader.filter(|l| *l != candidate && *l != self.id) {
            if self.loss.verdict(leader, &self.contact) == Verdict::Gone {
                tracing::info!(
                    leader,
                    candidate,
                    "leader gone: its lease does not hold this vote"
                );
                rpc.leadership_transfer = true;
            }
        }
        rpc
    }
}

/// The deadline of one `LeaderGone` question: the voter's wait and a round trip.
pub fn ask_timeout() -> Duration {
    LEADER_GONE_ANSWER_WAIT + Duration::from_millis(CLUSTER_RPC_TIMEOUT_MIN_MS)
}

/// A voter's answer, as the asker reads it (anything but a yes is a no).
pub fn granted(response: &PeerResponse) -> bool {
    matches!(response, PeerResponse::LeaderGone(true))
}
