//! Election: who leads when the network splits, and what a cut-off leader can still do.

use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::Instant as _;
use openraft::ServerState;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::{publish, WAIT};
use warren::raft::node::wall_clock_ms;
use warren::raft::state_machine::Batch;

const DISK3: [Kind; 3] = [Kind::Disk, Kind::Disk, Kind::Disk];

/// A leader cut off from both followers is replaced: the two elect a new leader of a
/// higher term and commit without it; once the network heals, the old leader steps down
/// and follows the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_isolated_leader_is_replaced_in_a_higher_term() {
    let mut c = Cluster::start(&DISK3, 3, 101).await;
    let old = c.leader().await;
    let old_term = c.term(old);

    tracing::info!(old, "--- isolate the leader; the other two elect a new one");
    c.net.isolate(c.host_of(old));
    let others: Vec<u64> = c.members.keys().copied().filter(|id| *id != old).collect();
    let new = c.leader_among(&others).await;
    assert_ne!(new, old);
    assert!(c.term(new) > old_term, "new leader's term is higher");
    c.publish_confirmed(&others, 3, 20).await;

    tracing::info!("--- heal; the old leader follows the new one");
    c.net.heal_all();
    let raft = &c.node(old).raft;
    raft.wait(WAIT)
        .metrics(
            |m| m.state == ServerState::Follower && m.current_leader == Some(new),
            "old leader follows",
        )
        .await
        .expect("the old leader stepped down");

    check_invariants(&c).await;
    c.shutdown().await;
}

/// A leader on the minority side of a partition takes a write into its log but never
/// commits it: the write is not confirmed, and after the heal the entry is gone from its
/// log (overwritten by the majority's) and from every broker state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_minority_leader_never_commits() {
    let mut c = Cluster::start(&DISK3, 3, 102).await;
    let old = c.leader().await;
    let before = c.members[&old].settled_index().await;

    tracing::info!(old, "--- isolate the leader, then write to it");
    c.net.isolate(c.host_of(old));
    const ORPHAN: u32 = 9_999;
    let batch = Batch {
        time_ms: wall_clock_ms(),
        commands: vec![publish(ORPHAN)],
        origin: None,
    };
    let reply = c
        .node(old)
        .submit(&batch)
        .await
        .expect("the leader takes it");
    let appended = c
        .node(old)
        .raft
        .wait(WAIT)
        .log_index_at_least(Some(before + 1), "appended on the cut-off leader")
        .await
        .expect("appended");
    let orphan_index = appended.last_log_index.expect("an index");
    let orphan = c.node(old).log_entries().await.expect("log");
    let orphan = orphan.last().expect("the orphan entry").log_id;
    let outcome = tokio::time::timeout(Duration::from_secs(3), reply).await;
    assert!(
        !matches!(outcome, Ok(Ok(_))),
        "a write on a minority committed: {outcome:?}"
    );

    tracing::info!("--- the majority elects and commits; then heal");
    let others: Vec<u64> = c.members.keys().copied().filter(|id| *id != old).collect();
    c.publish_confirmed(&others, 2, 20).await;
    c.net.heal_all();
    let new = c.leader_among(&others).await;
    c.node(old)
        .raft
        .wait(WAIT)
        .current_leader(new, "old leader follows")
        .await
        .expect("follows");
    let index = c.members[&new].settled_index().await;
    c.node(old)
        .raft
        .wait(WAIT)
        .applied_index(Some(index), "old leader catches up")
        .await
        .expect("caught up");
    let log = c.node(old).log_entries().await.expect("log");
    let now = log.iter().find(|e| e.log_id.index == orphan_index);
    assert!(
        now.is_none_or(|e| e.log_id != orphan),
        "the uncommitted entry {orphan} survived"
    );
    for id in c.members.keys() {
        let body = format!("m{ORPHAN}");
        let held = c.node(*id).state_machine.with_broker(|b| {
            b.messages
                .values()
                .any(|m| m.content.body == body.as_bytes())
        });
        assert!(!held, "node {id} applied the uncommitted publish");
    }

    check_invariants(&c).await;
    c.shutdown().await;
}

/// Five nodes split 2 / 3: the three elect (or keep) a leader and commit; a write on
/// either of the two never commits; after the heal all five follow one leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t03_split_two_three_only_the_majority_leads() {
    let mut c = Cluster::start(&[Kind::Disk; 5], 5, 103).await;
    c.leader().await;

    tracing::info!("--- split {{1, 2}} from {{3, 4, 5}}");
    c.net.partition(&[1, 2], &[3, 4, 5]);
    c.publish_confirmed(&[3, 4, 5], 3, 20).await;
    for id in [1, 2] {
        let write = c.publish(id, Duration::from_secs(1)).await;
        assert!(write.is_err(), "node {id} committed on the minority side");
    }

    tracing::info!("--- heal; all five follow one leader");
    c.net.heal_all();
    c.leader().await;
    check_invariants(&c).await;
    c.shutdown().await;
}

/// A one-way cut: the leader cannot reach one follower, which can still reach everyone.
/// That follower hears no heartbeats and campaigns, but the other two keep the leader
/// they hear from, so it commits with them throughout; after the heal all agree again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t04_one_way_cut_leaves_the_leader_committing() {
    let mut c = Cluster::start(&DISK3, 3, 104).await;
    let leader = c.leader().await;
    let deaf = *c
        .members
        .keys()
        .find(|id| **id != leader)
        .expect("a follower");

    tracing::info!(leader, deaf, "--- cut only leader -> follower");
    let cut = raft_tests::net::Fault {
        cut: true,
        ..Default::default()
    };
    c.net.set(c.host_of(leader), c.host_of(deaf), cut);
    let rest: Vec<u64> = c.members.keys().copied().filter(|id| *id != deaf).collect();
    c.publish_confirmed(&rest, 5, 20).await;
    let index = c.members[&leader].settled_index().await;
    assert!(
        c.last_log_index(deaf) < Some(index),
        "the cut follower got the entries anyway"
    );

    check_invariants(&c).await;
    c.shutdown().await;
}

/// Pre-Vote: a follower cut off for several election timeouts keeps its term (it asks
/// whether it could win before it campaigns, and nobody answers), so when the network heals
/// the leader keeps leading in the same term. Without Pre-Vote the follower's term climbs
/// while it is cut off, and its first answer after the heal deposes the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t05_a_returning_follower_does_not_depose_the_leader() {
    let c = Cluster::start(&DISK3, 3, 105).await;
    let leader = c.leader().await;
    let term = c.term(leader);
    let cut_off = c
        .members
        .keys()
        .copied()
        .find(|id| *id != leader)
        .expect("a follower");

    tracing::info!(
        cut_off,
        "--- isolate a follower for 3 s: 5 election timeouts (max 600 ms)"
    );
    c.net.isolate(c.host_of(cut_off));
    let limit = Duration::from_millis(3_000);
    let deadline = std::time::Instant::now() + WAIT.expect("a wait");
    // The leader's own record of the follower's silence: polled, as time passing notifies
    // no metrics watcher.
    loop {
        let metrics = c.node(leader).raft.metrics().borrow_watched().clone();
        let acked = metrics
            .heartbeat
            .and_then(|h| h.get(&cut_off).copied().flatten());
        if acked.is_some_and(|at| at.elapsed() > limit) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "follower never went silent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        c.term(cut_off),
        term,
        "the cut-off follower raised its term"
    );

    tracing::info!("--- heal; the follower hears from the same leader, in the same term");
    c.net.heal_all();
    c.node(cut_off)
        .raft
        .wait(WAIT)
        .current_leader(leader, "the follower follows the leader again")
        .await
        .expect("rejoined");
    assert_eq!(c.leader().await, leader, "the leader was deposed");
    assert_eq!(c.term(leader), term, "an election ran");

    check_invariants(&c).await;
    c.shutdown().await;
}
