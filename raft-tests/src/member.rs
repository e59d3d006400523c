//! A running Warren Raft node in a test: openraft, the broker state machine, and the
//! cookie-authenticated peer server its peers reach it on (Raft RPCs only).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use openraft::BasicNode;
use tokio::net::TcpListener;

use warren::broker::state::BrokerState;
use warren::cluster::cookie::Cookie;
use warren::cluster::transport::PeerServer;
use warren::cluster::PeerHandler;
use warren::raft::contact::LeaderContact;
use warren::raft::node::{Raft, RaftNode};
use warren::raft::peer_network::{serve_raft_rpc, ClusterNetwork};
use warren::raft::prompt_election::PromptElection;
use warren::raft::protocol::{NodeProtocol, PeerRequest, PeerResponse};
use warren::raft::state_machine::BrokerStateMachine;
use warren::raft::types::NodeId;

use crate::WAIT;

/// A node's peer handler: Raft RPCs only.
struct RaftRpc {
    raft: Raft,
    state_machine: BrokerStateMachine,
    contact: Arc<LeaderContact>,
    prompt: Arc<PromptElection>,
}

impl PeerHandler for RaftRpc {
    type Protocol = NodeProtocol;

    fn disconnected(&self, from: NodeId) {
        self.prompt.peer_closed(from);
    }

    async fn handle(&self, request: PeerRequest) -> PeerResponse {
        let (raft, state_machine, contact) = (&self.raft, &self.state_machine, &self.contact);
        match serve_raft_rpc(raft, state_machine, contact, &self.prompt, request).await {
            Some(response) => response,
            None => PeerResponse::Error("this test node serves Raft RPCs only".into()),
        }
    }
}

/// A running member: its Raft node and the server its peers reach it on.
pub struct Member {
    pub node: RaftNode,
    server: PeerServer,
}

impl Member {
    /// A disk node in `dir`, one of the initial `members`.
    pub async fn start(
        dir: &Path,
        id: NodeId,
        listener: TcpListener,
        members: &BTreeMap<NodeId, BasicNode>,
        cookie: &Cookie,
    ) -> Member {
        let network = ClusterNetwork::new(id, cookie.clone());
        Member::start_with(dir, id, listener, members, cookie, network).await
    }

    /// [`Member::start`] with the network `network` (e.g. one that dials through a proxy).
    pub async fn start_with(
        dir: &Path,
        id: NodeId,
        listener: TcpListener,
        members: &BTreeMap<NodeId, BasicNode>,
        cookie: &Cookie,
        network: ClusterNetwork,
    ) -> Member {
        let node = RaftNode::open_cluster(dir, id, network, members.clone())
            .await
            .expect("open cluster node");
        Member::serve(node, id, listener, cookie)
    }

    /// A RAM node with Raft id `id`: log and state in memory, empty until a leader fills it.
    pub async fn start_ram(id: NodeId, listener: TcpListener, cookie: &Cookie) -> Member {
        let network = ClusterNetwork::new(id, cookie.clone());
        Member::start_ram_with(id, listener, cookie, network).await
    }

    /// [`Member::start_ram`] with the network `network`.
    pub async fn start_ram_with(
        id: NodeId,
        listener: TcpListener,
        cookie: &Cookie,
        network: ClusterNetwork,
    ) -> Member {
        let node = RaftNode::open_ram(id, network)
            .await
            .expect("open RAM node");
        Member::serve(node, id, listener, cookie)
    }

    fn serve(node: RaftNode, id: NodeId, listener: TcpListener, cookie: &Cookie) -> Member {
        let handler = Arc::new(RaftRpc {
            raft: node.openraft().clone(),
            state_machine: node.state_machine.clone(),
            contact: node.contact(),
            prompt: node.prompt_election(),
        });
        let server = PeerServer::start(listener, id, cookie.clone(), handler).expect("serve");
        Member { node, server }
    }

    pub async fn stop(self) {
        self.server.stop().await;
        self.node.shutdown().await.expect("shutdown");
    }

    pub fn broker(&self) -> BrokerState {
        self.node.state_machine.with_broker(|b| b.clone())
    }

    /// The index of this node's last log entry, once it has applied everything up to it.
    /// (Metrics trail the state machine, so read them only once they have settled.)
    pub async fn settled_index(&self) -> u64 {
        self.settled_index_within(WAIT).await
    }

    /// [`Member::settled_index`], waiting up to `bound` (large entries apply slowly).
    pub async fn settled_index_within(&self, bound: Option<std::time::Duration>) -> u64 {
        let metrics = self
            .node
            .openraft()
            .wait(bound)
            .metrics(
                |m| {
                    m.last_log_index.is_some()
                        && m.last_applied.as_ref().map(|l| l.index) == m.last_log_index
                },
                "apply the whole log",
            )
            .await
            .expect("log applied");
        metrics.last_log_index.expect("a log")
    }
}
