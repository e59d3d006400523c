//! Snapshots: a follower whose missing entries were purged catches up from a snapshot
//! sent over the network.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::net::Fault;
use raft_tests::WAIT;

const DISK3: [Kind; 3] = [Kind::Disk, Kind::Disk, Kind::Disk];

/// A follower is partitioned while the other two commit, snapshot and purge their logs
/// past its last entry; after the heal it can only catch up by installing the leader's
/// snapshot, and does (its snapshot metric reaches the purged index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_partitioned_follower_catches_up_by_snapshot() {
    let mut c = Cluster::start(&DISK3, 3, 301).await;
    let leader = c.leader().await;
    let behind = *c
        .members
        .keys()
        .find(|id| **id != leader)
        .expect("a follower");
    let others: Vec<u64> = c
        .members
        .keys()
        .copied()
        .filter(|id| *id != behind)
        .collect();

    tracing::info!(
        behind,
        "--- isolate a follower; commit, snapshot and purge on the rest"
    );
    c.net.isolate(c.host_of(behind));
    c.publish_confirmed(&others, 5, 20).await;
    let leader = c.leader_among(&others).await;
    let index = c.members[&leader].settled_index().await;
    for id in &others {
        c.snapshot_and_purge(*id, index).await;
    }
    let behind_last = c.node(behind).log_entries().await.expect("log");
    let behind_last = behind_last.last().map_or(0, |e| e.log_id.index);
    assert!(
        behind_last < index,
        "the follower really is behind the purge"
    );

    tracing::info!("--- heal; the follower installs a snapshot");
    c.net.heal_all();
    c.node(behind)
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= index),
            "installed the leader's snapshot",
        )
        .await
        .expect("caught up by snapshot");

    check_invariants(&c).await;
    c.shutdown().await;
}

/// A follower restarted from its directory after the others purged what it lacks gets
/// the snapshot over a link that delays every chunk by 30 ms and cuts 2% of them, and
/// then follows new entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_restarted_follower_gets_a_snapshot_over_a_bad_link() {
    let mut c = Cluster::start(&DISK3, 3, 302).await;
    let leader = c.leader().await;
    let behind = *c
        .members
        .keys()
        .find(|id| **id != leader)
        .expect("a follower");

    tracing::info!(
        behind,
        "--- stop a follower; commit, snapshot and purge on the rest"
    );
    c.stop(behind).await;
    let others: Vec<u64> = c.members.keys().copied().collect();
    c.publish_confirmed(&others, 5, 20).await;
    let leader = c.leader_among(&others).await;
    let index = c.members[&leader].settled_index().await;
    for id in &others {
        c.snapshot_and_purge(*id, index).await;
    }

    tracing::info!("--- restart it behind a bad link from the leader");
    let bad = Fault {
        cut: false,
        drop_per_mille: 20,
        delay: Duration::from_millis(30),
    };
    c.net.set(c.host_of(leader), c.host_of(behind), bad);
    c.start_node(c.host_of(behind), behind).await;
    c.node(behind)
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= index),
            "installed the leader's snapshot",
        )
        .await
        .expect("caught up by snapshot");
    let delayed = c.net.counts().delayed.load(Relaxed);
    assert!(delayed > 0, "the snapshot did not cross the slow link");
    let all: Vec<u64> = c.members.keys().copied().collect();
    c.publish_confirmed(&all, 2, 20).await;

    check_invariants(&c).await;
    c.shutdown().await;
}
