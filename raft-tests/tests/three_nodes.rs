//! Three Warren Raft nodes in one process, each with its own data directory, talking over
//! real TCP on 127.0.0.1 through the cookie-authenticated cluster transport.
//!
//! What this test checks: a leader is elected and replicates a batch of broker commands so
//! that every node applies it to an identical broker state; when the leader dies, the other
//! two elect a new one and keep committing; the old leader, restarted from its directory after
//! the survivors have snapshotted and purged their logs, catches up (by a snapshot sent over
//! the network) to the same state.

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

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

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
struct Member {
    node: RaftNode,
    server: PeerServer,
}

impl Member {
    async fn start(
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
        let handler = Arc::new(RaftRpc {
            raft: node.raft.clone(),
        });
        let server = PeerServer::start(listener, id, cookie.clone(), handler).expect("serve");
        Member { node, server }
    }

    async fn stop(self) {
        self.server.stop().await;
        self.node.shutdown().await.expect("shutdown");
    }

    fn broker(&self) -> BrokerState {
        self.node.state_machine.with_broker(|b| b.clone())
    }

    /// The index of this node's last log entry, once it has applied everything up to it.
    /// (Metrics trail the state machine, so read them only once they have settled.)
    async fn settled_index(&self) -> u64 {
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

fn declare() -> Command {
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

fn publish(n: u32) -> Command {
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
async fn wait_for_leader(members: &BTreeMap<NodeId, Member>) -> NodeId {
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
async fn assert_converged(members: &BTreeMap<NodeId, Member>, index: u64) -> BrokerState {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_catch_up() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init()
        .ok();
    let cookie = Cookie::generate().expect("cookie");
    let dirs: BTreeMap<NodeId, tempfile::TempDir> = (1..=3)
        .map(|id| (id, tempfile::tempdir().expect("tempdir")))
        .collect();
    let mut listeners = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        nodes.insert(id, BasicNode::new(addr));
        listeners.insert(id, listener);
    }

    tracing::info!("--- start three nodes; node 1 initialises the cluster");
    let mut members = BTreeMap::new();
    for (id, listener) in listeners {
        let member = Member::start(dirs[&id].path(), id, listener, &nodes, &cookie).await;
        members.insert(id, member);
    }
    let leader = wait_for_leader(&members).await;
    tracing::info!(leader, "--- a leader is elected; commit a batch on it");
    let replies = members[&leader]
        .node
        .propose(&[declare(), publish(1), publish(2)])
        .await
        .expect("commit on the leader");
    assert_eq!(replies.len(), 3);
    let index = members[&leader].settled_index().await;
    let state = assert_converged(&members, index).await;
    assert_eq!(state.queues["q"].queue.n_ready(), 2);

    tracing::info!(leader, "--- stop the leader; the other two elect a new one");
    let old_leader = leader;
    members.remove(&old_leader).expect("leader").stop().await;
    let leader = wait_for_leader(&members).await;
    assert_ne!(leader, old_leader);
    members[&leader]
        .node
        .propose(&[publish(3), publish(4)])
        .await
        .expect("commit on the new leader");
    let index = members[&leader].settled_index().await;
    let state = assert_converged(&members, index).await;
    assert_eq!(state.queues["q"].queue.n_ready(), 4);

    tracing::info!("--- snapshot and purge on the survivors: a restart must catch up by snapshot");
    for member in members.values() {
        let raft = &member.node.raft;
        raft.trigger().snapshot().await.expect("trigger snapshot");
        raft.wait(WAIT)
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= index),
                "snapshot built",
            )
            .await
            .expect("snapshot");
        raft.trigger()
            .purge_log(index)
            .await
            .expect("trigger purge");
        raft.wait(WAIT)
            .metrics(|m| m.purged.is_some_and(|p| p.index >= index), "log purged")
            .await
            .expect("purged");
    }

    tracing::info!(old_leader, "--- restart the old leader from its directory");
    let listener = TcpListener::bind(nodes[&old_leader].addr.as_str())
        .await
        .expect("rebind the old address");
    let dir = dirs[&old_leader].path();
    let member = Member::start(dir, old_leader, listener, &nodes, &cookie).await;
    members.insert(old_leader, member);
    let state = assert_converged(&members, index).await;
    assert_eq!(state.queues["q"].queue.n_ready(), 4);
    members[&old_leader]
        .node
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= index),
            "installed the leader's snapshot",
        )
        .await
        .expect("caught up by snapshot");

    tracing::info!("--- and it follows new entries too");
    let leader = wait_for_leader(&members).await;
    members[&leader]
        .node
        .propose(&[publish(5)])
        .await
        .expect("commit with three nodes again");
    let index = members[&leader].settled_index().await;
    let state = assert_converged(&members, index).await;
    assert_eq!(state.queues["q"].queue.n_ready(), 5);

    for member in members.into_values() {
        member.stop().await;
    }
}
