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

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::WAIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_and_demoted_node_catches_up_from_the_leader() {
    let mut c = Cluster::start(&[Kind::Disk, Kind::Disk, Kind::Disk], 3, 701).await;
    let leader = c.leader().await;
    let victim = (1..=3).find(|id| *id != leader).expect("a follower");
    c.publish_confirmed(&[leader], 2, 10).await;

    // The damaged node stops; it is demoted and wiped while the others commit more.
    c.stop(victim).await;
    let raft = c.node(leader).openraft().clone();
    raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([victim])), true)
        .await
        .expect("demote");
    c.publish(leader, Duration::from_secs(10))
        .await
        .expect("commit without the victim");
    let dir = c
        .data_dir(c.host_of(victim))
        .expect("a disk node")
        .to_path_buf();
    std::fs::remove_dir_all(&dir).expect("wipe");
    std::fs::create_dir_all(&dir).expect("mkdir");

    // Started empty. (Were it node 1, the lowest id, it would initialise: that writes the
    // same first membership entry, with the same log id, that the cluster began with.)
    c.start_node(c.host_of(victim), victim).await;
    let index = c.members[&leader].settled_index().await;
    c.node(victim)
        .openraft()
        .wait(WAIT)
        .applied_index_at_least(Some(index), "the wiped node catches up")
        .await
        .expect("the repaired node caught up (stuck without allow_log_reversion)");

    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([victim])), true)
        .await
        .expect("promote");
    check_invariants(&c).await;
    c.shutdown().await;
}
