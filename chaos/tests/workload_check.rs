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
