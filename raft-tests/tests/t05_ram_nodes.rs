//! RAM nodes: a RAM node forgets its log and vote when it stops, so it comes back under a
//! new Raft id (`ram_node_id`) and joins again. (`ram_voter.rs` shows why the old id must
//! never vote again.)

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::WAIT;
use warren::raft::node::wall_clock_ms;
use warren::raft::types::ram_node_id;

const RAM_HOST: u64 = 3;
const DISK2_RAM1: [Kind; 3] = [Kind::Disk, Kind::Disk, Kind::Ram];

/// RAM node 3 stops and restarts under a new id while the links between its host and the
/// other disk node are cut: the leader alone feeds it (snapshot and log), swaps it in for
/// the old id as a voter, and it applies new publishes before the heal. (The cut is on
/// links the rejoin must not need: with them healthy the test passes the same way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_ram_node_rejoins_under_a_new_id_with_a_link_cut() {
    let mut c = Cluster::start(&DISK2_RAM1, 3, 501).await;
    c.leader().await;
    let all: Vec<u64> = c.members.keys().copied().collect();
    c.publish_confirmed(&all, 2, 20).await;

    tracing::info!("--- stop the RAM node; the disk nodes lead on");
    c.stop(RAM_HOST).await;
    let leader = c.leader_among(&[1, 2]).await;
    let other = if leader == 1 { 2 } else { 1 };
    c.net.cut_between(RAM_HOST, c.host_of(other));
    let again = ram_node_id(RAM_HOST, wall_clock_ms());
    c.start_node(RAM_HOST, again).await;

    tracing::info!(
        again,
        "--- the leader adds the new start and swaps it for the old id"
    );
    let raft = c.node(leader).openraft();
    raft.add_learner(again, c.basic_node(RAM_HOST), true)
        .await
        .expect("the new start catches up as a learner");
    let swap = ChangeMembers::Batch(vec![
        ChangeMembers::AddVoterIds(BTreeSet::from([again])),
        ChangeMembers::RemoveVoters(BTreeSet::from([RAM_HOST])),
    ]);
    raft.change_membership(swap, false)
        .await
        .expect("swap the RAM node's ids");
    assert_eq!(c.voters(leader), BTreeSet::from([1, 2, again]));
    c.publish_confirmed(&[1, 2], 2, 20).await;
    let index = c.members[&leader].settled_index().await;
    c.node(again)
        .openraft()
        .wait(WAIT)
        .applied_index_at_least(Some(index), "the RAM node applies through the leader alone")
        .await
        .expect("applied");

    check_invariants(&c).await;
    c.shutdown().await;
}

/// A RAM node cut off from both disk nodes cannot stop them committing (they are two of
/// three voters); after the heal it catches up to every confirmed publish, in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_isolated_ram_voter_catches_up_after_heal() {
    let mut c = Cluster::start(&DISK2_RAM1, 3, 502).await;
    c.leader().await;

    tracing::info!("--- isolate the RAM node; the disk nodes commit");
    c.net.isolate(RAM_HOST);
    c.publish_confirmed(&[1, 2], 5, 20).await;
    let leader = c.leader_among(&[1, 2]).await;
    let index = c.members[&leader].settled_index().await;
    assert!(
        c.last_log_index(RAM_HOST) < Some(index),
        "the cut-off RAM node got the entries anyway"
    );
    let write = c.publish(RAM_HOST, Duration::from_secs(1)).await;
    assert!(write.is_err(), "the cut-off RAM node committed alone");

    check_invariants(&c).await;
    c.shutdown().await;
}
