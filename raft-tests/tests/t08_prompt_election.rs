//! Prompt elections: a leader whose connections close (a killed process's kernel closes
//! them) is replaced at once, without the election timer; so is a leader that falls silent
//! with its connections open (a frozen process); a link that resets between a live leader
//! and one follower deposes no one (`src/raft/prompt_election.rs`).
//!
//! Both tests turn every node's election timer off first, so only the reaction to closed
//! connections can start an election: the first fails without it (no new leader ever), the
//! second would see the term move if a follower campaigned on its own evidence alone.

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;

use std::time::Duration;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::net::Fault;
use raft_tests::WAIT;

const DISK3: [Kind; 3] = [Kind::Disk, Kind::Disk, Kind::Disk];

fn election_timers_off(c: &Cluster) {
    for id in c.members.keys() {
        c.node(*id).openraft().runtime_config().elect(false);
    }
}

/// Waits until node `new` counts one prompt election of its own: it was elected by it.
async fn wait_own_prompt_election(c: &Cluster, new: u64) {
    let mut campaigns = c.node(new).prompt_election().campaigns();
    let elected = tokio::time::timeout(
        WAIT.expect("a bound"),
        campaigns.wait_for(|c| c.started == 1),
    );
    elected
        .await
        .expect("the new leader's own prompt election")
        .expect("campaigns");
}

/// The leader stops (its server and its Raft, so every connection it had opened to the
/// followers closes); the two followers agree it is gone and one of them leads in a higher
/// term, with no election timer running; it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_a_killed_leader_is_replaced_without_the_election_timer() {
    let mut c = Cluster::start(&DISK3, 3, 801).await;
    let old = c.leader().await;
    let old_term = c.term(old);
    election_timers_off(&c);

    tracing::info!(old, "--- stop the leader: its connections close");
    c.stop(old).await;
    let others: Vec<u64> = c.members.keys().copied().collect();
    let new = c.leader_among(&others).await;
    assert_ne!(new, old);
    assert!(c.term(new) > old_term, "the new leader's term is higher");
    wait_own_prompt_election(&c, new).await;
    let other = others
        .iter()
        .find(|id| **id != new)
        .expect("the other survivor");
    let theirs = *c.node(*other).prompt_election().campaigns().borrow();
    assert_eq!(theirs.started, 0, "one prompt election, no split vote");

    tracing::info!("--- the survivors commit");
    c.publish_confirmed(&others, 3, 20).await;
    check_invariants(&c).await;
    c.shutdown().await;
}

/// The leader falls silent with every connection open, as a SIGSTOPped process does: the
/// links between it and the followers hold every chunk back for an hour (a close too, since
/// it waits behind the chunks), so no connection closes and nothing arrives. With no
/// election timer running, only the silence rule can replace it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t03_a_silent_leader_is_replaced_without_the_election_timer() {
    let mut c = Cluster::start(&DISK3, 3, 803).await;
    let old = c.leader().await;
    let old_term = c.term(old);
    election_timers_off(&c);
    let others: Vec<u64> = c.members.keys().copied().filter(|id| *id != old).collect();

    tracing::info!(old, "--- the leader falls silent, its connections open");
    let silent = Fault {
        delay: Duration::from_secs(3600),
        ..Fault::default()
    };
    for id in &others {
        c.net.set(c.host_of(old), c.host_of(*id), silent.clone());
        c.net.set(c.host_of(*id), c.host_of(old), silent.clone());
    }
    let new = c.leader_among(&others).await;
    assert_ne!(new, old);
    assert!(c.term(new) > old_term, "the new leader's term is higher");
    wait_own_prompt_election(&c, new).await;

    tracing::info!("--- the survivors commit");
    c.publish_confirmed(&others, 3, 20).await;
    c.shutdown().await;
}

/// Both directions between the leader and one follower are cut (live connections closed,
/// new ones refused): the follower sees the leader's connections close and hears nothing
/// more, but the third node still hears the leader and says no. Nobody's term moves, and
/// the leader keeps committing with the third node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_a_reset_link_to_a_live_leader_deposes_no_one() {
    let mut c = Cluster::start(&DISK3, 3, 802).await;
    let leader = c.leader().await;
    let term = c.term(leader);
    election_timers_off(&c);
    let cut_off = c.follower_of(leader);
    let mut campaigns = c.node(cut_off).prompt_election().campaigns();

    tracing::info!(
        leader,
        cut_off,
        "--- cut the link between the leader and one follower"
    );
    c.net.cut_between(c.host_of(leader), c.host_of(cut_off));
    let refused = async { campaigns.wait_for(|c| c.refused >= 1).await.map(|c| *c) };
    let refused = tokio::time::timeout(WAIT.expect("a bound"), refused)
        .await
        .expect("the cut-off follower campaigned and was refused")
        .expect("campaigns");
    assert_eq!(
        refused.started, 0,
        "no prompt election on one follower's word"
    );
    for id in c.members.keys() {
        assert_eq!(c.term(*id), term, "node {id}'s term moved");
    }
    let state = c.node(leader).openraft().metrics().borrow_watched().state;
    assert_eq!(state, ServerState::Leader, "the leader still leads");

    tracing::info!("--- the leader commits with the third node; heal");
    let third: Vec<u64> = c
        .members
        .keys()
        .copied()
        .filter(|id| *id != cut_off)
        .collect();
    c.publish_confirmed(&third, 2, 20).await;
    c.net.heal_all();
    c.leader().await;
    check_invariants(&c).await;
    c.shutdown().await;
}
