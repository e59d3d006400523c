//! A node repaired from its peers catches up (chaos finding 4).
//!
//! A disk node whose log was damaged refuses to start; the repair (docs/operations.md) demotes
//! it, wipes its directory and starts it empty. The leader had matched the node's log up to
//! some index, and without openraft's `allow_log_reversion` it never moves that progress
//! backwards: it keeps sending from the old match, the empty node keeps answering "conflict",
//! and it stays empty for ever (a release build), or the leader's core trips a debug
//! assertion (a debug build). The chaos runs saw exactly that: a node stuck behind after
//! `truncate-tail`, its queue never drained.
//!
//! What this test checks: after the wipe and restart the node applies everything the leader
//! committed, and once promoted again it holds the same broker state.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, ChangeMembers};
use tokio::net::TcpListener;

use raft_tests::{assert_converged, declare, publish, wait_for_leader, Member, WAIT};
use warren::cluster::cookie::Cookie;
use warren::raft::types::NodeId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_and_demoted_node_catches_up_from_the_leader() {
    let cookie = Cookie::generate().expect("cookie");
    let dirs: BTreeMap<NodeId, tempfile::TempDir> = (1..=3)
        .map(|id| (id, tempfile::tempdir().expect("tempdir")))
        .collect();
    let mut listeners = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        nodes.insert(
            id,
            BasicNode::new(listener.local_addr().expect("addr").to_string()),
        );
        listeners.insert(id, listener);
    }
    let mut members = BTreeMap::new();
    for (id, listener) in listeners {
        members.insert(
            id,
            Member::start(dirs[&id].path(), id, listener, &nodes, &cookie).await,
        );
    }
    let leader = wait_for_leader(&members).await;
    let victim = (1..=3).find(|id| *id != leader).expect("a follower");
    members[&leader]
        .node
        .propose(&[declare(), publish(1), publish(2)])
        .await
        .expect("commit");
    let index = members[&leader].settled_index().await;
    assert_converged(&members, index).await;

    // The damaged node stops; it is demoted and wiped while the others commit more.
    members.remove(&victim).expect("victim").stop().await;
    let raft = members[&leader].node.raft.clone();
    raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([victim])), true)
        .await
        .expect("demote");
    members[&leader]
        .node
        .propose(&[publish(3)])
        .await
        .expect("commit without the victim");
    let dir = dirs[&victim].path();
    std::fs::remove_dir_all(dir).expect("wipe");
    std::fs::create_dir_all(dir).expect("mkdir");

    // Started empty. (Were it node 1, the lowest id, it would initialise: that writes the
    // same first membership entry, with the same log id, that the cluster began with.)
    let listener = TcpListener::bind(nodes[&victim].addr.as_str())
        .await
        .expect("rebind");
    let restarted = Member::start(dir, victim, listener, &nodes, &cookie).await;
    let index = members[&leader].settled_index().await;
    restarted
        .node
        .raft
        .wait(WAIT)
        .applied_index_at_least(Some(index), "the wiped node catches up")
        .await
        .expect("the repaired node caught up (stuck without allow_log_reversion)");
    members.insert(victim, restarted);

    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([victim])), true)
        .await
        .expect("promote");
    let leader = wait_for_leader(&members).await;
    let index = members[&leader].settled_index().await;
    let state = assert_converged(&members, index).await;
    assert_eq!(state.queues["q"].queue.n_ready(), 3);
    for (_, member) in members {
        member.stop().await;
    }
}
