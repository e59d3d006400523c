//! Process tests of a three-node cluster: real `warren server` processes on real sockets,
//! clients through lapin, nodes killed with SIGKILL, the cluster's state read with
//! `warren cluster-status --json`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::BasicAckOptions;

mod common;

use common::clients::{consumer_on, publish_n, seq_of};
use common::cluster::{self, Cluster};

/// The bound on a test of a failover: a hung cluster fails instead of hanging CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// The leader's node-down delay (`NODE_DOWN_AFTER` in src/server/node_down.rs, a private
/// module).
const NODE_DOWN_AFTER: Duration = Duration::from_secs(5);

/// Runs `test` within [`TEST_TIMEOUT`].
async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}

/// Receives the `n` messages the leader gave back from a lost node's consumer, each marked
/// redelivered and acked: the first within the node-down delay (and a margin) of `since`,
/// each next within [`common::EVENT_TIMEOUT`]. Their sequence numbers.
async fn receive_given_back(
    consumer: &mut lapin::Consumer,
    n: u32,
    since: Instant,
) -> BTreeSet<u32> {
    let mut given_back = BTreeSet::new();
    while given_back.len() < n as usize {
        let bound = if given_back.is_empty() {
            NODE_DOWN_AFTER + Duration::from_secs(10)
        } else {
            common::EVENT_TIMEOUT
        };
        let delivery = tokio::time::timeout(bound, consumer.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "got {given_back:?} of {n} messages of the lost node within {:?}",
                    since.elapsed()
                )
            })
            .expect("consumer open")
            .expect("delivery");
        let seq = seq_of(&delivery.data);
        assert!(delivery.redelivered, "message {seq} not marked redelivered");
        assert!(given_back.insert(seq), "message {seq} delivered twice");
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    given_back
}

/// Confirms are a promise across a leader's kill -9 (`common::leader_kill` says how).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_a_leader_kill() {
    bounded(async {
        let mut cluster = Cluster::start().await;
        common::leader_kill::confirmed_messages_survive_a_leader_kill(&mut cluster).await;
    })
    .await;
}

/// cluster-status tells the truth: one leader and three nodes at one applied index; a
/// killed follower shown down while the others keep a leader; the restarted follower
/// catching up to the leader's applied index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_reports_leader_and_a_down_node() {
    const QUEUE: &str = "status-q";
    bounded(async {
        let mut cluster = Cluster::start().await;
        let leader = cluster.wait_for_leader().await;

        tracing::info!("--- after a write, three reachable nodes at one applied index");
        publish_n(cluster.amqp(leader), QUEUE, 10).await;
        let view = cluster
            .wait_status(
                "three nodes at one applied index",
                common::EVENT_TIMEOUT,
                |v| {
                    v.n_leaders() == 1
                        && v.applied_equal(&[1, 2, 3]).is_some()
                        && v.nodes.iter().all(|r| r.lag == Some(0))
                },
            )
            .await;
        assert_eq!(view.nodes.len(), 3);
        assert!(view.warnings.is_empty(), "warnings: {:?}", view.warnings);
        let applied = view.applied_equal(&[1, 2, 3]).expect("equal applied");
        assert!(applied > 0, "nothing applied after a confirmed write");

        tracing::info!("--- kill -9 a follower: shown down, the others keep a leader");
        let follower = cluster.others(view.leader.expect("a leader"))[0];
        cluster.kill(follower);
        let bound = Duration::from_secs(15);
        let view = cluster
            .wait_status("the follower down under a leader", bound, |v| {
                v.n_leaders() == 1 && v.leader.is_some_and(|l| l != follower)
            })
            .await;
        let row = view.row(follower);
        assert!(!row.reachable && row.status.is_none(), "{row:?}");
        let survivors = cluster.others(follower);
        assert!(survivors.iter().all(|id| view.reachable(*id)), "{view:?}");
        let table = cluster::status_table(&cluster.node(1).config).await;
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{follower} ")))
            .unwrap_or_else(|| panic!("no row for node {follower}:\n{table}"));
        assert!(
            line.contains(" down ") && line.trim_end().ends_with("no"),
            "{table}"
        );

        tracing::info!("--- write while it is down; restarted, it catches up");
        publish_n(cluster.amqp(survivors[0]), QUEUE, 20).await;
        // Followers apply a moment after the leader: wait until both survivors agree.
        let view = cluster
            .wait_status("the survivors applying the write", bound, |v| {
                v.applied_equal(&survivors).is_some_and(|a| a > applied)
            })
            .await;
        let written = view.applied_equal(&survivors).map_or(0, |a| a);
        assert!(written > applied, "the write while down was not applied");
        cluster.restart(follower);
        let view = cluster
            .wait_status(
                "the restarted node at the leader's applied index",
                bound,
                |v| {
                    let leader_applied = v.leader.and_then(|l| v.applied(l));
                    v.reachable(follower)
                        && leader_applied.is_some_and(|a| a >= written)
                        && v.applied(follower) == leader_applied
                },
            )
            .await;
        assert_eq!(view.n_leaders(), 1, "{view:?}");

        tracing::info!("--- at one applied index, the three states hash the same");
        let deadline = Instant::now() + bound;
        let digests = loop {
            let view = cluster::status_digest(&cluster.node(1).config).await;
            let digests: Vec<_> = view.nodes.iter().filter_map(|r| r.digest.clone()).collect();
            let same_index = digests
                .windows(2)
                .all(|w| w[0].applied_index == w[1].applied_index);
            if digests.len() == 3 && same_index {
                break digests;
            }
            assert!(
                Instant::now() < deadline,
                "no three digests at one index: {view:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(digests[0].hash.len(), 64, "a SHA-256 in hex: {digests:?}");
        assert!(digests[0].applied_index >= Some(written), "{digests:?}");
        assert!(
            digests.iter().all(|d| d.hash == digests[0].hash),
            "same applied index, different states: {digests:?}"
        );
    })
    .await;
}

/// Node loss returns checkouts: consumer A on a follower holds unacked messages; the
/// follower is killed; after the node-down delay the leader returns them and consumer B on
/// another node receives every one, marked redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_on_a_lost_node_gets_its_messages_redelivered_elsewhere() {
    const QUEUE: &str = "lost-node-q";
    const N: u32 = 10;
    bounded(async {
        let mut cluster = Cluster::start().await;
        let leader = cluster.wait_for_leader().await;
        let others = cluster.others(leader);
        let (lost, survivor) = (others[0], others[1]);
        publish_n(cluster.amqp(leader), QUEUE, N).await;

        tracing::info!("--- consumer A on node {lost} takes every message and never acks");
        let (_conn_a, mut consumer_a) = consumer_on(cluster.amqp(lost), QUEUE, "a", N).await;
        let mut held = BTreeSet::new();
        for _ in 0..N {
            let delivery = common::next_delivery(&mut consumer_a).await;
            assert!(!delivery.redelivered, "first delivery marked redelivered");
            held.insert(seq_of(&delivery.data));
        }
        assert_eq!(held, (0..N).collect::<BTreeSet<u32>>());

        tracing::info!("--- consumer B on node {survivor}; kill -9 node {lost}");
        let (_conn_b, mut consumer_b) = consumer_on(cluster.amqp(survivor), QUEUE, "b", N).await;
        cluster.kill(lost);
        let killed_at = Instant::now();
        let redelivered = receive_given_back(&mut consumer_b, N, killed_at).await;
        assert_eq!(redelivered, held);
        eprintln!(
            "{N} messages redelivered to node {survivor} {:?} after node {lost} was killed",
            killed_at.elapsed()
        );
    })
    .await;
}

/// Chaos finding 2 (docs/chaos.md), the stale-delivery fence: a node the cluster gave up on
/// must not make, on its return, the deliveries it applies late. Consumer A on a follower
/// with room for every message; the follower is paused (SIGSTOP) and N messages published
/// through the leader: the state checks them out to A while A's node applies nothing. After
/// the node-down delay the leader returns them and consumer B on the other follower gets
/// every one, redelivered, and acks it. Then the paused node resumes and applies the old
/// entries: A must receive none of them (without the fence it got all N again, with
/// `redelivered=false`: the checker's `bad_redelivered_flag`), and its connection is closed
/// with 320 CONNECTION_FORCED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_node_does_not_deliver_what_the_cluster_gave_back() {
    const QUEUE: &str = "fence-q";
    const N: u32 = 10;
    bounded(async {
        let cluster = Cluster::start().await;
        let leader = cluster.wait_for_leader().await;
        let others = cluster.others(leader);
        let (paused, survivor) = (others[0], others[1]);

        tracing::info!("--- consumer A on node {paused}, then node {paused} paused");
        let (_conn_a, mut consumer_a) = consumer_on(cluster.amqp(paused), QUEUE, "a", N).await;
        cluster.pause(paused);
        let paused_at = Instant::now();
        publish_n(cluster.amqp(leader), QUEUE, N).await;

        tracing::info!("--- node-down gives A's messages back: B on node {survivor} gets them");
        let (_conn_b, mut consumer_b) = consumer_on(cluster.amqp(survivor), QUEUE, "b", N).await;
        let given_back = receive_given_back(&mut consumer_b, N, paused_at).await;
        assert_eq!(given_back, (0..N).collect::<BTreeSet<u32>>());

        tracing::info!("--- node {paused} resumes after {:?}", paused_at.elapsed());
        cluster.resume(paused);
        let first = tokio::time::timeout(common::EVENT_TIMEOUT, consumer_a.next())
            .await
            .expect("A's connection neither closed nor delivered after the resume");
        match first {
            Some(Ok(delivery)) => panic!(
                "the returning node delivered message {} (redelivered={}), which B already had",
                seq_of(&delivery.data),
                delivery.redelivered
            ),
            Some(Err(e)) => assert_eq!(common::reply_code(&e), 320, "{e:?}"),
            None => panic!("A's consumer ended without the connection's 320"),
        }
    })
    .await;
}

/// The cookie keeps strangers out: a process configured as node 3 (its ports, its peers)
/// but with another cookie is refused by the members, logged on both sides, and never
/// counted: cluster-status still shows node 3 unreachable, and the stranger applied nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_wrong_cookie_cannot_join() {
    const QUEUE: &str = "cookie-q";
    const IMPOSTOR: u64 = 3;
    bounded(async {
        let mut cluster = Cluster::start().await;
        cluster.kill(IMPOSTOR);
        let bound = Duration::from_secs(15);
        cluster
            .wait_status("node 3 down and a leader among 1 and 2", bound, |v| {
                !v.reachable(IMPOSTOR) && v.n_leaders() == 1
            })
            .await;

        tracing::info!("--- start a node 3 with another cookie on node 3's ports");
        let dir = cluster.dir.path().join("impostor");
        std::fs::create_dir(&dir).expect("impostor dir");
        let cookie = dir.join("cookie");
        cluster::write_cookie(&cookie);
        let config = dir.join("node3.toml");
        let text = cluster.config_text(IMPOSTOR, &dir.join("data"), &cookie);
        std::fs::write(&config, text).expect("write impostor config");
        let log = dir.join("node3.log");
        let _impostor = cluster::start_logged(&config, cluster.amqp(IMPOSTOR), &log);
        let leader = cluster.wait_for_leader().await;
        // A write the leader must try to replicate to "node 3".
        publish_n(cluster.amqp(leader), QUEUE, 5).await;

        tracing::info!("--- refused on both sides, never counted");
        wait_for_log(&log, "refused: wrong cookie", bound).await;
        wait_for_log(&cluster.node(leader).log, "refused: wrong cookie", bound).await;
        let view = cluster.status().await;
        assert!(!view.reachable(IMPOSTOR), "the impostor answered: {view:?}");
        assert_eq!(view.n_leaders(), 1, "{view:?}");
        assert!(view.leader.is_some_and(|l| l != IMPOSTOR), "{view:?}");
        let own = cluster::status_with(&config).await;
        assert!(
            own.reachable(IMPOSTOR),
            "the impostor does not answer: {own:?}"
        );
        assert!(
            !own.reachable(1) && !own.reachable(2),
            "members answered the impostor's cookie: {own:?}"
        );
        assert_eq!(own.applied(IMPOSTOR).unwrap_or(0), 0, "{own:?}");
    })
    .await;
}

/// Waits until the log at `path` contains `needle`, for at most `bound`.
async fn wait_for_log(path: &Path, needle: &str, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} has no {needle:?} within {bound:?}:\n{log}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
