//! Issue 16's priorities, end to end with lapin on the real binary: consumer priorities
//! (`x-priority` on basic.consume) and priority queues (`x-max-priority`, the message's
//! `priority`), both machine version 4, on one node and on a three-node cluster whose
//! leader is killed in the middle.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};

mod common;
use common::cluster::{wait_machine_version, Cluster};
use common::{
    confirm_channel, connect, get_no_ack, next_delivery, publish_numbered, publish_to, refused,
    start_server_with_cli, within,
};

/// The machine version that brought consumer priorities and priority queues.
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

/// Acks `held` on `channel`, then makes a round trip on it (a passive declare of `queue`),
/// so the acks are applied before whatever the test does next.
async fn ack_all(channel: &lapin::Channel, queue: &str, held: Vec<lapin::message::Delivery>) {
    for delivery in held {
        let ack = delivery.acker.ack(BasicAckOptions::default());
        within("basic.ack", ack).await.expect("ack");
    }
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declare = channel.queue_declare(queue, passive, FieldTable::default());
    within("passive queue.declare", declare)
        .await
        .expect("declare");
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
    ack_all(&a_ch, "cp", held_a).await;
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
        // Below it a front end ignores x-priority and x-max-priority.
        cluster
            .wait_machine_version_all(QUEUE_FEATURES_MACHINE_VERSION, TEST_TIMEOUT)
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
        ack_all(&high_ch, "cp-ha", held).await;
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

fn max_priority_args(max: AMQPValue) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), max);
    args
}

/// Declares `queue` with `x-max-priority` `max` on `channel`.
async fn declare_priority_queue(channel: &lapin::Channel, queue: &str, max: i32) {
    let args = max_priority_args(AMQPValue::LongInt(max));
    let declare = channel.queue_declare(queue, QueueDeclareOptions::default(), args);
    within("queue.declare", declare)
        .await
        .expect("queue.declare");
}

/// Publishes `(body, priority)` pairs to `queue`, each confirmed.
async fn publish_with_priorities(channel: &lapin::Channel, queue: &str, messages: &[(&str, u8)]) {
    for (body, priority) in messages {
        let properties = BasicProperties::default().with_priority(*priority);
        publish_to(channel, "", queue, properties, body.as_bytes()).await;
    }
}

/// basic.get (no_ack) until get-empty: the bodies in the order they came.
async fn get_all(channel: &lapin::Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(message) = get_no_ack(channel, queue).await {
        bodies.push(String::from_utf8_lossy(&message.delivery.data).to_string());
    }
    bodies
}

/// basic.get with manual ack: the message, which must be there.
async fn get_held(channel: &lapin::Channel, queue: &str) -> lapin::message::BasicGetMessage {
    let get = channel.basic_get(queue, BasicGetOptions { no_ack: false });
    within("basic.get", get)
        .await
        .expect("basic.get")
        .expect("a message")
}

async fn nack_requeue(message: &lapin::message::BasicGetMessage) {
    let requeue = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    let nack = message.delivery.acker.nack(requeue);
    within("basic.nack", nack).await.expect("nack");
}

fn body_of(message: &lapin::message::BasicGetMessage) -> String {
    String::from_utf8_lossy(&message.delivery.data).to_string()
}

/// On one node: a priority queue gives higher priorities first, publish order within one,
/// a priority above its maximum counts as the maximum, and requeued messages return to
/// their places within their priorities whatever order the nacks come in.
#[tokio::test]
async fn a_priority_queue_orders_by_priority_then_publish_order() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, QUEUE_FEATURES_MACHINE_VERSION).await;
    let conn = connect(server.addr).await;
    let ch = conn.create_channel().await.expect("channel");
    declare_priority_queue(&ch, "pq", 10).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let messages = [
        ("a0", 0),
        ("b5", 5),
        ("c10", 10),
        ("d5", 5),
        ("e0", 0),
        ("f20", 20),
    ];
    publish_with_priorities(&ch, "pq", &messages).await;
    assert_eq!(
        get_all(&ch, "pq").await,
        ["c10", "f20", "b5", "d5", "a0", "e0"]
    );

    tracing::info!("--- take three, publish one more, nack the three back newest first");
    publish_with_priorities(&ch, "pq", &messages).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(get_held(&ch, "pq").await);
    }
    let bodies: Vec<String> = held.iter().map(body_of).collect();
    assert_eq!(bodies, ["c10", "f20", "b5"]);
    publish_with_priorities(&ch, "pq", &[("g10", 10)]).await;
    for message in held.iter().rev() {
        nack_requeue(message).await;
    }
    let order = get_all(&ch, "pq").await;
    assert_eq!(order, ["c10", "f20", "g10", "b5", "d5", "a0", "e0"]);
    conn.close(200, "bye").await.expect("close");
}

/// x-max-priority must be an integer from 0 to 255: RabbitMQ's 406 otherwise.
#[tokio::test]
async fn an_invalid_max_priority_is_refused() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, QUEUE_FEATURES_MACHINE_VERSION).await;
    let conn = connect(server.addr).await;
    let cases = [
        (AMQPValue::LongInt(256), "{max_value_exceeded,256}"),
        (AMQPValue::LongInt(-1), "{value_negative,-1}"),
        (
            AMQPValue::LongString("ten".into()),
            "{unacceptable_type,longstr}",
        ),
    ];
    for (value, why) in cases {
        let ch = conn.create_channel().await.expect("channel");
        let declare = ch.queue_declare(
            "pq-bad",
            QueueDeclareOptions::default(),
            max_priority_args(value),
        );
        let (code, text) = refused("queue.declare", declare).await;
        assert_eq!(code, 406);
        assert_eq!(
            text,
            format!("PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'pq-bad' in vhost '/': {why}")
        );
    }
}

/// On three nodes: messages of a priority queue keep their priorities when the leader is
/// killed, those published before and after it, and those held across it and requeued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_priorities_survive_a_leader_kill() {
    let test = async {
        let mut cluster = Cluster::start().await;
        let leader = cluster.wait_for_leader().await;
        // Below it a front end ignores x-priority and x-max-priority.
        cluster
            .wait_machine_version_all(QUEUE_FEATURES_MACHINE_VERSION, TEST_TIMEOUT)
            .await;
        let others = cluster.others(leader);
        let (consumer_node, publisher_node) = (others[0], others[1]);

        tracing::info!("--- a priority queue; six messages; two taken on the other follower");
        let conn = connect(cluster.amqp(publisher_node)).await;
        let ch = conn.create_channel().await.expect("channel");
        declare_priority_queue(&ch, "pq-ha", 5).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let before = [
            ("a1", 1),
            ("b5", 5),
            ("c0", 0),
            ("d3", 3),
            ("e5", 5),
            ("f1", 1),
        ];
        publish_with_priorities(&ch, "pq-ha", &before).await;
        let taker = connect(cluster.amqp(consumer_node)).await;
        let taker_ch = taker.create_channel().await.expect("channel");
        let held = [
            get_held(&taker_ch, "pq-ha").await,
            get_held(&taker_ch, "pq-ha").await,
        ];
        assert_eq!([body_of(&held[0]), body_of(&held[1])], ["b5", "e5"]);

        tracing::info!("--- kill the leader, wait for a new one");
        cluster.kill(leader);
        let new_leader = cluster.wait_for_leader().await;
        assert_ne!(new_leader, leader);

        tracing::info!("--- two more, the held ones back: all in priority order");
        publish_with_priorities(&ch, "pq-ha", &[("g5", 5), ("h2", 2)]).await;
        for message in held.iter().rev() {
            nack_requeue(message).await;
        }
        let order = get_all(&taker_ch, "pq-ha").await;
        assert_eq!(order, ["b5", "e5", "g5", "d3", "h2", "a1", "f1", "c0"]);
        taker.close(200, "bye").await.expect("close");
        conn.close(200, "bye").await.expect("close");
    };
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}
