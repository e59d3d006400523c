//! End to end: publishing against the real `warren` binary: mandatory publishes and
//! basic.return, and many pipelined publishes under confirms.

use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

mod common;

use common::{confirm_channel, next_delivery, ready_count, start_server, within};

/// Publishes `body` with `mandatory` and returns its confirmation.
async fn publish_mandatory(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
) -> Confirmation {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirm = channel
        .basic_publish(
            exchange,
            routing_key,
            options,
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    within("publisher confirm", confirm).await.expect("confirm")
}

/// A mandatory publish that reaches no queue comes back in basic.return 312 NO_ROUTE with its
/// body, and the return precedes the confirm: lapin hands a return that arrived before the
/// ack to that ack (`Confirmation::Ack(Some(message))`). A routed mandatory publish gets a
/// plain ack, and a non-mandatory unroutable one is dropped without a return.
#[tokio::test]
async fn mandatory_unroutable_publish_is_returned_before_its_confirm() {
    let server = start_server();
    let (conn, channel) = confirm_channel(server.addr, "mand-q").await;
    channel
        .exchange_declare(
            "mand-x",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare");
    channel
        .queue_bind(
            "mand-q",
            "mand-x",
            "routed",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");

    tracing::info!("--- unroutable mandatory publish: returned, then acked");
    let confirmation = publish_mandatory(&channel, "mand-x", "nowhere", b"lost").await;
    assert!(confirmation.is_ack(), "{confirmation:?}");
    let returned = confirmation
        .take_message()
        .expect("basic.return before the confirm");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.exchange.as_str(), "mand-x");
    assert_eq!(returned.delivery.routing_key.as_str(), "nowhere");
    assert_eq!(returned.delivery.data, b"lost");

    tracing::info!("--- routed mandatory publish: a plain ack");
    let confirmation = publish_mandatory(&channel, "mand-x", "routed", b"found").await;
    assert!(
        matches!(confirmation, Confirmation::Ack(None)),
        "{confirmation:?}"
    );

    tracing::info!("--- unroutable publish without mandatory: a plain ack, no return");
    let confirm = channel
        .basic_publish(
            "mand-x",
            "nowhere",
            BasicPublishOptions::default(),
            b"dropped",
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    let confirmation = within("publisher confirm", confirm).await.expect("confirm");
    assert!(
        matches!(confirmation, Confirmation::Ack(None)),
        "{confirmation:?}"
    );
    let stray = within("wait_for_confirms", channel.wait_for_confirms())
        .await
        .expect("wait_for_confirms");
    assert!(stray.is_empty(), "returns nobody claimed: {stray:?}");
    assert_eq!(
        ready_count(&channel, "mand-q").await,
        1,
        "only the routed one"
    );
    conn.close(200, "bye").await.expect("close");
}

const PIPELINED_N: usize = 5_000;
const PREFETCH: u16 = 100;

/// 5,000 publishes on one confirm channel without waiting for any confirm before the next
/// publish: every one is acked. Then one consumer with prefetch 100 and manual acks gets all
/// of them in publish order, never holding more than 100 unacked.
#[tokio::test]
async fn pipelined_publishes_all_confirmed_then_consumed_in_order_within_prefetch() {
    let server = start_server();
    let (conn, channel) = confirm_channel(server.addr, "pipelined").await;

    tracing::info!("--- publish without awaiting confirms, then await them all");
    let mut confirms = Vec::with_capacity(PIPELINED_N);
    for seq in 0..PIPELINED_N {
        let confirm = channel
            .basic_publish(
                "",
                "pipelined",
                BasicPublishOptions::default(),
                format!("{seq}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish");
        confirms.push(confirm);
    }
    let confirmations = within("5000 confirms", futures::future::join_all(confirms)).await;
    for (seq, confirmation) in confirmations.into_iter().enumerate() {
        let confirmation = confirmation.expect("confirm");
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "publish {seq}: {confirmation:?}"
        );
    }
    assert_eq!(ready_count(&channel, "pipelined").await, PIPELINED_N as u32);

    tracing::info!("--- consume with prefetch 100, acking the older half of each full window");
    let consumer_channel = conn.create_channel().await.expect("consumer channel");
    consumer_channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = consumer_channel
        .basic_consume(
            "pipelined",
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    // Delivery tags received and not yet acked, oldest first.
    let mut unacked: Vec<u64> = Vec::new();
    let mut first_window = true;
    for seq in 0..PIPELINED_N {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(
            delivery.data,
            format!("{seq}").into_bytes(),
            "out of order at {seq}"
        );
        assert!(!delivery.redelivered, "message {seq} redelivered");
        unacked.push(delivery.delivery_tag);
        assert!(
            unacked.len() <= usize::from(PREFETCH),
            "{} unacked deliveries with prefetch {PREFETCH}",
            unacked.len()
        );
        if unacked.len() < usize::from(PREFETCH) && seq + 1 < PIPELINED_N {
            continue;
        }
        if unacked.len() == usize::from(PREFETCH) {
            // The window is full: the server must hold the next delivery until an ack.
            // The first time, give it a moment to misbehave; later, look at what has
            // already arrived without waiting.
            let extra = if first_window {
                first_window = false;
                tokio::time::timeout(std::time::Duration::from_millis(500), consumer.next())
                    .await
                    .ok()
            } else {
                consumer.next().now_or_never()
            };
            assert!(
                extra.is_none(),
                "a delivery beyond prefetch {PREFETCH} arrived with {} unacked",
                unacked.len()
            );
        }
        // Ack the older half (all of it at the end) with one multiple ack.
        let n_ack = if seq + 1 == PIPELINED_N {
            unacked.len()
        } else {
            unacked.len() / 2
        };
        let last = unacked[n_ack - 1];
        consumer_channel
            .basic_ack(last, BasicAckOptions { multiple: true })
            .await
            .expect("basic.ack");
        unacked.drain(..n_ack);
    }
    assert!(unacked.is_empty());
    // Settled, not just delivered: nothing comes back when the consumer's channel closes.
    within("channel.close", consumer_channel.close(200, "bye"))
        .await
        .expect("close consumer channel");
    assert_eq!(ready_count(&channel, "pipelined").await, 0);
    conn.close(200, "bye").await.expect("close");
}
