//! Replication: commits under a lossy, slow network, and without waiting for a slow follower.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::net::Fault;

const DISK3: [Kind; 3] = [Kind::Disk, Kind::Disk, Kind::Disk];

/// Every link drops connections (3% of chunks cut theirs) and delays each chunk by 5 ms:
/// 30 publishes still get confirmed, and at the end each confirmed one is on every node
/// exactly once (a publish whose outcome was unknown is never retried under its body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_publishes_under_drops_and_delay_commit_exactly_once() {
    let mut c = Cluster::start(&DISK3, 3, 201).await;
    c.leader().await;

    tracing::info!("--- every link lossy and slow; publish 30");
    c.net.set_all(Fault {
        cut: false,
        drop_per_mille: 30,
        delay: Duration::from_millis(5),
    });
    let all: Vec<u64> = c.members.keys().copied().collect();
    c.publish_confirmed(&all, 30, 200).await;
    assert_eq!(c.confirmed().len(), 30);
    let counts = c.net.counts();
    assert!(
        counts.dropped.load(Relaxed) > 0,
        "no connection was dropped"
    );
    assert!(counts.delayed.load(Relaxed) > 0, "no chunk was delayed");

    check_invariants(&c).await;
    c.shutdown().await;
}

/// A follower behind a link that adds 100 ms per chunk each way does not slow commits:
/// the leader and the other follower are a quorum, so 20 publishes in a row take well
/// under the 20 round trips (4 s) waiting on the slow follower would cost. It catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_slow_follower_does_not_block_commits() {
    let mut c = Cluster::start(&DISK3, 3, 202).await;
    let leader = c.leader().await;
    let slow = c.follower_of(leader);

    tracing::info!(
        leader,
        slow,
        "--- slow down the link from the leader to one follower"
    );
    let delay = Fault {
        delay: Duration::from_millis(100),
        ..Fault::default()
    };
    c.net.set(c.host_of(leader), c.host_of(slow), delay);
    let started = Instant::now();
    for _ in 0..20 {
        c.publish(leader, Duration::from_secs(2))
            .await
            .expect("commits without the slow follower");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "20 publishes took {took:?}");
    let delayed = c.net.counts().delayed.load(Relaxed);
    assert!(delayed > 0, "nothing crossed the slow link");

    check_invariants(&c).await;
    c.shutdown().await;
}

/// A follower cut off while 10 publishes commit catches up from the log alone once the
/// network heals: the others keep their whole log, so no snapshot is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t03_cut_off_follower_catches_up_from_the_log() {
    let mut c = Cluster::start(&DISK3, 3, 203).await;
    let leader = c.leader().await;
    let behind = c.follower_of(leader);

    tracing::info!(behind, "--- isolate a follower; commit 10 without it; heal");
    c.net.isolate(c.host_of(behind));
    let rest: Vec<u64> = c
        .members
        .keys()
        .copied()
        .filter(|id| *id != behind)
        .collect();
    c.publish_confirmed(&rest, 10, 40).await;
    let leader = c.leader_among(&rest).await;
    let index = c.members[&leader].settled_index().await;
    assert!(
        c.last_log_index(behind) < Some(index),
        "the cut-off follower got the entries anyway"
    );
    c.net.heal_all();

    check_invariants(&c).await;
    let m = c.node(behind).openraft().metrics().borrow_watched().clone();
    assert_eq!(m.snapshot, None, "caught up from the log, not a snapshot");
    c.shutdown().await;
}

/// A follower stopped while three 100 MiB messages are committed (one entry each) catches up
/// from the log when it returns: openraft would send the three in one append, more than a
/// peer frame holds (`CLUSTER_FRAME_MAX`), so the network sends them one request at a time
/// (`cap_append`); before, that append failed on every retry and the follower never caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t04_entries_larger_together_than_a_frame_reach_a_returning_follower() {
    use bytes::Bytes;
    use warren::limits::CLUSTER_FRAME_MAX;

    let mut c = Cluster::start(&DISK3, 3, 204).await;
    let leader = c.leader().await;
    let behind = c.follower_of(leader);

    tracing::info!(behind, "--- stop a follower; commit 3 x 100 MiB");
    c.stop(behind).await;
    let others: Vec<u64> = c.members.keys().copied().collect();
    let body_len = 100 * 1024 * 1024;
    assert!(3 * body_len > CLUSTER_FRAME_MAX, "together over a frame");
    let mut n_committed = 0u8;
    for _attempt in 0..20 {
        if n_committed == 3 {
            break;
        }
        // A try whose outcome is unknown (the leader moved under the load) may still
        // commit: then there are more than three, which only makes the point stronger.
        let command = raft_tests::publish_body(Bytes::from(vec![n_committed; body_len]));
        let leader = c.leader_among(&others).await;
        match c.members[&leader].node.propose(&[command]).await {
            Ok(_) => n_committed += 1,
            Err(e) => tracing::info!(error = %e, "large publish not committed; again"),
        }
    }
    assert_eq!(
        n_committed, 3,
        "three large publishes committed within 20 tries"
    );
    let leader = c.leader_among(&others).await;
    // 300 MiB of entries (and the snapshots they trigger) apply slowly on a busy machine.
    let bound = Some(Duration::from_secs(120));
    let index = c.members[&leader].settled_index_within(bound).await;

    tracing::info!("--- restart it: it catches up from the log");
    c.start_node(c.host_of(behind), behind).await;
    c.node(behind)
        .openraft()
        .wait(bound)
        .applied_index_at_least(Some(index), "caught up from the log")
        .await
        .expect("caught up");
    // The leader kept those entries (openraft keeps 1,000 behind a snapshot): the follower
    // could only get them by appends.
    let purged = c.node(leader).openraft().metrics().borrow_watched().purged;
    assert!(purged.is_none(), "the leader purged its log: {purged:?}");

    check_invariants(&c).await;
    c.shutdown().await;
}
