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
    let raft = c.node(old).openraft();
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
        .openraft()
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
        .openraft()
        .wait(WAIT)
        .current_leader(new, "old leader follows")
        .await
        .expect("follows");
    let index = c.members[&new].settled_index().await;
    c.node(old)
        .openraft()
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
        let messages = c.node(*id).state_machine.messages_with_bodies();
        let held = messages
            .expect("read the bodies")
            .iter()
            .any(|m| m.content.body == body.as_bytes());
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
    let deaf = c.follower_of(leader);

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
        let metrics = c.node(leader).openraft().metrics().borrow_watched().clone();
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
        .openraft()
        .wait(WAIT)
        .current_leader(leader, "the follower follows the leader again")
        .await
        .expect("rejoined");
    assert_eq!(c.leader().await, leader, "the leader was deposed");
    assert_eq!(c.term(leader), term, "an election ran");

    check_invariants(&c).await;
    c.shutdown().await;
}

/// Chaos finding 5: a leader that lost the unsynced tail of its log (EIO, power cut) and
/// restarted must not resume leadership of its old term. With openraft's leader restore it
/// did, and wrote new entries at (term, index) pairs its followers already held with other
/// contents; log matching then kept both, and the state machines diverged. Here the two
/// followers cannot reach each other (so no one replaces the leader while it is down), entry E
/// is committed, and the leader restarts without E in its log. It must campaign for a new
/// term, which it cannot win with a shorter log: a follower leads, and E is on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t06_a_leader_that_lost_its_tail_does_not_resume_its_term() {
    let mut c = Cluster::start(&DISK3, 3, 106).await;
    let old = c.leader().await;
    let followers: Vec<u64> = c.members.keys().copied().filter(|id| *id != old).collect();
    c.net
        .cut_between(c.host_of(followers[0]), c.host_of(followers[1]));
    let e = c
        .publish(old, Duration::from_secs(10))
        .await
        .expect("E commits");
    let e_index = c.members[&old].settled_index().await;

    tracing::info!(
        old,
        e,
        e_index,
        "--- stop the leader; its log loses E (unsynced tail)"
    );
    c.stop(old).await;
    let dir = c.data_dir(c.host_of(old)).expect("a disk node");
    cut_log_at(&dir.join("raft-log"), e_index);
    c.start_node(c.host_of(old), old).await;
    c.net.heal_all();

    // With leader restore it would be leader of its old term at once, and all would agree.
    let leader = c.leader().await;
    assert_ne!(leader, old, "the node that lost E resumed its leadership");
    c.publish_confirmed(&[leader], 1, 10).await;
    check_invariants(&c).await;
    c.shutdown().await;
}

/// Cuts the segment log in `dir` just before the record that appended entry `index`, and
/// drops the tail mark, as a power cut leaves a log whose last batch was never synced.
fn cut_log_at(dir: &std::path::Path, index: u64) {
    use warren::raft::record::{decode, LogRecord};
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let newest = segments.last().expect("a segment");
    let bytes = std::fs::read(newest).expect("read segment");
    let mut off = 0;
    let mut cut = None;
    while off < bytes.len() {
        let (record, n) = decode(&bytes[off..]).expect("a sound log");
        if let LogRecord::Append(entries) = &record {
            if entries.iter().any(|e| e.log_id.index() == index) {
                cut = Some(off);
                break;
            }
        }
        off += n;
    }
    let cut = cut.expect("the record that appended the entry");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .expect("open");
    file.set_len(cut as u64).expect("cut");
    std::fs::remove_file(dir.join("tail.mark")).expect("drop the tail mark");
}
