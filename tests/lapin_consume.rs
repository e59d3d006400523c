//! End to end: consumers against the real `warren` binary: basic.recover, basic.qos
//! prefetch with two consumers on one queue, and basic.qos(global=true) shared by two
//! consumers on two queues.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{Stream, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRecoverOptions};
use lapin::types::FieldTable;

mod common;

use common::{
    confirm_channel, declare_queue, next_delivery, publish_confirmed, ready_count, start_server,
    within,
};

/// How long a consumer is watched to show that the server holds a message back. Only a
/// bound for an event that must not happen; every expected event is awaited instead.
const QUIET: Duration = Duration::from_millis(300);

/// Asserts that `consumer` (one consumer, or several merged) gets no delivery within
/// [`QUIET`].
async fn assert_quiet<S>(consumer: &mut S, why: &str)
where
    S: Stream + Unpin,
    S::Item: std::fmt::Debug,
{
    if let Ok(extra) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!("{why}: got {extra:?}");
    }
}

/// The next delivery of merged consumers, within the event timeout.
async fn next_of_either<S>(consumers: &mut S) -> lapin::message::Delivery
where
    S: Stream<Item = lapin::Result<lapin::message::Delivery>> + Unpin,
{
    within("a delivery to either consumer", consumers.next())
        .await
        .expect("consumers open")
        .expect("delivery")
}

async fn consume(channel: &lapin::Channel, queue: &str, tag: &str) -> lapin::Consumer {
    within(
        "basic.consume",
        channel.basic_consume(
            queue,
            tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume")
}

/// basic.recover(requeue=true) returns the channel's unacked deliveries to the queue; the
/// consumer gets them again with redelivered=true. An acked delivery is not among them.
#[tokio::test]
async fn recover_requeue_redelivers_unacked_with_redelivered_flag() {
    let server = start_server();
    let (conn, publisher) = confirm_channel(server.addr, "recover-q").await;
    for body in [&b"m1"[..], b"m2", b"m3"] {
        publish_confirmed(&publisher, "recover-q", body).await;
    }
    let channel = conn.create_channel().await.expect("consumer channel");
    let mut consumer = consume(&channel, "recover-q", "recoverer").await;
    let mut first = Vec::new();
    for expected in [&b"m1"[..], b"m2", b"m3"] {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data, expected);
        assert!(!delivery.redelivered);
        first.push(delivery);
    }

    tracing::info!("--- ack m1, recover the other two");
    first[0]
        .ack(BasicAckOptions::default())
        .await
        .expect("basic.ack");
    within(
        "basic.recover-ok",
        channel.basic_recover(BasicRecoverOptions { requeue: true }),
    )
    .await
    .expect("basic.recover");
    let mut again = BTreeSet::new();
    for _ in 0..2 {
        let delivery = next_delivery(&mut consumer).await;
        assert!(
            delivery.redelivered,
            "a recovered delivery is flagged redelivered: {:?}",
            delivery.data
        );
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
        again.insert(delivery.data);
    }
    assert_eq!(
        again,
        BTreeSet::from([b"m2".to_vec(), b"m3".to_vec()]),
        "recover returns exactly the unacked deliveries"
    );

    tracing::info!("--- nothing else was held: the queue is empty after the channel closes");
    within("channel.close", channel.close(200, "bye"))
        .await
        .expect("close consumer channel");
    assert_eq!(ready_count(&publisher, "recover-q").await, 0);
    conn.close(200, "bye").await.expect("close");
}

/// Two consumers with prefetch 1 on one queue, both idle: each new message goes to the
/// consumer that did not get the previous one (round-robin), even though both could take it.
#[tokio::test]
async fn prefetch_1_round_robins_between_two_consumers() {
    let server = start_server();
    let (conn, publisher) = confirm_channel(server.addr, "rr-q").await;
    let channel = conn.create_channel().await.expect("consumer channel");
    channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumers = [
        consume(&channel, "rr-q", "c0").await,
        consume(&channel, "rr-q", "c1").await,
    ];

    let mut receivers = Vec::new();
    for i in 0..6 {
        let body = format!("rr-{i}");
        publish_confirmed(&publisher, "rr-q", body.as_bytes()).await;
        let [c0, c1] = &mut consumers;
        let (who, delivery) = within("a delivery to either consumer", async {
            tokio::select! {
                d = c0.next() => (0, d),
                d = c1.next() => (1, d),
            }
        })
        .await;
        let delivery = delivery.expect("consumer open").expect("delivery");
        assert_eq!(delivery.data, body.as_bytes());
        // Settled before the next publish: on one connection the server handles the ack
        // before that publish, so both consumers are free when it routes the next message.
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
        receivers.push(who);
    }
    for pair in receivers.windows(2) {
        assert_ne!(pair[0], pair[1], "not round-robin: {receivers:?}");
    }
    conn.close(200, "bye").await.expect("close");
}

/// Two consumers with prefetch 1 and four ready messages: each consumer holds one, and gets
/// its next message only after it acks the one it holds.
#[tokio::test]
async fn prefetch_1_holds_next_message_until_ack() {
    let server = start_server();
    let (conn, publisher) = confirm_channel(server.addr, "hold-q").await;
    let channel = conn.create_channel().await.expect("consumer channel");
    channel
        .basic_qos(1, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut c0 = consume(&channel, "hold-q", "c0").await;
    let mut c1 = consume(&channel, "hold-q", "c1").await;
    for i in 0..4 {
        publish_confirmed(&publisher, "hold-q", format!("hold-{i}").as_bytes()).await;
    }

    tracing::info!("--- each consumer holds one message, and no more");
    let held0 = next_delivery(&mut c0).await;
    let held1 = next_delivery(&mut c1).await;
    let mut seen = BTreeSet::from([held0.data.clone(), held1.data.clone()]);
    assert_eq!(seen.len(), 2, "two different messages");
    assert_quiet(&mut c0, "c0 got a second message before acking its first").await;
    assert_quiet(&mut c1, "c1 got a second message before acking its first").await;
    assert_eq!(ready_count(&publisher, "hold-q").await, 2);

    tracing::info!("--- c0 acks: c0 gets the next message, c1 (still holding) does not");
    held0
        .ack(BasicAckOptions::default())
        .await
        .expect("basic.ack");
    let next0 = next_delivery(&mut c0).await;
    assert!(seen.insert(next0.data.clone()), "a new message");
    assert_quiet(&mut c1, "c1 got a second message before acking its first").await;

    tracing::info!("--- c1 acks: c1 gets the last message");
    held1
        .ack(BasicAckOptions::default())
        .await
        .expect("basic.ack");
    let next1 = next_delivery(&mut c1).await;
    assert!(seen.insert(next1.data.clone()), "a new message");
    let all: BTreeSet<Vec<u8>> = (0..4).map(|i| format!("hold-{i}").into_bytes()).collect();
    assert_eq!(seen, all);
    assert_eq!(ready_count(&publisher, "hold-q").await, 0);
    for held in [next0, next1] {
        held.ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    conn.close(200, "bye").await.expect("close");
}

/// basic.qos(2, global=true) limits the channel's consumers together: with two consumers on
/// two queues of 10 messages each, 2 deliveries in all arrive before any ack; each ack
/// releases exactly one more; a global qos of 0 lifts the limit and the rest arrive.
#[tokio::test]
async fn global_qos_is_shared_by_all_consumers_of_the_channel() {
    let server = start_server();
    let (conn, publisher) = confirm_channel(server.addr, "global-q1").await;
    declare_queue(&publisher, "global-q2").await;
    for i in 0..10 {
        for queue in ["global-q1", "global-q2"] {
            publish_confirmed(&publisher, queue, format!("{queue}-{i}").as_bytes()).await;
        }
    }
    let channel = conn.create_channel().await.expect("consumer channel");
    let global = BasicQosOptions { global: true };
    within("basic.qos-ok", channel.basic_qos(2, global))
        .await
        .expect("basic.qos global");
    let c1 = consume(&channel, "global-q1", "g1").await;
    let c2 = consume(&channel, "global-q2", "g2").await;
    let mut both = futures::stream::select(c1, c2);

    tracing::info!("--- two deliveries in all, then none while both are unacked");
    let first = next_of_either(&mut both).await;
    let second = next_of_either(&mut both).await;
    assert_quiet(&mut both, "a third delivery before any ack").await;

    tracing::info!("--- an ack releases exactly one more");
    first
        .ack(BasicAckOptions::default())
        .await
        .expect("basic.ack");
    let third = next_of_either(&mut both).await;
    assert_quiet(&mut both, "a second delivery after one ack").await;

    tracing::info!("--- global qos 0 lifts the limit: the other 17 arrive");
    within("basic.qos-ok", channel.basic_qos(0, global))
        .await
        .expect("basic.qos global 0");
    let mut seen: BTreeSet<Vec<u8>> = [&first, &second, &third]
        .iter()
        .map(|d| d.data.clone())
        .collect();
    for _ in 0..17 {
        let delivery = next_of_either(&mut both).await;
        assert!(seen.insert(delivery.data), "each message once");
    }
    assert_eq!(seen.len(), 20);
    conn.close(200, "bye").await.expect("close");
}
