//! Issue 16's priorities, end to end with lapin on the real binary: consumer priorities
//! (`x-priority` on basic.consume, machine version 4) on one node and on a three-node
//! cluster whose leader is killed in the middle.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};

mod common;
use common::cluster::{wait_machine_version, Cluster};
use common::{
    confirm_channel, connect, next_delivery, publish_to, refused, start_server_with_cli, within,
};

/// The machine version that brought consumer priorities.
const QUEUE_FEATURES_MACHINE_VERSION: u16 = 4;
/// The bound on a whole cluster test.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn priority_args(priority: i32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-priority".into(), AMQPValue::LongInt(priority));
    args
}

/// A channel of `conn` with a per-consumer prefetch of `prefetch`, and on it a consumer of
/// `queue` tagged `tag` with `x-priority` `priority` (none for `None`).
async fn consumer_with(
    conn: &Connection,
    queue: &str,
    tag: &str,
    prefetch: u16,
    priority: Option<i32>,
) -> (lapin::Channel, lapin::Consumer) {
    let channel = conn.create_channel().await.expect("channel");
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let args = priority.map(priority_args).unwrap_or_default();
    let consume = channel.basic_consume(queue, tag, BasicConsumeOptions::default(), args);
    let consumer = within("basic.consume", consume)
        .await
        .expect("basic.consume");
    (channel, consumer)
}

/// Publishes `m{n}` for every n of `ns`, each confirmed.
async fn publish_numbered(
    channel: &lapin::Channel,
    queue: &str,
    ns: std::ops::RangeInclusive<u32>,
) {
    for n in ns {
        let body = format!("m{n}");
        publish_to(
            channel,
            "",
            queue,
            BasicProperties::default(),
            body.as_bytes(),
        )
        .await;
    }
}

/// The bodies of the next `n` deliveries of `consumer`, with the deliveries (to ack).
async fn next_n(
    consumer: &mut lapin::Consumer,
    n: usize,
) -> (Vec<String>, Vec<lapin::message::Delivery>) {
    let mut deliveries = Vec::new();
    for _ in 0..n {
        deliveries.push(next_delivery(consumer).await);
    }
    let bodies = deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(&d.data).to_string())
        .collect();
    (bodies, deliveries)
}

/// Cancels `consumer` (tag `tag` on `channel`) and returns the bodies it still had coming:
/// every delivery made to it precedes the cancel-ok on its channel, so this is all it got.
async fn cancel_and_drain(
    channel: &lapin::Channel,
    tag: &str,
    mut consumer: lapin::Consumer,
) -> Vec<String> {
    let cancel = channel.basic_cancel(tag, BasicCancelOptions::default());
    within("basic.cancel", cancel).await.expect("basic.cancel");
    let mut rest = Vec::new();
    while let Some(delivery) = within("the consumer's end", consumer.next()).await {
        let delivery = delivery.expect("delivery");
        rest.push(String::from_utf8_lossy(&delivery.data).to_string());
    }
    rest
}

/// On one node: the highest-priority consumer with room takes every message, two of the
/// same priority take turns, a lower one gets messages only while the higher ones are full,
/// and a settle gives the next message back to the higher one.
#[tokio::test]
async fn consumers_are_served_by_priority_on_one_node() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, QUEUE_FEATURES_MACHINE_VERSION).await;
    let (publisher, ch) = confirm_channel(server.addr, "cp").await;
    let conn = connect(server.addr).await;
    let (low_ch, low) = consumer_with(&conn, "cp", "low", 100, None).await;
    let (a_ch, mut a) = consumer_with(&conn, "cp", "a", 2, Some(10)).await;
    let (_b_ch, mut b) = consumer_with(&conn, "cp", "b", 2, Some(10)).await;
    let (mid_ch, mid) = consumer_with(&conn, "cp", "mid", 100, Some(5)).await;

    tracing::info!("--- four messages: the two of priority 10 take turns");
    publish_numbered(&ch, "cp", 1..=4).await;
    let (got_a, held_a) = next_n(&mut a, 2).await;
    let (got_b, _held_b) = next_n(&mut b, 2).await;
    assert_eq!(got_a, ["m1", "m3"]);
    assert_eq!(got_b, ["m2", "m4"]);

    tracing::info!("--- both full: the next go to priority 5, not to the default (0)");
    publish_numbered(&ch, "cp", 5..=6).await;
    tracing::info!("--- a settles one: the next is a's again");
    for delivery in held_a {
        let ack = delivery.acker.ack(BasicAckOptions::default());
        within("basic.ack", ack).await.expect("ack");
    }
    // A round trip on a's channel: its acks are applied before the next publish.
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declare = a_ch.queue_declare("cp", passive, FieldTable::default());
    within("passive queue.declare", declare)
        .await
        .expect("declare");
    publish_numbered(&ch, "cp", 7..=7).await;
    let (got_a, _) = next_n(&mut a, 1).await;
    assert_eq!(got_a, ["m7"]);

    tracing::info!("--- what the lower ones got, all of it");
    assert_eq!(cancel_and_drain(&mid_ch, "mid", mid).await, ["m5", "m6"]);
    let to_low = cancel_and_drain(&low_ch, "low", low).await;
    assert!(to_low.is_empty(), "the default one got {to_low:?}");
    conn.close(200, "bye").await.expect("close");
    publisher.close(200, "bye").await.expect("close");
}

/// x-priority must be an integer: another type is refused with RabbitMQ's 406.
#[tokio::test]
async fn a_non_integer_priority_is_refused() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, QUEUE_FEATURES_MACHINE_VERSION).await;
    let (_publisher, _ch) = confirm_channel(server.addr, "cp-bad").await;
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let mut args = FieldTable::default();
    args.insert("x-priority".into(), AMQPValue::LongString("high".into()));
    let consume = channel.basic_consume("cp-bad", "c", BasicConsumeOptions::default(), args);
    let (code, text) = refused("basic.consume", consume).await;
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'cp-bad' in vhost '/': \
         {unacceptable_type,longstr}"
    );
}

/// On three nodes: consumers registered on a follower keep their priorities when the
/// leader is killed; after the new leader takes over, the higher one is still served first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_priorities_survive_a_leader_kill() {
    let test = async {
        let mut cluster = Cluster::start().await;
        let leader = cluster.wait_for_leader().await;
        cluster
            .wait_status("every node at machine version 4", TEST_TIMEOUT, |v| {
                v.nodes.iter().all(|r| {
                    r.status
                        .as_ref()
                        .is_some_and(|s| s.machine_version >= QUEUE_FEATURES_MACHINE_VERSION)
                })
            })
            .await;
        let others = cluster.others(leader);
        let (consumer_node, publisher_node) = (others[0], others[1]);

        tracing::info!("--- on a follower: a default consumer and one of priority 10 (prefetch 2)");
        let (publisher, ch) = confirm_channel(cluster.amqp(publisher_node), "cp-ha").await;
        let conn = connect(cluster.amqp(consumer_node)).await;
        let (low_ch, low) = consumer_with(&conn, "cp-ha", "low", 100, Some(0)).await;
        let (high_ch, mut high) = consumer_with(&conn, "cp-ha", "high", 2, Some(10)).await;
        publish_numbered(&ch, "cp-ha", 1..=3).await;
        let (got, held) = next_n(&mut high, 2).await;
        assert_eq!(got, ["m1", "m2"]);

        tracing::info!("--- kill the leader, wait for a new one");
        cluster.kill(leader);
        let new_leader = cluster.wait_for_leader().await;
        assert_ne!(new_leader, leader);

        tracing::info!("--- high settles its two; the next two are its again");
        for delivery in held {
            let ack = delivery.acker.ack(BasicAckOptions::default());
            within("basic.ack", ack).await.expect("ack");
        }
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declare = high_ch.queue_declare("cp-ha", passive, FieldTable::default());
        within("passive queue.declare", declare)
            .await
            .expect("declare");
        publish_numbered(&ch, "cp-ha", 4..=6).await;
        let (got, _) = next_n(&mut high, 2).await;
        assert_eq!(got, ["m4", "m5"]);
        assert_eq!(cancel_and_drain(&low_ch, "low", low).await, ["m3", "m6"]);
        conn.close(200, "bye").await.expect("close");
        publisher.close(200, "bye").await.expect("close");
    };
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}
