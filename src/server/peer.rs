//! What this node answers its peers: openraft's RPCs (handed to openraft), batches forwarded
//! by followers' proposers (committed here when this node leads), its status, and the
//! operator's administration (`peer_admin.rs`).

use std::sync::Arc;

use super::forward::Attempt;
use crate::cluster::PeerHandler;
use crate::config::NodeConfig;
use crate::limits::ADMIN_SPREAD_WAIT;
use crate::raft::node::RaftNode;
use crate::raft::propose_error::ProposeError;
use crate::raft::protocol::{
    NodeProtocol, NodeStatus, PeerRequest, PeerResponse, PendingResponse, StateDigest,
};

pub struct NodeHandler {
    pub node: Arc<RaftNode>,
    pub config: Arc<NodeConfig>,
    /// Notified by `warren stop`; the listener then shuts the node down.
    pub stop: Arc<tokio::sync::Notify>,
    /// The node's proposer, once it runs (`peer_admin.rs`).
    pub admin: Arc<super::peer_admin::AdminSlot>,
}

impl PeerHandler for NodeHandler {
    type Protocol = NodeProtocol;

    fn disconnected(&self, from: crate::raft::types::NodeId) {
        self.node.peer_closed(from);
    }

    async fn start(&self, request: PeerRequest) -> PendingResponse<'_> {
        match request {
            PeerRequest::Propose(batch) => self.append_forwarded(batch).await,
            other => Box::pin(std::future::ready(self.handle(other).await)),
        }
    }

    async fn handle(&self, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::Propose(batch) => self.append_forwarded(batch).await.await,
            PeerRequest::Status => PeerResponse::Status(status(&self.node, &self.config)),
            PeerRequest::ReadIndex => match self.node.read_index().await {
                Ok(index) => PeerResponse::ReadIndex(index),
                Err(why) => PeerResponse::Refused(why),
            },
            PeerRequest::Digest => {
                // It reads every stored message under the state lock: off the runtime's
                // workers, which serve connections and Raft meanwhile.
                let state_machine = self.node.state_machine.clone();
                match tokio::task::spawn_blocking(move || state_machine.digest()).await {
                    Ok((applied_index, hash)) => PeerResponse::Digest(StateDigest {
                        applied_index,
                        hash,
                    }),
                    Err(e) => PeerResponse::Error(format!("digest: {e}")),
                }
            }
            PeerRequest::ChangeMembership(change) => {
                crate::raft::membership::change(&self.node, change).await
            }
            PeerRequest::Admin(commands) => self.admin(commands).await,
            PeerRequest::Definitions => self.definitions().await,
            PeerRequest::AppliedAtLeast { index, wait_ms } => {
                let wait = std::time::Duration::from_millis(wait_ms).min(ADMIN_SPREAD_WAIT);
                PeerResponse::AppliedAtLeast(self.node.wait_applied(index, wait).await)
            }
            PeerRequest::Stop => {
                tracing::info!("stop requested");
                self.stop.notify_one();
                PeerResponse::Done("stopping".to_string())
            }
            raft_rpc => self
                .node
                .serve_raft_rpc(raft_rpc)
                .await
                .unwrap_or_else(|| PeerResponse::Error("unexpected request".to_string())),
        }
    }
}

impl NodeHandler {
    /// Appends a follower's batch as one entry, if this node leads, and returns what waits
    /// for its commit: the follower's next batches are appended meanwhile, in order.
    async fn append_forwarded(
        &self,
        mut batch: crate::raft::state_machine::Batch,
    ) -> PendingResponse<'_> {
        // Entries carry the leader's clock.
        batch.time_ms = crate::raft::node::wall_clock_ms();
        let leader = || self.node.leader();
        if leader() != Some(self.node.id) {
            let not_leader = ProposeError::NotLeader { leader: leader() };
            return Box::pin(std::future::ready(PeerResponse::Refused(not_leader)));
        }
        let attempt = super::forward::submit_here(&self.node, &batch).await;
        Box::pin(async move {
            match attempt.await {
                Attempt::Committed(replies) => PeerResponse::Replies(replies),
                Attempt::Failed(why) => PeerResponse::Refused(why),
            }
        })
    }
}

/// This node's view of itself and of the cluster.
pub fn status(node: &RaftNode, config: &NodeConfig) -> NodeStatus {
    let view = node.view();
    NodeStatus {
        node_id: node.id,
        node_name: config.node_name.clone(),
        amqp_addr: config.client_addr().to_string(),
        cluster_addr: config.cluster_listen.to_string(),
        role: config.role().name().to_string(),
        raft_state: view.state,
        term: view.term,
        last_log_index: view.last_log_index,
        applied_index: view.applied_index,
        leader: view.leader,
        voters: view.members.voters.into_iter().collect(),
        learners: view.members.learners.into_iter().collect(),
        replication: view.replication,
        machine_version: node.state_machine.machine_version(),
        machine_version_max: crate::raft::envelope::MACHINE_VERSION,
    }
}
