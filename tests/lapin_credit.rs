//! End to end: consumers their prefetch does not bound (no_ack, prefetch 0) get a backlog
//! one credit window at a time (`CONSUMER_CREDIT_WINDOW`), topped up as their connection
//! writes to the socket: a backlog of several windows still arrives whole, each message
//! once, and a consumer that stops reading stops taking messages out of the queue.

use std::collections::BTreeSet;
use std::time::Duration;

use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::{FieldTable as RawTable, ShortString};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren::amqp::frame::Frame;
use warren::limits::CONSUMER_CREDIT_WINDOW;

mod common;

use common::raw::{Incoming, RawClient};
use common::{confirm_channel, connect, ready_count, start_server, within};

/// Several windows and a part of one, so the last refill is a partial one.
const BACKLOG: u32 = 4 * CONSUMER_CREDIT_WINDOW + 123;

/// Publishes bodies "0".."n-1" to `queue` on a confirm channel, pipelined, and waits until
/// every one is confirmed.
async fn publish_backlog(channel: &lapin::Channel, queue: &str, n: u32) {
    let mut confirms = Vec::with_capacity(n as usize);
    for seq in 0..n {
        let body = seq.to_string();
        let options = BasicPublishOptions::default();
        let properties = BasicProperties::default();
        let publish = channel.basic_publish("", queue, options, body.as_bytes(), properties);
        confirms.push(within("basic.publish", publish).await.expect("publish"));
    }
    for confirm in confirms {
        let confirmation = within("publisher confirm", confirm).await.expect("confirm");
        assert!(confirmation.is_ack(), "publish not acked: {confirmation:?}");
    }
}

fn seq_of(body: &[u8]) -> u32 {
    let text = std::str::from_utf8(body).expect("utf-8 body");
    text.parse().expect("a sequence number")
}

/// Consumes the whole backlog of `queue` with `no_ack` (else acking each), and asserts that
/// every message arrived exactly once and the queue is empty.
async fn drain(addr: std::net::SocketAddr, queue: &str, no_ack: bool) {
    let conn = connect(addr).await;
    let channel = conn.create_channel().await.expect("channel");
    channel
        .basic_qos(0, BasicQosOptions::default())
        .await
        .expect("basic.qos 0");
    let options = BasicConsumeOptions {
        no_ack,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = channel
        .basic_consume(queue, "drainer", options, FieldTable::default())
        .await
        .expect("basic.consume");
    let mut seen = BTreeSet::new();
    while seen.len() < BACKLOG as usize {
        let what = format!("delivery {} of {BACKLOG}", seen.len() + 1);
        let delivery = within(&what, consumer.next())
            .await
            .expect("consumer open")
            .expect("delivery");
        assert!(seen.insert(seq_of(&delivery.data)), "delivered twice");
        if !no_ack {
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }
    assert_eq!(seen.last(), Some(&(BACKLOG - 1)));
    assert_eq!(ready_count(&channel, queue).await, 0);
}

/// A no_ack consumer drains a backlog of several credit windows: the window refills as
/// its deliveries are written, until nothing is left.
#[tokio::test]
async fn a_no_ack_consumer_drains_a_backlog_of_several_windows_exactly_once() {
    let server = start_server();
    let (_conn, publisher) = confirm_channel(server.addr, "credit-noack").await;
    publish_backlog(&publisher, "credit-noack", BACKLOG).await;
    drain(server.addr, "credit-noack", true).await;
}

/// The same for a manual-ack consumer with prefetch 0 (unlimited), acking as it goes.
#[tokio::test]
async fn a_prefetch_0_consumer_drains_a_backlog_of_several_windows_exactly_once() {
    let server = start_server();
    let (_conn, publisher) = confirm_channel(server.addr, "credit-p0").await;
    publish_backlog(&publisher, "credit-p0", BACKLOG).await;
    drain(server.addr, "credit-p0", false).await;
}

/// How long the silent consumer is given to take more than it may. Only a bound for an
/// event that must not happen.
const QUIET: Duration = Duration::from_millis(500);

/// A no_ack consumer that reads nothing takes one window, plus the credit of what the
/// socket buffers took: Linux's defaults let the server's send buffer grow to 4 MiB and the
/// client's receive buffer start at 128 KiB, about 1,000 messages of 4 KB, half of the one
/// more window the assertion allows (8 MB of writes). The rest of the backlog stays in the
/// queue. Before credit, the consume itself moved the whole backlog into the
/// connection's memory. Once it reads, everything arrives.
#[tokio::test]
async fn a_no_ack_consumer_that_stops_reading_stops_taking_messages() {
    let server = start_server();
    let n = 3 * CONSUMER_CREDIT_WINDOW;
    let (_conn, publisher) = confirm_channel(server.addr, "credit-silent").await;
    let body = vec![b'x'; 4000];
    let mut confirms = Vec::new();
    for _ in 0..n {
        let publish = publisher.basic_publish(
            "",
            "credit-silent",
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        );
        confirms.push(within("basic.publish", publish).await.expect("publish"));
    }
    for confirm in confirms {
        assert!(within("confirm", confirm).await.expect("confirm").is_ack());
    }

    tracing::info!("--- a raw no_ack consumer that reads nothing");
    let mut raw = RawClient::connect(server.addr);
    raw.handshake(0);
    raw.open_channel(1);
    raw.send_method(1, consume_no_ack("credit-silent"));
    let AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) = raw.read_method() else {
        panic!("expected basic.consume-ok");
    };
    let floor = n - 2 * CONSUMER_CREDIT_WINDOW;
    let ready = ready_count(&publisher, "credit-silent").await;
    assert!(ready >= floor, "{ready} ready right after the consume");
    tokio::time::sleep(QUIET).await;
    let ready = ready_count(&publisher, "credit-silent").await;
    assert!(
        ready >= floor,
        "{ready} ready while the consumer reads nothing"
    );

    tracing::info!("--- it reads: the whole backlog arrives");
    let mut n_delivered = 0;
    while n_delivered < n {
        match raw.read(common::EVENT_TIMEOUT) {
            Incoming::Frame(Frame::Method { payload, .. }) => {
                let method = warren::amqp::frame::parse_method(&payload).expect("a method");
                if matches!(method, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) {
                    n_delivered += 1;
                }
            }
            Incoming::Frame(_) => {}
            other => panic!("after {n_delivered} deliveries: {other:?}"),
        }
    }
    assert_eq!(ready_count(&publisher, "credit-silent").await, 0);
}

fn consume_no_ack(queue: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: ShortString::from(queue),
        consumer_tag: ShortString::from("silent"),
        no_local: false,
        no_ack: true,
        exclusive: false,
        nowait: false,
        arguments: RawTable::default(),
    }))
}
