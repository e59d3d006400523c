//! A backlog bigger than the snapshot threshold survives kill -9 byte-exact: publish more
//! than `SNAPSHOT_AFTER_LOG_BYTES` of bodies with confirms (so a snapshot file with the
//! messages from the node's message store is written and the log purged behind it), publish
//! some more (log only), kill -9, restart on the same directory (the message store is
//! rebuilt from the snapshot file and the log), and drain: every confirmed body comes back
//! exactly.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

mod common;

const QUEUE: &str = "backlog";
const BODY_BYTES: usize = 512 * 1024;
/// 100 MiB in all: above the 64 MiB snapshot threshold.
const N_BEFORE_SNAPSHOT: u32 = 200;
const N_AFTER_SNAPSHOT: u32 = 20;
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// Message `n`'s body: its number, then bytes that depend on `n` and their position.
fn body(n: u32) -> Vec<u8> {
    let mut bytes = n.to_le_bytes().to_vec();
    bytes.extend((0..BODY_BYTES as u32 - 4).map(|i| (i.wrapping_mul(2_654_435_761) ^ n) as u8));
    bytes
}

async fn connect(addr: SocketAddr) -> (Connection, lapin::Channel) {
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(QUEUE, durable, FieldTable::default())
        .await
        .expect("queue.declare");
    (conn, channel)
}

async fn publish_confirmed(channel: &lapin::Channel, numbers: std::ops::Range<u32>) {
    let mut pending = Vec::new();
    for n in numbers {
        let confirm = channel
            .basic_publish(
                "",
                QUEUE,
                BasicPublishOptions::default(),
                &body(n),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        pending.push((n, confirm));
    }
    for (n, confirm) in pending {
        let confirmation = confirm.await.expect("confirm");
        assert!(confirmation.is_ack(), "message {n} not confirmed");
    }
}

/// Waits until the node wrote a snapshot file of at least `bytes_min` bytes.
async fn wait_for_snapshot(data: &Path, bytes_min: u64) -> u64 {
    let path = data.join("state").join("snapshot.bin");
    let start = Instant::now();
    loop {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len >= bytes_min {
            return len;
        }
        assert!(
            start.elapsed() < SNAPSHOT_WAIT,
            "no snapshot of {bytes_min} bytes within {SNAPSHOT_WAIT:?} (have {len})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_beyond_a_snapshot_survives_kill_9_byte_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, addr) = common::write_config(dir.path());
    let data = dir.path().join("data");

    tracing::info!("--- publish past the snapshot threshold, wait for the snapshot file");
    let mut server = common::start(&config, addr);
    let (conn, channel) = connect(addr).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    publish_confirmed(&channel, 0..N_BEFORE_SNAPSHOT).await;
    let snapshot_bytes = wait_for_snapshot(&data, 64 * 1024 * 1024).await;
    tracing::info!(snapshot_bytes, "snapshot written");

    tracing::info!("--- publish more (in the log only), kill -9");
    publish_confirmed(
        &channel,
        N_BEFORE_SNAPSHOT..N_BEFORE_SNAPSHOT + N_AFTER_SNAPSHOT,
    )
    .await;
    server.kill();
    drop(conn);
    drop(server);

    tracing::info!("--- restart on the same directory, drain, compare every body");
    let _server = common::start(&config, addr);
    let (_conn, channel) = connect(addr).await;
    channel
        .basic_qos(20, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            QUEUE,
            "drain",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let n_total = N_BEFORE_SNAPSHOT + N_AFTER_SNAPSHOT;
    let mut seen = vec![false; n_total as usize];
    for _ in 0..n_total {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("delivery within 20 s")
            .expect("consumer open")
            .expect("delivery");
        let head: [u8; 4] = delivery
            .data
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .expect("a body of at least 4 bytes");
        let n = u32::from_le_bytes(head);
        assert!(n < n_total, "unknown message {n}");
        assert!(delivery.data == body(n), "body of message {n} differs");
        assert!(!seen[n as usize], "message {n} twice");
        seen[n as usize] = true;
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert!(seen.iter().all(|s| *s), "every confirmed message came back");
}
