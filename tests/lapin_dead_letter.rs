//! Dead-lettering and queue length limits, end to end: the real binary and lapin.

use lapin::options::{
    BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

mod common;
use common::{connect, get_no_ack, publish_to, start_server, within};

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// A message rejected without requeue from a queue with a dead-letter exchange arrives in
/// the dead-letter queue with RabbitMQ's x-death entry and x-first-death-* headers, routed
/// with the dead-letter routing key.
#[tokio::test]
async fn rejected_message_is_dead_lettered_with_x_death() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let declare = |name: &'static str, arguments: FieldTable| {
        let channel = channel.clone();
        async move {
            within(
                "queue.declare",
                channel.queue_declare(name, QueueDeclareOptions::default(), arguments),
            )
            .await
            .expect("queue.declare");
        }
    };
    declare("dlq", FieldTable::default()).await;
    within(
        "queue.bind",
        channel.queue_bind(
            "dlq",
            "amq.direct",
            "dead",
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.bind");
    let work_args = args(&[
        ("x-dead-letter-exchange", text("amq.direct")),
        ("x-dead-letter-routing-key", text("dead")),
    ]);
    declare("work", work_args).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    publish_to(&channel, "", "work", BasicProperties::default(), b"poison").await;

    let got = within(
        "basic.get",
        channel.basic_get("work", lapin::options::BasicGetOptions { no_ack: false }),
    )
    .await
    .expect("basic.get")
    .expect("the message");
    within(
        "basic.nack",
        got.delivery.acker.nack(BasicNackOptions {
            multiple: false,
            requeue: false,
        }),
    )
    .await
    .expect("nack");

    let dead = get_no_ack(&channel, "dlq")
        .await
        .expect("the dead-lettered message");
    assert_eq!(dead.delivery.data, b"poison");
    assert_eq!(dead.delivery.exchange.as_str(), "amq.direct");
    assert_eq!(dead.delivery.routing_key.as_str(), "dead");
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers on a dead letter");
    let headers = headers.inner();
    let Some(AMQPValue::FieldArray(deaths)) = headers.get("x-death") else {
        panic!("x-death is not an array: {headers:?}");
    };
    assert_eq!(deaths.as_slice().len(), 1);
    let AMQPValue::FieldTable(death) = &deaths.as_slice()[0] else {
        panic!("x-death entry is not a table");
    };
    let death = death.inner();
    assert_eq!(death.get("count"), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(death.get("reason"), Some(&text("rejected")));
    assert_eq!(death.get("queue"), Some(&text("work")));
    assert_eq!(death.get("exchange"), Some(&text("")));
    assert_eq!(headers.get("x-first-death-queue"), Some(&text("work")));
    assert_eq!(headers.get("x-first-death-reason"), Some(&text("rejected")));
    assert!(get_no_ack(&channel, "work").await.is_none());
}

/// x-max-length 1 with x-overflow=reject-publish: the second publish is nacked (definitely
/// not enqueued), the first stays.
#[tokio::test]
async fn full_queue_with_reject_publish_nacks() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let arguments = args(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-overflow", text("reject-publish")),
    ]);
    within(
        "queue.declare",
        channel.queue_declare("bounded", QueueDeclareOptions::default(), arguments),
    )
    .await
    .expect("queue.declare");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    publish_to(
        &channel,
        "",
        "bounded",
        BasicProperties::default(),
        b"first",
    )
    .await;
    let confirm = within(
        "basic.publish",
        channel.basic_publish(
            "",
            "bounded",
            BasicPublishOptions::default(),
            b"second",
            BasicProperties::default(),
        ),
    )
    .await
    .expect("publish");
    let confirmation = within("confirm", confirm).await.expect("confirm");
    assert!(confirmation.is_nack(), "expected a nack: {confirmation:?}");
    let first = get_no_ack(&channel, "bounded").await.expect("first stays");
    assert_eq!(first.delivery.data, b"first");
    assert!(get_no_ack(&channel, "bounded").await.is_none());
}
