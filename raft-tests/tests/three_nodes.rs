//! Three Warren Raft nodes in one process, each with its own data directory, talking over
//! real TCP on 127.0.0.1 through the cookie-authenticated cluster transport.
//!
//! What this test checks: a leader is elected and replicates a batch of broker commands so
//! that every node applies it to an identical broker state; when the leader dies, the other
//! two elect a new one and keep committing; the old leader, restarted from its directory after
//! the survivors have snapshotted and purged their logs, catches up (by a snapshot sent over
//! the network) to the same state.

use std::collections::BTreeMap;

use openraft::BasicNode;
use tokio::net::TcpListener;

use raft_tests::{assert_converged, declare, publish, wait_for_leader, Member, WAIT};
use warren::cluster::cookie::Cookie;
use warren::raft::types::NodeId;

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
    assert_eq!(state.queue("/", "q").expect("queue q").queue.n_ready(), 2);

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
    assert_eq!(state.queue("/", "q").expect("queue q").queue.n_ready(), 4);

    tracing::info!("--- snapshot and purge on the survivors: a restart must catch up by snapshot");
    for member in members.values() {
        let raft = member.node.openraft();
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
    assert_eq!(state.queue("/", "q").expect("queue q").queue.n_ready(), 4);
    members[&old_leader]
        .node
        .openraft()
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
    assert_eq!(state.queue("/", "q").expect("queue q").queue.n_ready(), 5);

    for member in members.into_values() {
        member.stop().await;
    }
}
