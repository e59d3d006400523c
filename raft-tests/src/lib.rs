//! Cluster tests over a controlled network (issue 3): whole Warren Raft nodes in one process,
//! each with its own data directory (or none, for a RAM node), over real TCP through the
//! cookie-authenticated cluster transport. A node is stopped and restarted by the test, so
//! it controls who can talk to whom.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::BasicNode;
use tokio::net::TcpListener;

use warren::broker::command::{Command, Content};
use warren::broker::state::BrokerState;
use warren::cluster::cookie::Cookie;
use warren::cluster::network::{serve_raft_rpc, ClusterNetwork};
use warren::cluster::transport::PeerServer;
use warren::cluster::{PeerHandler, PeerRequest, PeerResponse};
use warren::raft::node::{Raft, RaftNode};
use warren::raft::types::NodeId;

pub const WAIT: Option<Duration> = Some(Duration::from_secs(20));

/// A node's peer handler: Raft RPCs only.
struct RaftRpc {
    raft: Raft,
}

impl PeerHandler for RaftRpc {
    async fn handle(&self, request: PeerRequest) -> PeerResponse {
        match serve_raft_rpc(&self.raft, request).await {
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
        let node = RaftNode::open_cluster(dir, id, network, members.clone())
            .await
            .expect("open cluster node");
        Member::serve(node, id, listener, cookie)
    }

    /// A RAM node with Raft id `id`: log and state in memory, empty until a leader fills it.
    pub async fn start_ram(id: NodeId, listener: TcpListener, cookie: &Cookie) -> Member {
        let network = ClusterNetwork::new(id, cookie.clone());
        let node = RaftNode::open_ram(id, network)
            .await
            .expect("open RAM node");
        Member::serve(node, id, listener, cookie)
    }

    fn serve(node: RaftNode, id: NodeId, listener: TcpListener, cookie: &Cookie) -> Member {
        let handler = Arc::new(RaftRpc {
            raft: node.raft.clone(),
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
        let metrics = self
            .node
            .raft
            .wait(WAIT)
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

pub fn declare() -> Command {
    Command::QueueDeclare {
        name: "q".into(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        arguments: Vec::new(),
        conn: 1,
    }
}

pub fn publish(n: u32) -> Command {
    Command::Publish {
        exchange: String::new(),
        routing_key: "q".into(),
        mandatory: false,
        headers: Vec::new(),
        content: Content {
            properties: Bytes::new(),
            body: Bytes::from(format!("m{n}")),
        },
        expiration_ms: None,
    }
}

/// Waits until every node in `members` names the same leader, one of them, and that leader
/// may accept writes; returns it.
pub async fn wait_for_leader(members: &BTreeMap<NodeId, Member>) -> NodeId {
    wait_for_leader_among(&members.iter().map(|(id, m)| (*id, m)).collect()).await
}

/// [`wait_for_leader`] over some of a test's members (e.g. without a node not yet joined).
pub async fn wait_for_leader_among(members: &BTreeMap<NodeId, &Member>) -> NodeId {
    let any = members.values().next().expect("a member");
    let metrics = any
        .node
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.current_leader.is_some_and(|l| members.contains_key(&l)),
            "a live leader",
        )
        .await
        .expect("leader elected");
    let leader = metrics.current_leader.expect("leader");
    for member in members.values() {
        member
            .node
            .raft
            .wait(WAIT)
            .current_leader(leader, "agree on the leader")
            .await
            .expect("same leader everywhere");
    }
    // openraft 0.10 refuses writes (ForwardToLeader to no one, reason LeaseExpired) until
    // a quorum has acknowledged the new leader: a vote granted does not count.
    members[&leader]
        .node
        .raft
        .wait(WAIT)
        .metrics(|m| m.last_quorum_acked.is_some(), "leader lease")
        .await
        .expect("a quorum acknowledged the leader");
    leader
}

/// Waits until every member has applied exactly `index` (nothing else is being proposed) and
/// checks they hold one broker state.
pub async fn assert_converged(members: &BTreeMap<NodeId, Member>, index: u64) -> BrokerState {
    for (id, member) in members {
        member
            .node
            .raft
            .wait(WAIT)
            .applied_index(Some(index), format!("node {id} applies {index}"))
            .await
            .expect("applied");
    }
    let mut states = members.iter().map(|(id, m)| (*id, m.broker()));
    let (first_id, first) = states.next().expect("a member");
    for (id, state) in states {
        assert!(
            state == first,
            "node {id} and node {first_id} differ at index {index}"
        );
    }
    first
}
