//! RAM nodes and Raft's safety: a RAM node forgets its vote and log when it restarts, so it
//! must never come back as the voter it was.
//!
//! The scenario: disk nodes 1 and 2, RAM node 3. With node 2 down, nodes 1 and 3 commit entry
//! E (a quorum of three). Nodes 1 and 3 stop; node 3 restarts empty, node 2 restarts without
//! E. Then node 1 comes back.
//!
//! * `a_naive_ram_voter_loses_a_committed_entry` is the control: node 3 restarts under its
//!   old id, grants node 2 its vote (its empty log is behind node 2's), node 2 leads without
//!   E, and commits past E's index without it. The committed entry is lost.
//! * `a_ram_node_restarts_as_a_new_member_and_the_entry_survives` is Warren's way: node 3
//!   restarts under a new Raft id that is no voter, so node 2 cannot win an election with it;
//!   once node 1 returns, 1 and 2 elect a leader that holds E, and the new id joins (learner,
//!   then voter in place of the old id). E is on every node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};
use tokio::net::TcpListener;

use raft_tests::{
    assert_converged, declare, publish, wait_for_leader, wait_for_leader_among, Member,
};
use warren::cluster::cookie::Cookie;
use warren::raft::types::NodeId;

const RAM: NodeId = 3;
/// The id the RAM node takes at its restart in Warren's scheme.
const RAM_AGAIN: NodeId = 33;

/// Three nodes' addresses and directories, and the entry E committed by nodes 1 and 3 only.
struct Scenario {
    cookie: Cookie,
    nodes: BTreeMap<NodeId, BasicNode>,
    dirs: BTreeMap<NodeId, tempfile::TempDir>,
    /// Messages in queue "q" once E is applied, and E's log index.
    with_e: usize,
    e_index: u64,
}

async fn listen(addr: &str) -> TcpListener {
    TcpListener::bind(addr)
        .await
        .expect("bind the node's address")
}

/// Runs the common part: commit E with node 2 down, then stop every node.
async fn commit_e_without_node_2() -> Scenario {
    let cookie = Cookie::generate().expect("cookie");
    let dirs: BTreeMap<NodeId, tempfile::TempDir> = [1, 2]
        .into_iter()
        .map(|id| (id, tempfile::tempdir().expect("tempdir")))
        .collect();
    let mut listeners = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for id in [1, 2, RAM] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        nodes.insert(id, BasicNode::new(addr));
        listeners.insert(id, listener);
    }
    let mut members = BTreeMap::new();
    for id in [1, 2] {
        let listener = listeners.remove(&id).expect("listener");
        let member = Member::start(dirs[&id].path(), id, listener, &nodes, &cookie).await;
        members.insert(id, member);
    }
    let ram_listener = listeners.remove(&RAM).expect("listener");
    members.insert(RAM, Member::start_ram(RAM, ram_listener, &cookie).await);
    let leader = wait_for_leader(&members).await;
    members[&leader]
        .node
        .propose(&[declare(), publish(1)])
        .await
        .expect("commit with three nodes");

    members.remove(&2).expect("node 2").stop().await;
    let leader = wait_for_leader(&members).await;
    members[&leader]
        .node
        .propose(&[publish(2)])
        .await
        .expect("E commits on nodes 1 and 3");
    let index = members[&leader].settled_index().await;
    let state = assert_converged(&members, index).await;
    let with_e = state.queue("/", "q").expect("queue q").queue.n_ready();
    assert_eq!(with_e, 2);
    for member in members.into_values() {
        member.stop().await;
    }
    Scenario {
        cookie,
        nodes,
        dirs,
        with_e,
        e_index: index,
    }
}

/// The control: a RAM node that restarts empty under its old id and votes loses E.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naive_ram_voter_loses_a_committed_entry() {
    let s = commit_e_without_node_2().await;
    let mut members = BTreeMap::new();
    let ram = Member::start_ram(RAM, listen(&s.nodes[&RAM].addr).await, &s.cookie).await;
    members.insert(RAM, ram);
    let listener = listen(&s.nodes[&2].addr).await;
    let two = Member::start(s.dirs[&2].path(), 2, listener, &s.nodes, &s.cookie).await;
    members.insert(2, two);
    let leader = wait_for_leader(&members).await;
    assert_eq!(leader, 2, "the empty RAM voter elected node 2");
    // A command that adds no message, so the count below tells whether E is there.
    members[&2]
        .node
        .propose(&[declare()])
        .await
        .expect("node 2 commits with the forgetful voter");

    // Node 2 and the forgetful voter committed a log without E up to (or past) E's index:
    // another entry is committed where E was, so E is lost.
    // (Were node 1 restarted now, its Raft would stop on openraft's assertion that a
    // committed entry is never truncated.)
    let index = members[&2].settled_index().await;
    assert!(
        index >= s.e_index,
        "node 2 committed up to E's index {}",
        s.e_index
    );
    let state = assert_converged(&members, index).await;
    // Fewer messages than nodes 1 and 3 had confirmed (node 2 may lack the first publish
    // too: that one also committed on a quorum without it).
    let ready = state.queue("/", "q").map_or(0, |q| q.queue.n_ready());
    assert!(
        ready < s.with_e,
        "E survived? {ready} of {} messages",
        s.with_e
    );
    for member in members.into_values() {
        member.stop().await;
    }
}

/// Warren's way: the restarted RAM node is a new member; E survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ram_node_restarts_as_a_new_member_and_the_entry_survives() {
    let s = commit_e_without_node_2().await;
    let mut members = BTreeMap::new();
    let ram = Member::start_ram(RAM_AGAIN, listen(&s.nodes[&RAM].addr).await, &s.cookie).await;
    members.insert(RAM_AGAIN, ram);
    let listener = listen(&s.nodes[&2].addr).await;
    let two = Member::start(s.dirs[&2].path(), 2, listener, &s.nodes, &s.cookie).await;
    members.insert(2, two);
    // Node 2 needs two of {1, 2, 3}: the new RAM start is not 3, so nobody can lead.
    let no_leader = members[&2]
        .node
        .openraft()
        .wait(Some(Duration::from_secs(3)))
        .metrics(
            |m| m.current_leader == Some(2),
            "node 2 leading without node 1",
        )
        .await;
    assert!(
        no_leader.is_err(),
        "node 2 led without node 1: E would be lost"
    );

    let listener = listen(&s.nodes[&1].addr).await;
    let one = Member::start(s.dirs[&1].path(), 1, listener, &s.nodes, &s.cookie).await;
    members.insert(1, one);
    let disks: BTreeMap<NodeId, &Member> = members
        .iter()
        .filter(|(id, _)| **id != RAM_AGAIN)
        .map(|(id, m)| (*id, m))
        .collect();
    let leader = wait_for_leader_among(&disks).await;
    let raft = &members[&leader].node.openraft();
    raft.add_learner(RAM_AGAIN, s.nodes[&RAM].clone(), true)
        .await
        .expect("the new RAM start catches up as a learner");
    let swap = ChangeMembers::Batch(vec![
        ChangeMembers::AddVoterIds(BTreeSet::from([RAM_AGAIN])),
        ChangeMembers::RemoveVoters(BTreeSet::from([RAM])),
    ]);
    raft.change_membership(swap, false)
        .await
        .expect("the new start replaces the old as a voter");
    members[&leader]
        .node
        .propose(&[publish(3)])
        .await
        .expect("commit with the new member");
    let index = members[&leader].settled_index().await;
    let state = assert_converged(&members, index).await;
    assert_eq!(
        state.queue("/", "q").expect("queue q").queue.n_ready(),
        s.with_e + 1,
        "E was lost"
    );
    for member in members.into_values() {
        member.stop().await;
    }
}
