//! kill -9 mid-stream loses no confirmed message: publish with confirms, kill the process
//! while publishes are in flight, restart it on the same data directory, drain the queue, and
//! find every confirmed message.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const QUEUE: &str = "durable-q";
/// After this many confirms the server is killed while more publishes are in flight.
const KILL_AFTER_CONFIRMS: usize = 300;

mod common;

async fn connect(addr: SocketAddr) -> lapin::Channel {
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .queue_declare(
            QUEUE,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    // Keep the connection alive as long as the channel is used.
    std::mem::forget(conn);
    channel
}

#[tokio::test]
async fn kill_9_mid_stream_loses_no_confirmed_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, addr) = common::write_config(dir.path());

    tracing::info!("--- publish with confirms, kill -9 while publishes are in flight");
    let mut server = common::start(&config, addr);
    let channel = connect(addr).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let mut pending = Vec::new();
    for n in 0..2000u32 {
        let publish = channel
            .basic_publish(
                "",
                QUEUE,
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await;
        match publish {
            Ok(confirm) => pending.push((n, confirm)),
            Err(_) => break,
        }
    }
    let mut confirmed = BTreeSet::new();
    for (n, confirm) in pending {
        if confirmed.len() == KILL_AFTER_CONFIRMS {
            server.kill();
        }
        match confirm.await {
            Ok(c) if c.is_ack() => {
                confirmed.insert(n);
            }
            _ => {}
        }
    }
    assert!(
        confirmed.len() >= KILL_AFTER_CONFIRMS,
        "only {} confirms before the kill",
        confirmed.len()
    );
    assert!(
        confirmed.len() < 2000,
        "the kill came after every publish was confirmed"
    );
    drop(server);

    tracing::info!("--- restart on the same data directory and drain");
    let _server = common::start(&config, addr);
    let channel = connect(addr).await;
    let declared = channel
        .queue_declare(
            QUEUE,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare after restart");
    let backlog = declared.message_count() as usize;
    assert!(
        backlog >= confirmed.len(),
        "{backlog} messages for {} confirms",
        confirmed.len()
    );
    let mut consumer = channel
        .basic_consume(
            QUEUE,
            "drain",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut seen = BTreeSet::new();
    while seen.len() < backlog {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("delivery within 10 s")
            .expect("consumer open")
            .expect("delivery");
        let n: u32 = std::str::from_utf8(&delivery.data)
            .expect("utf8")
            .parse()
            .expect("number");
        seen.insert(n);
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let lost: Vec<&u32> = confirmed.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "confirmed but lost after kill -9: {lost:?}"
    );
}
