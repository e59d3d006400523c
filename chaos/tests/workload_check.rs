//! The chaos workload and checker end to end against one real `warren` node: a fault-free run
//! must check Valid, and a run where a confirmed message is taken out of a queue behind the
//! recorded consumers' back must check Invalid with lost > 0 (the checker bites on a real
//! history, not only on synthetic ones).

use std::path::Path;
use std::time::Duration;

use chaos::checker::{check, CheckOptions, Verdict};
use chaos::history::{self, History};
use chaos::node::WarrenNode;
use chaos::workload::{drain, queue_name, Workload, WorkloadConfig, WorkloadTotals};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{Connection, ConnectionProperties};

const RUN_FOR: Duration = Duration::from_secs(3);
const DRAIN_BOUND: Duration = Duration::from_secs(30);

fn config(uri: String, consumers: usize) -> WorkloadConfig {
    WorkloadConfig {
        uris: vec![uri],
        producers: 2,
        consumers,
        queues: 2,
        confirm_window: 8,
        prefetch: 4,
        rate_per_producer: 200,
        body_size: 128,
        confirm_timeout: Duration::from_secs(5),
        reconnect_delay: Duration::from_millis(200),
    }
}

/// Runs the workload for `RUN_FOR` and stops it.
async fn run_workload(node: &WarrenNode, history: &History, consumers: usize) -> WorkloadTotals {
    let workload = Workload::start(config(node.uri(), consumers), history.clone())
        .await
        .expect("start the workload");
    tokio::time::sleep(RUN_FOR).await;
    workload.stop().await.expect("stop the workload")
}

async fn drain_all(node: &WarrenNode, totals: &WorkloadTotals, history: &History) {
    drain(&[node.uri()], 2, &totals.awaiting, history, DRAIN_BOUND)
        .await
        .expect("drain");
}

fn check_history(path: &Path) -> chaos::checker::Report {
    let read = history::read(path).expect("read history");
    assert!(!read.torn_tail);
    let report = check(&read, &CheckOptions::default());
    eprintln!("{}", report.render());
    report
}

/// A fault-free run: everything confirmed is delivered, nothing else is, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_checks_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = WarrenNode::start(dir.path());
    let path = dir.path().join("history.jsonl");
    let history = History::create(&path).expect("create history");

    let totals = run_workload(&node, &history, 2).await;
    assert!(totals.confirmed > 0, "nothing confirmed: {totals:?}");
    drain_all(&node, &totals, &history).await;
    history.flush().expect("flush");

    let report = check_history(&path);
    assert_eq!(report.lost, 0);
    assert!(report.confirmed > 0);
    assert_eq!(report.confirmed, totals.confirmed);
    assert_eq!(report.verdict(), Verdict::Valid);
}

/// Takes one confirmed message out of a queue with `basic.get` + ack outside the recorded
/// consumers, before the drain: the checker must call it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_taken_behind_the_checkers_back_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = WarrenNode::start(dir.path());
    let path = dir.path().join("history.jsonl");
    let history = History::create(&path).expect("create history");

    // One consumer for two queues: chaos-q1 has none, so its confirmed messages wait there.
    let totals = run_workload(&node, &history, 1).await;
    let taken = take_one_awaited(&node, &totals).await;
    drain_all(&node, &totals, &history).await;
    history.flush().expect("flush");

    let report = check_history(&path);
    assert!(report.lost > 0, "taken {taken:?} was not reported lost");
    assert_eq!(report.verdict(), Verdict::Invalid);
}

/// `basic.get`s from chaos-q1 (which has no workload consumer) one confirmed message the
/// drain awaits, acks it and returns its (pid, mid).
async fn take_one_awaited(node: &WarrenNode, totals: &WorkloadTotals) -> (u64, u64) {
    let connection = Connection::connect(&node.uri(), ConnectionProperties::default())
        .await
        .expect("connect the thief");
    let channel = connection.create_channel().await.expect("channel");
    let queue = queue_name(1);
    let awaited = totals.awaiting.of_queue(&queue);
    assert!(
        !awaited.is_empty(),
        "nothing confirmed on {queue}: {totals:?}"
    );
    let message = channel
        .basic_get(&queue, BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("a message in the queue");
    let ids = chaos::workload::body::decode(&message.delivery.data).ids;
    assert!(
        awaited.contains(&(ids.pid, ids.mid)),
        "got {ids:?}, not a confirmed message"
    );
    channel
        .basic_ack(message.delivery.delivery_tag, BasicAckOptions::default())
        .await
        .expect("ack");
    connection.close(200, "done").await.expect("close");
    (ids.pid, ids.mid)
}

/// A `warren server` on a fixed address and data directory, so it can be killed and started
/// again where the workload's URI points.
struct Server {
    child: std::process::Child,
}

impl Server {
    fn start(dir: &Path, addr: std::net::SocketAddr) -> Server {
        let config = dir.join("warren.toml");
        let text = format!(
            "amqp_listen = \"{addr}\"\ncluster_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            dir.join("data").display()
        );
        std::fs::write(&config, text).expect("write config");
        let child = std::process::Command::new(chaos::node::warren_bin())
            .args(["server", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn warren (run `cargo build --bin warren` first)");
        // Owned before any panic below, so the process is killed and reaped on every path.
        let mut server = Server { child };
        for _ in 0..400 {
            let listening = std::net::TcpStream::connect(addr)
                .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok());
            if listening {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("warren exited before listening: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("warren did not listen on {addr}");
    }

    fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the workload has confirmed `n` messages in all, bounded.
async fn await_confirmed(workload: &Workload, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while workload.confirmed_so_far() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} confirmed",
            workload.confirmed_so_far()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// kill -9 of the only node mid-run, then a restart on the same data: producers and consumers
/// reconnect, unconfirmed publishes are republished, and the history still checks Valid (a
/// single node fsyncs before it confirms, so nothing confirmed may be lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_and_restart_mid_run_still_checks_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a free port");
    let server = Server::start(dir.path(), addr);
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let path = dir.path().join("history.jsonl");
    let history = History::create(&path).expect("create history");
    let mut cfg = config(uri.clone(), 2);
    cfg.confirm_timeout = Duration::from_secs(2);
    let workload = Workload::start(cfg, history.clone())
        .await
        .expect("start the workload");

    await_confirmed(&workload, 100).await;
    server.kill_9();
    let confirmed_at_kill = workload.confirmed_so_far();
    let _server = Server::start(dir.path(), addr);
    await_confirmed(&workload, confirmed_at_kill + 100).await;
    let totals = workload.stop().await.expect("stop the workload");
    assert!(
        totals.reconnects >= 4,
        "not every client reconnected: {totals:?}"
    );
    drain(&[uri], 2, &totals.awaiting, &history, DRAIN_BOUND)
        .await
        .expect("drain");
    history.flush().expect("flush");

    let report = check_history(&path);
    assert_eq!(report.lost, 0);
    assert_eq!(report.verdict(), Verdict::Valid);
}
