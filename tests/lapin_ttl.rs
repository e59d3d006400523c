//! End to end: message TTL from the queue argument `x-message-ttl` and from the per-message
//! `expiration` property, and the channel error for an expiration that is not a number.
//!
//! Expiry is observed, not slept for: each test polls (bounded by `within`) until the
//! expired message is gone, and a control message without a TTL shows that only the expiring
//! one went.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

mod common;

use common::{
    channel_error, closed_with, confirm_channel, connect, declare_queue, get_no_ack, publish_to,
    ready_count, start_server, within,
};

const PRECONDITION_FAILED: u16 = 406;

/// Pause between polls of a queue's message count.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `queue`'s ready count until it is `count`.
async fn await_ready_count(channel: &lapin::Channel, queue: &str, count: u32) {
    within(&format!("{queue} to hold {count} messages"), async {
        while ready_count(channel, queue).await != count {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await;
}

/// A message in a queue with x-message-ttl=100 that nobody consumes expires: the count drops
/// to 0 and basic.get is get-empty; the same message in a queue without a TTL stays.
#[tokio::test]
async fn queue_message_ttl_expires_unconsumed_message() {
    let server = start_server();
    let (conn, channel) = confirm_channel(server.addr, "no-ttl").await;
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(100));
    within(
        "queue.declare with x-message-ttl",
        channel.queue_declare("ttl-100", QueueDeclareOptions::default(), args),
    )
    .await
    .expect("queue.declare");
    within(
        "exchange.declare",
        channel.exchange_declare(
            "ttl-fan",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    for queue in ["ttl-100", "no-ttl"] {
        within(
            "queue.bind",
            channel.queue_bind(
                queue,
                "ttl-fan",
                "",
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("queue.bind");
    }
    publish_to(
        &channel,
        "ttl-fan",
        "",
        BasicProperties::default(),
        b"short-lived",
    )
    .await;

    await_ready_count(&channel, "ttl-100", 0).await;
    assert!(
        get_no_ack(&channel, "ttl-100").await.is_none(),
        "an expired message was delivered"
    );
    assert_eq!(
        ready_count(&channel, "no-ttl").await,
        1,
        "the control expired"
    );
    let kept = get_no_ack(&channel, "no-ttl").await.expect("the control");
    assert_eq!(kept.delivery.data, b"short-lived");
    conn.close(200, "bye").await.expect("close");
}

/// A message published with expiration "100" expires from a queue without a TTL; a message
/// behind it without expiration stays and is the next basic.get.
#[tokio::test]
async fn per_message_expiration_expires_the_message() {
    let server = start_server();
    let (conn, channel) = confirm_channel(server.addr, "exp-q").await;
    let expiring = BasicProperties::default().with_expiration("100".into());
    publish_to(&channel, "", "exp-q", expiring, b"expiring").await;
    publish_to(
        &channel,
        "",
        "exp-q",
        BasicProperties::default(),
        b"lasting",
    )
    .await;

    await_ready_count(&channel, "exp-q", 1).await;
    let next = get_no_ack(&channel, "exp-q").await.expect("get-ok");
    assert_eq!(
        next.delivery.data, b"lasting",
        "the expired message was delivered"
    );
    assert!(get_no_ack(&channel, "exp-q").await.is_none());
    conn.close(200, "bye").await.expect("close");
}

/// An expiration that is not a whole number of milliseconds ("abc") closes the channel with
/// 406 PRECONDITION_FAILED, and the message is not enqueued.
#[tokio::test]
async fn invalid_expiration_is_406() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let observer = conn.create_channel().await.expect("channel");
    declare_queue(&observer, "bad-exp").await;

    let publisher = conn.create_channel().await.expect("channel");
    let closed = channel_error(&conn);
    publisher
        .basic_publish(
            "",
            "bad-exp",
            BasicPublishOptions::default(),
            b"bad",
            BasicProperties::default().with_expiration("abc".into()),
        )
        .await
        .expect("publish sent");
    let (code, text) = closed_with(closed).await;
    assert_eq!(code, PRECONDITION_FAILED, "{text}");
    assert!(text.contains("invalid expiration"), "{text}");
    assert_eq!(ready_count(&observer, "bad-exp").await, 0);
    conn.close(200, "bye").await.expect("close");
}
