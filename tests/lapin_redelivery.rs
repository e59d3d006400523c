//! End to end: a message returned to its queue (basic.nack with requeue) comes back with
//! redelivered=true and an `x-delivery-count` header (a long) counting its returns, as
//! RabbitMQ's quorum queues do; the first delivery has no such header, and the message's own
//! headers come back intact: values, types and (checked on the raw wire) their order.

use amq_protocol::protocol::{basic, confirm, queue, AMQPClass};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::BasicProperties;
use warren::amqp::frame::{ContentHeader, Frame};

mod common;

use common::raw::{publish_frames, RawClient};
use common::{confirm_channel, next_delivery, publish_to, start_server, within};

/// Headers of several field types, as lapin sends them.
fn mixed_headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("k".into(), AMQPValue::LongString("v".into()));
    let mut list = FieldArray::default();
    list.push(AMQPValue::LongString("a".into()));
    list.push(AMQPValue::LongInt(1));
    let mut headers = FieldTable::default();
    headers.insert("zeta".into(), AMQPValue::LongString("last".into()));
    headers.insert("alpha".into(), AMQPValue::LongInt(-7));
    headers.insert("flag".into(), AMQPValue::Boolean(true));
    headers.insert("big".into(), AMQPValue::LongLongInt(1 << 40));
    headers.insert("ratio".into(), AMQPValue::Double(0.5));
    headers.insert("when".into(), AMQPValue::Timestamp(1_700_000_000));
    headers.insert("nested".into(), AMQPValue::FieldTable(nested));
    headers.insert("list".into(), AMQPValue::FieldArray(list));
    headers
}

/// A message nacked with requeue three times: the first delivery is not redelivered and has
/// no x-delivery-count; the next three are redelivered with x-delivery-count 1, 2, 3 (long),
/// and every other header keeps its value and type.
#[tokio::test]
async fn nack_requeue_counts_deliveries_and_keeps_headers() {
    let server = start_server();
    let (conn, channel) = confirm_channel(server.addr, "redeliver").await;
    let properties = BasicProperties::default()
        .with_headers(mixed_headers())
        .with_content_type("text/plain".into());
    publish_to(&channel, "", "redeliver", properties, b"again").await;
    let mut consumer = within(
        "basic.consume",
        channel.basic_consume(
            "redeliver",
            "redeliver-consumer",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume");

    for returns in 0..=3i64 {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data, b"again");
        assert_eq!(delivery.redelivered, returns > 0, "delivery {returns}");
        assert_eq!(
            delivery
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.as_str()),
            Some("text/plain")
        );
        let mut headers = delivery
            .properties
            .headers()
            .clone()
            .expect("the headers went")
            .inner()
            .clone();
        let count = headers.remove(&lapin::types::ShortString::from("x-delivery-count"));
        if returns == 0 {
            assert_eq!(count, None, "a first delivery with x-delivery-count");
        } else {
            assert_eq!(count, Some(AMQPValue::LongLongInt(returns)));
        }
        assert_eq!(&headers, mixed_headers().inner(), "delivery {returns}");
        if returns < 3 {
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            within("basic.nack", delivery.nack(requeue))
                .await
                .expect("nack");
        } else {
            within("basic.ack", delivery.ack(BasicAckOptions::default()))
                .await
                .expect("ack");
        }
    }
    conn.close(200, "bye").await.expect("close");
}

/// One field-table entry as on the wire: name, type letter, value.
fn entry(name: &str, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.push(kind);
    out.extend_from_slice(value);
    out
}

/// A long string value: u32 length, then the bytes.
fn long_str(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

/// Raw basic properties: content-type, headers (a table of `entries`), delivery-mode 2.
fn raw_properties(entries: &[u8]) -> Vec<u8> {
    const CONTENT_TYPE: u16 = 1 << 15;
    const HEADERS: u16 = 1 << 13;
    const DELIVERY_MODE: u16 = 1 << 12;
    let mut out = (CONTENT_TYPE | HEADERS | DELIVERY_MODE)
        .to_be_bytes()
        .to_vec();
    out.push(10);
    out.extend_from_slice(b"text/plain");
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    out.extend_from_slice(entries);
    out.push(2);
    out
}

/// On the raw wire: the headers of a message taken with basic.get and nacked with requeue
/// three times come back in the order they were published, byte for byte, with
/// x-delivery-count (a long) appended after them; the properties around the table are kept.
#[tokio::test]
async fn redelivered_headers_keep_their_order_on_the_wire() {
    let server = start_server();
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let mut client = RawClient::connect(addr);
        client.handshake(0);
        client.open_channel(1);
        client.send_method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "raw-order".into(),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: Default::default(),
            })),
        );
        let AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)) = client.read_method() else {
            panic!("expected queue.declare-ok");
        };
        client.send_method(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        );
        let AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) = client.read_method() else {
            panic!("expected confirm.select-ok");
        };

        // Deliberately not in name order, and of several types.
        let entries = [
            entry("zeta", b'S', &long_str("last")),
            entry("alpha", b'I', &(-7i32).to_be_bytes()),
            entry("mid", b't', &[1]),
            entry("big", b'l', &(1i64 << 40).to_be_bytes()),
            entry("ratio", b'd', &0.5f64.to_be_bytes()),
            entry("when", b'T', &1_700_000_000u64.to_be_bytes()),
            entry("nested", b'F', &{
                let inner = entry("k", b'S', &long_str("v"));
                let mut t = (inner.len() as u32).to_be_bytes().to_vec();
                t.extend_from_slice(&inner);
                t
            }),
        ]
        .concat();
        let published = raw_properties(&entries);
        client.send_together(&publish_frames(1, "", "raw-order", &published, b"ordered"));
        let AMQPClass::Basic(basic::AMQPMethod::Ack(_)) = client.read_method() else {
            panic!("expected the publish's basic.ack");
        };

        for returns in 0..=3i64 {
            client.send_method(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                    queue: "raw-order".into(),
                    no_ack: false,
                })),
            );
            let AMQPClass::Basic(basic::AMQPMethod::GetOk(got)) = client.read_method() else {
                panic!("expected basic.get-ok");
            };
            assert_eq!(got.redelivered, returns > 0, "get {returns}");
            let Frame::Header { payload, .. } = client.read_frame() else {
                panic!("expected the content header");
            };
            let header = ContentHeader::parse(payload).expect("a content header");
            let expected = if returns == 0 {
                published.clone()
            } else {
                let count = entry("x-delivery-count", b'l', &returns.to_be_bytes());
                raw_properties(&[entries.clone(), count].concat())
            };
            assert_eq!(&header.properties[..], &expected[..], "get {returns}");
            let Frame::Body { payload, .. } = client.read_frame() else {
                panic!("expected the body");
            };
            assert_eq!(&payload[..], b"ordered");
            let settle = if returns < 3 {
                basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: got.delivery_tag,
                    multiple: false,
                    requeue: true,
                })
            } else {
                basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: got.delivery_tag,
                    multiple: false,
                })
            };
            client.send_method(1, AMQPClass::Basic(settle));
        }
        // The ack was applied: the queue is empty.
        client.send_method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: "raw-order".into(),
                no_ack: true,
            })),
        );
        let method = client.read_method();
        assert!(
            matches!(method, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))),
            "expected get-empty, got {method:?}"
        );
    })
    .await
    .expect("raw client");
}
