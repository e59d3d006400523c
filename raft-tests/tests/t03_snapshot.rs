//! Snapshots: a follower whose missing entries were purged catches up from a snapshot
//! sent over the network.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::net::Fault;
use raft_tests::publish_body;
use warren::limits::SNAPSHOT_CHUNK_BYTES;

const DISK3: [Kind; 3] = [Kind::Disk, Kind::Disk, Kind::Disk];

/// A follower is partitioned while the other two commit, snapshot and purge their logs
/// past its last entry; after the heal it can only catch up by installing the leader's
/// snapshot, and does (its snapshot metric reaches the purged index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_partitioned_follower_catches_up_by_snapshot() {
    let mut c = Cluster::start(&DISK3, 3, 301).await;
    let leader = c.leader().await;
    let behind = c.follower_of(leader);
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
    c.wait_for_snapshot(behind, index, "installed the leader's snapshot")
        .await;

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
    let behind = c.follower_of(leader);

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
    c.wait_for_snapshot(behind, index, "installed the leader's snapshot")
        .await;
    let delayed = c.net.counts().delayed.load(Relaxed);
    assert!(delayed > 0, "the snapshot did not cross the slow link");
    let all: Vec<u64> = c.members.keys().copied().collect();
    c.publish_confirmed(&all, 2, 20).await;

    check_invariants(&c).await;
    c.shutdown().await;
}

/// A snapshot of many chunks (a backlog of 12 MiB, chunks of 1 MiB) reaches a restarted
/// follower over a slow link that is cut while the chunks flow: the receipt is abandoned,
/// the leader sends the snapshot again from its start once the link heals, and the follower
/// installs it and holds the same state (bodies included) as the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t03_a_snapshot_of_many_chunks_survives_a_cut_in_mid_send() {
    let mut c = Cluster::start(&DISK3, 3, 303).await;
    let leader = c.leader().await;
    let behind = c.follower_of(leader);

    tracing::info!(
        behind,
        "--- stop a follower; a 12 MiB backlog; snapshot and purge"
    );
    c.stop(behind).await;
    let body_len = SNAPSHOT_CHUNK_BYTES / 2;
    let n_bodies = 24;
    for n in 0..n_bodies {
        let command = publish_body(Bytes::from(vec![n as u8; body_len]));
        let node = &c.members[&leader].node;
        node.propose(&[command]).await.expect("a large publish");
    }
    assert!(
        n_bodies * body_len > 8 * SNAPSHOT_CHUNK_BYTES,
        "many chunks"
    );
    let others: Vec<u64> = c.members.keys().copied().collect();
    c.publish_confirmed(&others, 2, 20).await;
    let index = c.members[&leader].settled_index().await;
    for id in &others {
        c.snapshot_and_purge(*id, index).await;
    }

    tracing::info!("--- restart it behind a slow link; cut the link in mid-send");
    let slow = Fault {
        delay: Duration::from_millis(20),
        ..Fault::default()
    };
    let (from, to) = (c.host_of(leader), c.host_of(behind));
    c.net.set(from, to, slow.clone());
    c.start_node(to, behind).await;
    let state_dir = c.data_dir(to).expect("a disk node").join("state");
    let partial = wait_for_received(&state_dir, 2 * SNAPSHOT_CHUNK_BYTES as u64).await;
    let refused = c.net.counts().refused.load(Relaxed);
    c.net.set(
        from,
        to,
        Fault {
            cut: true,
            ..slow.clone()
        },
    );
    tracing::info!(
        partial,
        "--- cut after {partial} bytes; heal once the leader is refused"
    );
    wait_until(|| c.net.counts().refused.load(Relaxed) > refused).await;
    c.net.set(from, to, slow);
    c.wait_for_snapshot(behind, index, "installed the leader's snapshot")
        .await;
    assert!(
        received_files(&state_dir).is_empty(),
        "no received file is left behind: {:?}",
        received_files(&state_dir)
    );

    check_invariants(&c).await;
    c.shutdown().await;
}

/// The files of snapshots a node is receiving, with their sizes.
fn received_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("received-"))
        .map(|e| {
            let len = e.metadata().map_or(0, |m| m.len());
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect()
}

/// Waits until a snapshot being received in `dir` holds at least `bytes`; returns its size.
async fn wait_for_received(dir: &std::path::Path, bytes: u64) -> u64 {
    let most = || received_files(dir).iter().map(|(_, len)| *len).max();
    wait_until(|| most().is_some_and(|len| len >= bytes)).await;
    most().unwrap_or(0)
}

/// Polls `done` (a file or a counter: no event to await) until it holds, for up to 60 s.
async fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "not within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
