//! End to end: the real `warren` binary serving a lapin client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

mod common;

use common::{confirm_channel, publish_confirmed, start_server, uri};

async fn publish_and_consume(addr: SocketAddr, queue: &str, n: usize) {
    let conn = Connection::connect(&uri(addr), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    let declared = channel
        .queue_declare(queue, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    assert_eq!(declared.name().as_str(), queue);
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");

    for i in 0..n {
        let mut headers = FieldTable::default();
        headers.insert(ShortString::from("seq"), AMQPValue::LongLongInt(i as i64));
        headers.insert(
            ShortString::from("kind"),
            AMQPValue::LongString(LongString::from("test")),
        );
        let props = BasicProperties::default().with_headers(headers);
        let confirm = channel
            .basic_publish(
                "",
                queue,
                BasicPublishOptions::default(),
                format!("message {i}").as_bytes(),
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "message {i} not acked: {confirm:?}");
    }

    let mut consumer = channel
        .basic_consume(
            queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    for i in 0..n {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("delivery in time")
            .expect("consumer open")
            .expect("delivery");
        assert_eq!(delivery.data, format!("message {i}").into_bytes());
        let headers = delivery.properties.headers().as_ref().expect("headers");
        assert_eq!(
            headers.inner().get("seq"),
            Some(&AMQPValue::LongLongInt(i as i64))
        );
        assert_eq!(
            headers.inner().get("kind"),
            Some(&AMQPValue::LongString(LongString::from("test")))
        );
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    conn.close(200, "bye").await.expect("close");
}

#[tokio::test]
async fn publish_confirm_consume_ack_100() {
    let server = start_server();
    publish_and_consume(server.addr, "lapin-basic", 100).await;
}

/// Sends the protocol header then `garbage`; returns everything the server wrote back.
fn raw_exchange(addr: SocketAddr, garbage: &'static [u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    socket.write_all(b"AMQP\x00\x00\x09\x01").expect("header");
    socket.write_all(garbage).expect("garbage");
    let mut received = Vec::new();
    let _ = socket.read_to_end(&mut received);
    received
}

#[tokio::test]
async fn garbage_frame_closes_connection_and_server_keeps_serving() {
    let server = start_server();
    let addr = server.addr;
    let garbage: [&'static [u8]; 3] = [
        // A method frame claiming 4 GiB: over frame_max.
        b"\x01\x00\x00\xff\xff\xff\xff\xde\xad\xbe\xef",
        // An unknown frame type.
        b"\x07\x00\x00\x00\x00\x00\x00\xce",
        // A method frame with a bad frame-end octet.
        b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x0b\x00",
    ];
    for bytes in garbage {
        let closed = tokio::task::spawn_blocking(move || raw_exchange(addr, bytes))
            .await
            .expect("raw client");
        // connection.start, then connection.close (10.50) with reply code 501.
        let close = [0u8, 10, 0, 50, 0x01, 0xF5];
        assert!(
            closed.windows(close.len()).any(|w| w == close),
            "no connection.close 501 for {bytes:02x?} in {closed:02x?}"
        );
    }
    publish_and_consume(addr, "after-garbage", 5).await;
}

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back() {
    let server = start_server();
    let addr = server.addr;
    let received = tokio::task::spawn_blocking(move || {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        socket.write_all(b"HTTP/1.1").expect("header");
        let mut received = Vec::new();
        let _ = socket.read_to_end(&mut received);
        received
    })
    .await
    .expect("raw client");
    assert_eq!(received, b"AMQP\x00\x00\x09\x01");
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let server = start_server();
    let uri = format!("amqp://guest:nope@{}/%2f", server.addr);
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .expect("answer in time");
    assert!(result.is_err(), "login with a wrong password succeeded");
}

async fn next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("delivery in time")
        .expect("consumer open")
        .expect("delivery")
}

#[tokio::test]
async fn server_named_queue_and_nack_requeue() {
    let server = start_server();
    let conn = Connection::connect(&uri(server.addr), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    let declared = channel
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    let queue = declared.name().as_str().to_string();
    assert!(queue.starts_with("amq.gen-"), "{queue}");
    channel
        .basic_publish(
            "",
            &queue,
            BasicPublishOptions::default(),
            b"again",
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    let mut consumer = channel
        .basic_consume(
            &queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let first = next(&mut consumer).await;
    assert_eq!(first.data, b"again");
    assert!(!first.redelivered);
    first
        .nack(lapin::options::BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .expect("nack");
    let second = next(&mut consumer).await;
    assert_eq!(second.data, b"again");
    assert!(second.redelivered);
    second.ack(BasicAckOptions::default()).await.expect("ack");
    conn.close(200, "bye").await.expect("close");
}

#[tokio::test]
async fn consume_from_missing_queue_is_a_channel_error() {
    let server = start_server();
    let conn = Connection::connect(&uri(server.addr), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    let result = channel
        .basic_consume(
            "no-such-queue",
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(result.is_err(), "consume from a missing queue succeeded");
    // The connection survives a channel error.
    let other = conn.create_channel().await.expect("second channel");
    other
        .queue_declare(
            "still-works",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    conn.close(200, "bye").await.expect("close");
}

/// queue.purge drops ready messages and counts them; queue.delete with if-empty refuses a
/// non-empty queue with 406 (closing only that channel), and without it counts what it drops.
#[tokio::test]
async fn purge_and_delete_count_messages_and_if_empty_refuses_with_406() {
    use lapin::options::{QueueDeleteOptions, QueuePurgeOptions};
    let server = start_server();
    let (conn, channel) = confirm_channel(server.addr, "pq").await;
    for body in [&b"1"[..], b"2", b"3"] {
        publish_confirmed(&channel, "pq", body).await;
    }
    assert_eq!(
        channel
            .queue_purge("pq", QueuePurgeOptions::default())
            .await
            .expect("purge"),
        3
    );
    publish_confirmed(&channel, "pq", b"4").await;
    let refused = channel
        .queue_delete(
            "pq",
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await;
    let text = format!(
        "{:?}",
        refused.expect_err("if-empty delete of a non-empty queue")
    );
    assert!(
        text.contains("406") || text.contains("PRECONDITION_FAILED"),
        "{text}"
    );
    let channel = conn.create_channel().await.expect("second channel");
    let deleted = channel
        .queue_delete("pq", QueueDeleteOptions::default())
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    let passive = channel
        .queue_declare(
            "pq",
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(passive.is_err(), "the deleted queue must be gone");
}

/// basic.get returns the head message with the count left behind, get-empty on an empty
/// queue, and an unacked get is redelivered after its channel closes.
#[tokio::test]
async fn basic_get_and_get_empty() {
    use lapin::options::BasicGetOptions;
    let server = start_server();
    let (conn, channel) = confirm_channel(server.addr, "gq").await;
    for body in [&b"first"[..], b"second"] {
        publish_confirmed(&channel, "gq", body).await;
    }
    let got = channel
        .basic_get("gq", BasicGetOptions::default())
        .await
        .expect("get");
    let got = got.expect("a message");
    assert_eq!(got.delivery.data, b"first");
    assert_eq!(got.message_count, 1);
    assert!(!got.delivery.redelivered);
    channel.close(200, "bye").await.expect("close channel");

    let channel = conn.create_channel().await.expect("second channel");
    let again = channel
        .basic_get("gq", BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    let again = again.expect("the returned message");
    assert_eq!(again.delivery.data, b"first");
    assert!(
        again.delivery.redelivered,
        "a get that was never acked comes back redelivered"
    );
    let second = channel
        .basic_get("gq", BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    assert_eq!(second.expect("second").delivery.data, b"second");
    let empty = channel
        .basic_get("gq", BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    assert!(empty.is_none(), "get-empty on an empty queue");
}
