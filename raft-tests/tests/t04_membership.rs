//! Membership changes under faults: a node joins over a flapping link; a cut-off node is
//! removed by the rest.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;

/// Node 4 joins a three-node cluster as a learner, then a voter, while the link between it
/// and the leader is cut for 150 ms of every 400 ms (starting cut); both changes complete,
/// node 4 counts as a voter, and publishes still commit (and reach it) as the link flaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_add_learner_then_voter_while_a_link_flaps() {
    let mut c = Cluster::start(&[Kind::Disk; 4], 3, 401).await;
    let leader = c.leader().await;
    c.start_node(4, 4).await;

    tracing::info!(
        leader,
        "--- flap the link leader <-> 4; add 4 as learner, then voter"
    );
    let net = Arc::clone(&c.net);
    let (a, b) = (c.host_of(leader), 4);
    let flapper = tokio::spawn(async move {
        loop {
            net.cut_between(a, b);
            tokio::time::sleep(Duration::from_millis(150)).await;
            net.heal_between(a, b);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let raft = c.node(leader).openraft();
    raft.add_learner(4, c.basic_node(4), true)
        .await
        .expect("4 joins as a learner and catches up");
    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([4])), false)
        .await
        .expect("4 becomes a voter");
    assert_eq!(c.voters(leader), BTreeSet::from([1, 2, 3, 4]));

    tracing::info!("--- publish with the link still flapping, then stop it");
    let all: Vec<u64> = c.members.keys().copied().collect();
    c.publish_confirmed(&all, 3, 20).await;
    flapper.abort();
    let refused = c.net.counts().refused.load(Relaxed);
    assert!(refused > 0, "no connection met a cut link");
    let _ = flapper.await;
    check_invariants(&c).await;
    c.shutdown().await;
}

/// A follower is cut off, and the leader removes it: the change commits with the two that
/// remain (the joint configuration needs a majority of the old and of the new voters), and
/// they go on committing as a two-voter cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_remove_a_cut_off_voter() {
    let mut c = Cluster::start(&[Kind::Disk; 3], 3, 402).await;
    let leader = c.leader().await;
    let gone = c.follower_of(leader);

    tracing::info!(gone, "--- isolate a follower and remove it");
    let before = c.members[&leader].settled_index().await;
    c.net.isolate(c.host_of(gone));
    let change = ChangeMembers::RemoveVoters(BTreeSet::from([gone]));
    c.node(leader)
        .openraft()
        .change_membership(change, false)
        .await
        .expect("removed without it");
    let rest: BTreeSet<u64> = c.members.keys().copied().filter(|id| *id != gone).collect();
    assert_eq!(c.voters(leader), rest);
    // A reachable voter would hold at least the joint configuration's entry.
    assert!(
        c.last_log_index(gone) <= Some(before),
        "the cut-off voter received the membership change"
    );
    c.stop(gone).await;

    let rest: Vec<u64> = rest.into_iter().collect();
    c.publish_confirmed(&rest, 3, 20).await;
    check_invariants(&c).await;
    c.shutdown().await;
}
