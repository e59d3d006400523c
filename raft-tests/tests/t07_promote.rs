//! Promotion of a learner, through Warren's own membership code (`warren promote`, a RAM
//! node's join), not openraft's calls alone.
//!
//! Issue 20 (chaos seed 90210): a repaired disk node was promoted while it still lagged far
//! behind; then the RAM node restarted. With the RAM node's old start dead, every commit (and
//! the joint change that swaps the RAM node's ids) needed the lagging voter, and confirms
//! stopped for 34 s, until it caught up.

use std::time::{Duration, Instant};

use bytes::Bytes;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::publish_body;
use warren::raft::membership;
use warren::raft::node::wall_clock_ms;
use warren::raft::protocol::{MembershipChange, PeerResponse};
use warren::raft::types::{ram_node_id, NodeId};

const RAM_HOST: u64 = 3;
/// How many times node 2, should it lead, is asked to hand over to node 1.
const HAND_OVER_TRIES: usize = 5;
/// How soon confirms must resume after the RAM node dies, when the other two voters hold the
/// log (the bar).
const RESUME_MAX: Duration = Duration::from_secs(2);
/// The backlog the wiped node must fetch: 96 entries of 256 KiB.
const BACKLOG_ENTRIES: usize = 96;
const BACKLOG_ENTRY_BYTES: usize = 256 * 1024;
/// On the leader's link to it, every 64 KiB chunk waits this long (6.4 MB/s): the 24 MiB take
/// about 4 s. (The link stays faster than the 4 MiB/s an append's deadline allows for its
/// bytes, `CLUSTER_APPEND_BYTES_PER_S_MIN`: on a slower one every large append times out and
/// is sent again whole, and the node never catches up.)
const SLOW_LINK: Duration = Duration::from_millis(10);

/// Starts the RAM node on its host under a new RAM id and has `leader` add it as a voter in
/// place of its earlier starts, as a RAM node's start asks (src/server/cluster_node.rs).
async fn start_ram_node(c: &mut Cluster, leader: NodeId) -> NodeId {
    let id = ram_node_id(RAM_HOST, wall_clock_ms());
    c.start_node(RAM_HOST, id).await;
    let addr = c.basic_node(RAM_HOST).addr;
    let said = change(
        c,
        leader,
        MembershipChange::Join {
            id,
            addr,
            voter: true,
        },
    )
    .await;
    assert!(said.contains("joined as a voter"), "{said}");
    id
}

/// Carries out `change` on `leader` the way a node's peer server does.
async fn change(c: &Cluster, leader: NodeId, change: MembershipChange) -> String {
    match membership::change(c.node(leader), change.clone()).await {
        PeerResponse::Done(done) => done,
        other => panic!("{change:?}: {other:?}"),
    }
}

/// A disk node is repaired (demoted, wiped, started) while a large backlog waits for it over
/// a slow link, and promoted at once. `promote` must make it a voter only once it holds the
/// leader's log; then the RAM node dies, and the leader and the promoted node commit within
/// 2 s. The RAM node's new start then replaces the dead one (the leader still addresses the
/// dead id at the same address and is refused: that holds nothing up) and commits go on.
/// Without the wait in `promote`, the first commit after the RAM node's death waits for the
/// lagging voter (about 4 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_a_lagging_learner_becomes_a_voter_only_once_caught_up() {
    let mut c = Cluster::start(&[Kind::Disk, Kind::Disk, Kind::Ram], 2, 707).await;
    // Node 1 leads, so the repaired node (2) is not the lowest id, which would initialise.
    let mut leader = c.leader().await;
    for _ in 0..HAND_OVER_TRIES {
        if leader == 1 {
            break;
        }
        let raft = c.node(leader).openraft();
        raft.trigger().transfer_leader(1).await.expect("hand over");
        raft.wait(raft_tests::WAIT)
            .metrics(|m| m.current_leader != Some(leader), "hand over")
            .await
            .expect("node 2 handed over");
        leader = c.leader_among(&[1, 2]).await;
    }
    assert_eq!(leader, 1, "node 1 took over");
    let victim = 2;
    let ram_id = start_ram_node(&mut c, leader).await;
    c.publish_confirmed(&[leader], 5, 10).await;

    tracing::info!(
        victim,
        "--- repair: stop, demote, wipe; a backlog builds meanwhile"
    );
    c.stop(victim).await;
    let said = change(&c, leader, MembershipChange::Demote { id: victim }).await;
    assert!(said.contains("is a learner"), "{said}");
    for n in 0..BACKLOG_ENTRIES {
        let mut body = format!("backlog{n}-").into_bytes();
        body.resize(BACKLOG_ENTRY_BYTES, b'.');
        let body = Bytes::from(body);
        c.node(leader)
            .propose(&[publish_body(body)])
            .await
            .expect("the leader and the RAM node commit the backlog");
    }
    let dir = c.data_dir(c.host_of(victim)).expect("disk").to_path_buf();
    std::fs::remove_dir_all(&dir).expect("wipe");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let slow = raft_tests::net::Fault {
        delay: SLOW_LINK,
        ..Default::default()
    };
    c.net.set(c.host_of(leader), c.host_of(victim), slow);
    c.start_node(c.host_of(victim), victim).await;

    tracing::info!("--- promote at once: it must wait until the node holds the log");
    let target = c.last_log_index(leader);
    let said = change(&c, leader, MembershipChange::Promote { id: victim }).await;
    assert!(said.contains("is a voter"), "{said}");
    let held = c.last_log_index(victim);
    tracing::info!(?held, ?target, "--- promoted");

    tracing::info!("--- the RAM node dies: the leader and the promoted node commit");
    c.stop(ram_id).await;
    let died = Instant::now();
    if let Err(e) = c.publish(leader, RESUME_MAX).await {
        let promoted = format!("promoted holding the log up to {held:?} of {target:?}");
        panic!("no commit within 2 s of the RAM node's death ({e:#}); {promoted}");
    }
    tracing::info!(after = ?died.elapsed(), "--- first commit after the death");

    tracing::info!("--- the RAM node's new start replaces the dead one");
    let swap_started = Instant::now();
    let again = start_ram_node(&mut c, leader).await;
    assert!(
        swap_started.elapsed() < Duration::from_secs(5),
        "the swap took {:?}",
        swap_started.elapsed()
    );
    assert_eq!(
        c.voters(leader),
        [leader, victim, again].into_iter().collect(),
        "the dead start is gone"
    );
    c.publish(leader, RESUME_MAX)
        .await
        .expect("commits go on with the new start");

    let delayed = c
        .net
        .counts()
        .delayed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(delayed > 0, "the slow link carried nothing");
    check_invariants(&c).await;
    c.shutdown().await;
}
