//! Process tests of membership and node operations, with the `warren` commands an operator
//! runs: `join`, `forget`, `promote`, `demote`, `stop`, and `server --detach`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;

mod common;

use common::clients::{consume, publish_while, wait_all_seen, Seen};
use common::cluster::{self, Cluster, ClusterView};

/// The bound on a whole test: a hung cluster fails instead of hanging CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How many more confirms must arrive after each step to show the cluster kept committing.
const CONFIRMS_PER_STEP: usize = 200;

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}

/// Runs `warren ARGS` to completion; its stdout, or a panic with its stderr.
async fn warren(args: &[&str], config: &Path) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .unwrap_or_else(|_| panic!("warren {args:?} did not finish"))
        .expect("run warren");
    assert!(
        output.status.success(),
        "warren {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The voter ids the leader reports.
fn voters(view: &ClusterView) -> Vec<u64> {
    leader_status(view).map_or(Vec::new(), |s| s.voters.iter().map(|v| v.0).collect())
}

fn learners(view: &ClusterView) -> Vec<u64> {
    leader_status(view).map_or(Vec::new(), |s| s.learners.iter().map(|v| v.0).collect())
}

fn leader_status(view: &ClusterView) -> Option<&cluster::NodeStatus> {
    let leader = view.leader?;
    view.nodes
        .iter()
        .find(|r| r.id == leader)
        .and_then(|r| r.status.as_ref())
}

/// Waits until the publisher has `n` confirms.
async fn confirms_reach(progress: &watch::Receiver<usize>, n: usize) {
    let mut progress = progress.clone();
    let reached = progress.wait_for(|confirmed| *confirmed >= n);
    tokio::time::timeout(Duration::from_secs(30), reached)
        .await
        .unwrap_or_else(|_| panic!("publishing stalled below {n} confirms"))
        .expect("publisher alive");
}

/// Nodes join and leave while a client publishes with confirms: a fourth node joins (and is
/// a voter: once node 3 is forgotten and node 1 killed, nodes 2 and 4 alone keep committing),
/// and every confirmed message is then consumed through the node that joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_and_leave_while_clients_publish() {
    const QUEUE: &str = "membership-q";
    bounded(async {
        let mut cluster = Cluster::start().await;
        let publish_addrs = [cluster.amqp(2)];
        let stop = Arc::new(AtomicBool::new(false));
        let (progress_tx, progress) = watch::channel(0usize);
        let publisher = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                publish_while(&publish_addrs, QUEUE, |p| {
                    progress_tx.send_replace(p.confirmed);
                    !stop.load(Ordering::Relaxed)
                })
                .await
            })
        };
        confirms_reach(&progress, CONFIRMS_PER_STEP).await;

        tracing::info!("--- node 4 joins while the client publishes");
        let joiner = cluster.add_node();
        let config4 = cluster.node(joiner).config.clone();
        let said = warren(&["join"], &config4).await;
        assert!(said.contains("joined as a voter"), "{said}");
        let view = cluster::status_with(&config4).await;
        assert_eq!(voters(&view), vec![1, 2, 3, 4], "{view:?}");
        let confirmed = *progress.borrow();
        confirms_reach(&progress, confirmed + CONFIRMS_PER_STEP).await;

        tracing::info!("--- node 3 dies and is forgotten");
        cluster.kill(3);
        let said = warren(&["forget", "3"], &config4).await;
        assert!(said.contains("node 3 removed"), "{said}");
        let view = cluster::status_with(&config4).await;
        assert_eq!(voters(&view), vec![1, 2, 4], "{view:?}");

        tracing::info!("--- node 1 dies: nodes 2 and 4 are a quorum of three");
        cluster.kill(1);
        let confirmed = *progress.borrow();
        confirms_reach(&progress, confirmed + CONFIRMS_PER_STEP).await;
        stop.store(true, Ordering::Relaxed);
        let published = publisher.await.expect("publisher task");

        tracing::info!("--- every confirmed message is consumed through node 4");
        let (seen_tx, seen) = watch::channel(Seen::default());
        let consumer = tokio::spawn(consume(vec![cluster.amqp(joiner)], QUEUE, seen_tx));
        wait_all_seen(&published.confirmed, &seen, Duration::from_secs(30)).await;
        consumer.abort();
        eprintln!(
            "{} confirmed, {} nacks, {} publisher reconnects",
            published.confirmed.len(),
            published.n_nacks,
            published.n_reconnects
        );
    })
    .await;
}

/// demote makes a voter a learner and promote makes it a voter again; `warren stop` on the
/// leader hands leadership to another voter and the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demote_promote_and_a_graceful_stop_of_the_leader() {
    bounded(async {
        let mut cluster = Cluster::start().await;
        let leader = cluster.wait_for_leader().await;
        let follower = cluster.others(leader)[0];
        let config = cluster.node(leader).config.clone();

        let said = warren(&["demote", &follower.to_string()], &config).await;
        assert!(said.contains("is a learner"), "{said}");
        let view = cluster.status().await;
        assert!(!voters(&view).contains(&follower), "{view:?}");
        assert_eq!(learners(&view), vec![follower], "{view:?}");

        let said = warren(&["promote", &follower.to_string()], &config).await;
        assert!(said.contains("is a voter"), "{said}");
        let view = cluster.status().await;
        assert_eq!(voters(&view), vec![1, 2, 3], "{view:?}");
        assert!(learners(&view).is_empty(), "{view:?}");

        tracing::info!("--- stop the leader: it hands over and exits 0");
        warren(&["stop"], &config).await;
        let status = cluster.wait_exit(leader, Duration::from_secs(10));
        assert!(status.success(), "the stopped leader exited with {status}");
        assert!(
            cluster.log(leader).contains("handing leadership over"),
            "{}",
            cluster.log(leader)
        );
        let view = cluster
            .wait_status("a new leader", cluster::LEADER_TIMEOUT, |v| {
                v.n_leaders() == 1 && v.leader.is_some_and(|l| l != leader)
            })
            .await;
        assert!(!view.reachable(leader), "{view:?}");
    })
    .await;
}

/// Kills a detached node by pid if a test fails before stopping it.
struct PidGuard(i32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory effects; a pid already gone gives ESRCH.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// `server --detach` returns once the node serves, with its pid in a file; `stop` ends it
/// and removes the pid file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_node_serves_and_stops() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, addr) = common::write_config(dir.path());
        warren(&["server", "--detach"], &config).await;
        let pid_file = dir.path().join("data").join("warren.pid");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid");
        let _guard = PidGuard(pid);
        let conn = Connection::connect(&common::uri(addr), ConnectionProperties::default())
            .await
            .expect("the detached node serves AMQP");
        drop(conn);

        warren(&["stop"], &config).await;
        assert!(!pid_file.exists(), "pid file left behind");
        let proc_dir = format!("/proc/{pid}");
        let gone = !Path::new(&proc_dir).exists()
            || std::fs::read_to_string(format!("{proc_dir}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            });
        assert!(gone, "pid {pid} still runs after warren stop");
    })
    .await;
}

/// A follower whose consumer holds ten unacked messages is killed, demoted, wiped and started
/// again at once, as docs/operations.md's repair says: it comes back empty under a new
/// incarnation, before the leader would take it for down (5 s), and learns of its earlier
/// connection only from the leader's snapshot and log. It must close that connection once it
/// sees it, so the ten come back and a consumer on the leader gets every message (chaos
/// seed 51: consumers of a wiped node's earlier life held 30 confirmed messages for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_and_repaired_node_gives_back_what_its_earlier_life_held() {
    use futures::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicQosOptions};

    const HELD: &str = "repair-held";
    bounded(async {
        let mut cluster = Cluster::start().await;
        let leader = cluster.wait_for_leader().await;
        let follower = cluster.others(leader)[0];
        let config = cluster.node(leader).config.clone();
        let published = publish_while(&[cluster.amqp(leader)], HELD, |p| p.sent < 50).await;
        assert!(
            published.confirmed.len() >= 50,
            "{}",
            published.confirmed.len()
        );

        tracing::info!(
            follower,
            "--- a consumer on the follower takes ten and acks none"
        );
        let addr = [cluster.amqp(follower)];
        let (_conn, channel) = common::clients::open_channel(&addr, HELD).await;
        channel
            .basic_qos(10, BasicQosOptions::default())
            .await
            .expect("qos");
        let table = lapin::types::FieldTable::default();
        let mut holder = channel
            .basic_consume(HELD, "holder", BasicConsumeOptions::default(), table)
            .await
            .expect("consume");
        for _ in 0..10 {
            holder.next().await.expect("a delivery").expect("delivered");
        }

        tracing::info!("--- kill -9, demote, wipe, start again at once, promote");
        cluster.kill(follower);
        let said = warren(&["demote", &follower.to_string()], &config).await;
        assert!(said.contains("is a learner"), "{said}");
        let data = cluster.dir.path().join(format!("node{follower}"));
        std::fs::remove_dir_all(&data).expect("wipe the data directory");
        cluster.restart(follower);
        cluster
            .wait_status(
                "the repaired node caught up",
                cluster::LEADER_TIMEOUT,
                |v| v.applied(follower).is_some() && v.applied_equal(&[1, 2, 3]).is_some(),
            )
            .await;
        let said = warren(&["promote", &follower.to_string()], &config).await;
        assert!(said.contains("is a voter"), "{said}");

        tracing::info!("--- every message reaches a consumer on the leader, the ten included");
        let (seen_tx, seen) = watch::channel(Seen::default());
        let consumer = tokio::spawn(consume(vec![cluster.amqp(leader)], HELD, seen_tx));
        wait_all_seen(&published.confirmed, &seen, Duration::from_secs(40)).await;
        consumer.abort();
    })
    .await;
}
