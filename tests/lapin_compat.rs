//! Where client programs rely on RabbitMQ 3.10's behaviour beyond the spec (issue 16,
//! differences 1-6), end to end on the real binary: lapin where it can express the
//! exchange, raw frames (`common::raw`) where the order or the fields of frames are the
//! point.

use amq_protocol::protocol::{basic, channel, confirm, connection, queue, AMQPClass};
use amq_protocol::types::{AMQPValue as RawValue, FieldTable as RawTable, ShortString};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicQosOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, ExchangeKind};

mod common;
use common::cluster::wait_machine_version;
use common::raw::{publish_frames, RawClient};
use common::{
    confirm_channel, connect, next_delivery, publish_to, start_server, start_server_with_cli,
    within,
};
use warren::amqp::frame::{method_frame, Frame};

/// The machine version that brought RabbitMQ's requeue order and unbind-ok.
const COMPAT_MACHINE_VERSION: u16 = 3;
/// The machine version that brought consumer priorities.
const QUEUE_FEATURES_MACHINE_VERSION: u16 = 4;

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// 1. A consumer holding five messages acks the first, cancels, and nacks the other four
/// one by one with requeue (an asyncio iterator closing): they go back to their places,
/// so basic.get returns them oldest first, as RabbitMQ does (version 2 gave newest first).
#[tokio::test]
async fn requeued_messages_return_to_their_places() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, COMPAT_MACHINE_VERSION).await;
    let (conn, ch) = confirm_channel(server.addr, "rq-order").await;
    for n in 1..=5u8 {
        let body = format!("m{n}");
        publish_to(
            &ch,
            "",
            "rq-order",
            BasicProperties::default(),
            body.as_bytes(),
        )
        .await;
    }
    ch.basic_qos(5, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = ch
        .basic_consume(
            "rq-order",
            "it",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(next_delivery(&mut consumer).await);
    }
    let bodies: Vec<&[u8]> = held.iter().map(|d| d.data.as_slice()).collect();
    assert_eq!(bodies, [b"m1", b"m2", b"m3", b"m4", b"m5"]);

    tracing::info!("--- ack the first, cancel, nack the rest one at a time");
    let first = held.remove(0);
    let ack = first.acker.ack(BasicAckOptions::default());
    within("basic.ack", ack).await.expect("ack");
    let cancel = ch.basic_cancel("it", BasicCancelOptions::default());
    within("basic.cancel", cancel).await.expect("cancel");
    for delivery in &held {
        let requeue = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        within("basic.nack", delivery.acker.nack(requeue))
            .await
            .expect("nack");
    }

    tracing::info!("--- basic.get gives them oldest first");
    let mut got = Vec::new();
    for _ in 0..4 {
        let get = ch.basic_get("rq-order", BasicGetOptions { no_ack: true });
        let message = within("basic.get", get).await.expect("basic.get");
        got.push(message.expect("a requeued message").delivery.data);
    }
    assert_eq!(got, [b"m2", b"m3", b"m4", b"m5"]);
    conn.close(200, "bye").await.expect("close");
}

/// 2. publish(mandatory, unroutable) then confirm.select in one write: the basic.return
/// of the publish comes before select-ok, as every frame on a channel follows the order of
/// the methods that caused it.
#[tokio::test]
async fn basic_return_comes_before_a_later_select_ok() {
    let server = start_server();
    let mut client = RawClient::connect(server.addr);
    client.handshake(0);
    client.open_channel(1);
    let mut frames = publish_frames(1, "", "no-such-queue", &[0, 0], b"lost");
    let mandatory = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: ShortString::from(""),
        routing_key: ShortString::from("no-such-queue"),
        mandatory: true,
        immediate: false,
    }));
    frames[0] = method_frame(1, &mandatory).expect("encode basic.publish");
    let select = AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
        nowait: false,
    }));
    frames.push(method_frame(1, &select).expect("encode confirm.select"));
    client.send_together(&frames);

    let AMQPClass::Basic(basic::AMQPMethod::Return(returned)) = client.read_method() else {
        panic!("expected basic.return first");
    };
    assert_eq!(returned.reply_code, 312);
    assert!(matches!(client.read_frame(), Frame::Header { .. }));
    let Frame::Body { payload, .. } = client.read_frame() else {
        panic!("expected the returned body");
    };
    assert_eq!(&payload[..], b"lost");
    let AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) = client.read_method() else {
        panic!("expected confirm.select-ok after the return");
    };
}

/// 3. queue.unbind and exchange.unbind of a binding, queue or exchange that is not there
/// answer unbind-ok (an RPC helper unbinding after its auto-delete queue and exchange
/// went); queue.delete and exchange.delete of what is not there answer delete-ok.
#[tokio::test]
async fn unbinding_or_deleting_what_is_gone_is_ok() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, COMPAT_MACHINE_VERSION).await;
    let conn = connect(server.addr).await;
    let ch = conn.create_channel().await.expect("channel");
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..ExchangeDeclareOptions::default()
    };
    let declare = ch.exchange_declare(
        "rpc-x",
        ExchangeKind::Direct,
        auto_delete,
        FieldTable::default(),
    );
    within("exchange.declare", declare)
        .await
        .expect("exchange.declare");
    let reply_queue = QueueDeclareOptions {
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let declare = ch.queue_declare("rpc-reply", reply_queue, FieldTable::default());
    within("queue.declare", declare)
        .await
        .expect("queue.declare");
    let bind = ch.queue_bind(
        "rpc-reply",
        "rpc-x",
        "k",
        QueueBindOptions::default(),
        FieldTable::default(),
    );
    within("queue.bind", bind).await.expect("queue.bind");
    let consume = ch.basic_consume(
        "rpc-reply",
        "rpc",
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    within("basic.consume", consume).await.expect("consume");

    tracing::info!("--- cancel: the queue goes, and with its last binding the exchange");
    let cancel = ch.basic_cancel("rpc", BasicCancelOptions::default());
    within("basic.cancel", cancel).await.expect("cancel");
    let unbind = ch.queue_unbind("rpc-reply", "rpc-x", "k", FieldTable::default());
    within("queue.unbind of a gone queue", unbind)
        .await
        .expect("unbind-ok for a queue and exchange that went");

    tracing::info!("--- the same on names that never existed, and a binding that is not there");
    let unbind = ch.queue_unbind("never-q", "never-x", "k", FieldTable::default());
    within("queue.unbind", unbind).await.expect("unbind-ok");
    let unbind = ch.queue_unbind("never-q", "amq.direct", "k", FieldTable::default());
    within("queue.unbind", unbind).await.expect("unbind-ok");
    let unbind = ch.exchange_unbind(
        "never-d",
        "never-s",
        "k",
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    );
    within("exchange.unbind", unbind).await.expect("unbind-ok");
    let unbind = ch.exchange_unbind(
        "amq.fanout",
        "amq.direct",
        "k",
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    );
    within("exchange.unbind", unbind).await.expect("unbind-ok");
    let delete = ch.queue_delete("never-q", QueueDeleteOptions::default());
    let count = within("queue.delete", delete).await.expect("delete-ok");
    assert_eq!(count, 0);
    let delete = ch.exchange_delete("never-x", ExchangeDeleteOptions::default());
    within("exchange.delete", delete).await.expect("delete-ok");
    assert!(ch.status().connected(), "the channel stayed open");
    conn.close(200, "bye").await.expect("close");
}

/// 4. A message with `expiration` dead-lettered by its TTL: x-death holds every field
/// RabbitMQ 3.10 writes, `original-expiration` among them, the property is gone, and the
/// x-first-death-* headers are there.
#[tokio::test]
async fn expired_dead_letter_carries_original_expiration() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let ch = conn.create_channel().await.expect("channel");
    let declare = ch.queue_declare(
        "ttl-dlq",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    );
    within("queue.declare", declare)
        .await
        .expect("queue.declare");
    let bind = ch.queue_bind(
        "ttl-dlq",
        "amq.direct",
        "dead",
        QueueBindOptions::default(),
        FieldTable::default(),
    );
    within("queue.bind", bind).await.expect("queue.bind");
    let mut work_args = FieldTable::default();
    work_args.insert("x-dead-letter-exchange".into(), text("amq.direct"));
    work_args.insert("x-dead-letter-routing-key".into(), text("dead"));
    let declare = ch.queue_declare("ttl-work", QueueDeclareOptions::default(), work_args);
    within("queue.declare", declare)
        .await
        .expect("queue.declare");
    let mut consumer = ch
        .basic_consume(
            "ttl-dlq",
            "dlq",
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    ch.confirm_select(Default::default())
        .await
        .expect("confirm.select");
    let expiring = BasicProperties::default().with_expiration("20".into());
    publish_to(&ch, "", "ttl-work", expiring, b"stale").await;

    let dead = next_delivery(&mut consumer).await;
    assert_eq!(dead.data, b"stale");
    assert_eq!(dead.properties.expiration(), &None, "expiration removed");
    let headers = dead.properties.headers().clone().expect("headers");
    let headers = headers.inner();
    let Some(AMQPValue::FieldArray(deaths)) = headers.get("x-death") else {
        panic!("x-death is not an array: {headers:?}");
    };
    let [AMQPValue::FieldTable(death)] = deaths.as_slice() else {
        panic!("expected one x-death entry: {deaths:?}");
    };
    let death = death.inner();
    assert_eq!(death.get("count"), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(death.get("reason"), Some(&text("expired")));
    assert_eq!(death.get("queue"), Some(&text("ttl-work")));
    assert_eq!(death.get("exchange"), Some(&text("")));
    assert!(matches!(death.get("time"), Some(AMQPValue::Timestamp(t)) if *t > 0));
    let Some(AMQPValue::FieldArray(keys)) = death.get("routing-keys") else {
        panic!("routing-keys is not an array: {death:?}");
    };
    assert_eq!(keys.as_slice(), [text("ttl-work")]);
    assert_eq!(death.get("original-expiration"), Some(&text("20")));
    assert_eq!(headers.get("x-first-death-queue"), Some(&text("ttl-work")));
    assert_eq!(headers.get("x-first-death-reason"), Some(&text("expired")));
    assert_eq!(headers.get("x-first-death-exchange"), Some(&text("")));
    conn.close(200, "bye").await.expect("close");
}

/// The class and method ids of a close, checked with its reply code.
fn assert_close(method: AMQPClass, code: u16, class_id: u16, method_id: u16) {
    let (reply_code, ids) = match method {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
            (c.reply_code, (c.class_id, c.method_id))
        }
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
            (c.reply_code, (c.class_id, c.method_id))
        }
        other => panic!("expected a close, got {other:?}"),
    };
    assert_eq!(reply_code, code);
    assert_eq!(ids, (class_id, method_id), "class and method of the cause");
}

/// 5. A channel.close or connection.close caused by a method names it: a committed
/// refusal (passive declare of a missing queue), a local one (an unknown delivery tag), a
/// connection error (publish with immediate=true).
#[tokio::test]
async fn closes_name_the_method_that_caused_them() {
    let server = start_server();
    let mut client = RawClient::connect(server.addr);
    client.handshake(0);
    client.open_channel(1);
    let passive = queue::Declare {
        queue: ShortString::from("no-such-queue"),
        passive: true,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: RawTable::default(),
    };
    client.send_method(1, AMQPClass::Queue(queue::AMQPMethod::Declare(passive)));
    assert_close(client.read_method(), 404, 50, 10);
    client.send_method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );

    client.open_channel(2);
    let ack = basic::Ack {
        delivery_tag: 7,
        multiple: false,
    };
    client.send_method(2, AMQPClass::Basic(basic::AMQPMethod::Ack(ack)));
    assert_close(client.read_method(), 406, 60, 80);
    client.send_method(
        2,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );

    client.open_channel(3);
    let mut frames = publish_frames(3, "", "q", &[0, 0], b"now");
    let immediate = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: ShortString::from(""),
        routing_key: ShortString::from("q"),
        mandatory: false,
        immediate: true,
    }));
    frames[0] = method_frame(3, &immediate).expect("encode basic.publish");
    client.send_together(&frames);
    assert_close(client.read_method(), 540, 60, 40);
}

/// 6. connection.start advertises only what is implemented: RabbitMQ's capabilities less
/// `direct_reply_to`; `consumer_priorities` once the cluster runs machine version 4.
#[tokio::test]
async fn start_advertises_only_implemented_capabilities() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, QUEUE_FEATURES_MACHINE_VERSION).await;
    let mut client = RawClient::connect(server.addr);
    let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = client.read_method() else {
        panic!("expected connection.start");
    };
    let Some(RawValue::FieldTable(caps)) = start.server_properties.inner().get("capabilities")
    else {
        panic!("no capabilities table: {:?}", start.server_properties);
    };
    let mut advertised: Vec<&str> = caps.inner().keys().map(|k| k.as_str()).collect();
    advertised.sort_unstable();
    assert_eq!(
        advertised,
        [
            "authentication_failure_close",
            "basic.nack",
            "connection.blocked",
            "consumer_cancel_notify",
            "consumer_priorities",
            "exchange_exchange_bindings",
            "per_consumer_qos",
            "publisher_confirms",
        ]
    );
    assert!(caps.inner().values().all(|v| *v == RawValue::Boolean(true)));
}
