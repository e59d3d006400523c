//! Node loss at the Raft layer.
//!
//! Warren's node-down watcher (`src/server/node_down.rs`) lives in the server layer: it
//! needs a `Proposer`, which opens its own node from a `NodeConfig` with its own network,
//! so it cannot run over this crate's controlled network. What it relies on is reachable
//! here: the leader's per-member heartbeat acknowledgements (the signal), and the commit of
//! `ConnectionClosed` for the lost node's connections on the majority alone (the effect).
//! These tests check both; the decision between them (silent longer than
//! `NODE_DOWN_AFTER`) is repeated here with a shorter limit.

use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::Instant as _;

use raft_tests::cluster::{Cluster, Kind};
use raft_tests::invariants::check_invariants;
use raft_tests::WAIT;
use warren::broker::command::Command;
use warren::broker::queue::ConsumerKey;
use warren::raft::types::NodeId;
use warren::server::incarnation::conn_node;

const DISK3: [Kind; 3] = [Kind::Disk, Kind::Disk, Kind::Disk];
/// The test's stand-in for `NODE_DOWN_AFTER`.
const SILENT_AFTER: Duration = Duration::from_secs(1);

/// How long ago `leader` last had a heartbeat acknowledged by `member` (None: never).
fn silent_for(c: &Cluster, leader: NodeId, member: NodeId) -> Option<Duration> {
    let metrics = c.node(leader).openraft().metrics().borrow_watched().clone();
    let acked = metrics.heartbeat?.get(&member).copied().flatten()?;
    Some(acked.elapsed())
}

/// Waits (polling the leader's metrics, which do not notify on time passing) until `ok`.
async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT.expect("a wait");
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A channel of a connection on node `id`: the node id in the top 8 bits of the
/// connection id, as the proposer numbers them.
fn holder_on(id: NodeId) -> ConsumerKey {
    ConsumerKey {
        conn: id << 56 | 1,
        channel: 1,
        tag: String::new(),
    }
}

/// The leader's heartbeat acknowledgements show an isolated member going silent (past the
/// limit) while the other member stays fresh, and fresh again once the network heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_leader_sees_an_isolated_member_go_silent() {
    let c = Cluster::start(&DISK3, 3, 601).await;
    let leader = c.leader().await;
    let mut followers = c.members.keys().copied().filter(|id| *id != leader);
    let (lost, kept) = (
        followers.next().expect("one"),
        followers.next().expect("two"),
    );

    tracing::info!(lost, "--- isolate one follower from the leader only");
    c.net.cut_between(c.host_of(leader), c.host_of(lost));
    wait_until("the lost member is silent past the limit", || {
        silent_for(&c, leader, lost).is_some_and(|d| d > SILENT_AFTER)
    })
    .await;
    let kept_silence = silent_for(&c, leader, kept).expect("acked");
    assert!(
        kept_silence < SILENT_AFTER,
        "the healthy member went silent too"
    );

    tracing::info!("--- heal; acknowledgements resume from every member");
    // The lost member may have campaigned while cut off, so the heal can bring an
    // election: look at whoever leads now.
    c.net.heal_all();
    wait_until("every member acknowledges the leader again", || {
        let Some(leader) = c.members.keys().copied().find(|id| c.node(*id).is_leader()) else {
            return false;
        };
        c.members
            .keys()
            .filter(|id| **id != leader)
            .all(|id| silent_for(&c, leader, *id).is_some_and(|d| d < SILENT_AFTER / 2))
    })
    .await;

    check_invariants(&c).await;
    c.shutdown().await;
}

/// A consumer's connection on the lost node holds a message (basic.get, not settled).
/// With that node cut off and silent past the limit, the majority commits the close of its
/// connections: the message is back in the queue, marked redelivered. After the heal the
/// lost node applies the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_majority_returns_a_lost_nodes_checked_out_message() {
    let mut c = Cluster::start(&DISK3, 3, 602).await;
    let leader = c.leader().await;
    let lost = c.follower_of(leader);
    let all: Vec<NodeId> = c.members.keys().copied().collect();
    c.publish_confirmed(&all, 1, 20).await;
    // A connection id of node `lost`: its node id in the top 8 bits (as the proposer's).
    let conn = holder_on(lost).conn;
    assert_eq!(conn_node(conn), lost);
    let get = Command::Get {
        queue: "q".into(),
        holder: holder_on(lost),
        no_ack: false,
    };
    c.node(leader).propose(&[get]).await.expect("basic.get");
    let queue = |id: NodeId| {
        let q = c.members[&id]
            .broker()
            .queue("/", "q")
            .expect("queue q")
            .queue
            .clone();
        (q.n_ready(), q.n_unacked())
    };
    assert_eq!(queue(leader), (0, 1), "checked out");

    tracing::info!(
        lost,
        "--- isolate the consumer's node; close its connections"
    );
    c.net.isolate(c.host_of(lost));
    let others: Vec<NodeId> = all.iter().copied().filter(|id| *id != lost).collect();
    let leader = c.leader_among(&others).await;
    wait_until("the lost node is silent past the limit", || {
        silent_for(&c, leader, lost).is_none_or(|d| d > SILENT_AFTER)
    })
    .await;
    let conns: Vec<u64> = c.members[&leader]
        .broker()
        .connections()
        .into_iter()
        .filter(|conn| conn_node(*conn) == lost)
        .collect();
    assert_eq!(conns, vec![conn]);
    let closes: Vec<Command> = conns
        .into_iter()
        .map(|conn| Command::ConnectionClosed { conn })
        .collect();
    c.node(leader)
        .propose(&closes)
        .await
        .expect("commit without the lost node");
    assert_eq!(queue(leader), (1, 0), "the message is back");
    // A get on a copy of the leader's queue (the model is pure) shows the head's flags.
    let mut copy = c.members[&leader]
        .broker()
        .queue("/", "q")
        .expect("queue q")
        .queue
        .clone();
    let head = copy.get(holder_on(leader), true).expect("a ready message");
    assert!(head.redelivered, "marked redelivered");

    check_invariants(&c).await;
    assert_eq!(
        queue(lost),
        (1, 0),
        "the lost node applied the close after the heal"
    );
    c.shutdown().await;
}
