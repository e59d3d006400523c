//! End to end: the memory alarm. With `memory_high_watermark = 1` the alarm is on as soon
//! as the server samples its memory; a client that announces the `connection.blocked`
//! capability is told so (connection.blocked "low on memory") after open-ok, its publishes
//! are held (no confirm), and a connection that does not publish is still served. A client
//! without the capability gets no connection.blocked.

use std::time::Duration;

use amq_protocol::protocol::{basic, confirm, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use lapin::options::QueueDeclareOptions;
use lapin::BasicProperties;

mod common;

use common::raw::{publish_frames, Incoming, RawClient};
use common::{connect, within};
use warren::amqp::frame::Frame;

/// Client properties announcing the connection.blocked capability, as lapin and py-amqp do.
fn blocked_capable() -> FieldTable {
    let mut caps = FieldTable::default();
    caps.insert("connection.blocked".into(), AMQPValue::Boolean(true));
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props
}

/// The next method after open-ok must be connection.blocked with RabbitMQ's reason.
fn expect_blocked(client: &mut RawClient) {
    match client.read_method() {
        AMQPClass::Connection(connection::AMQPMethod::Blocked(blocked)) => {
            assert_eq!(blocked.reason.as_str(), "low on memory");
        }
        other => panic!("expected connection.blocked, got {other:?}"),
    }
}

/// A server whose queue "held" has one durable message published before the alarm: the
/// message goes in with no alarm, then the node restarts on the same data directory with
/// `memory_high_watermark = 1`.
async fn alarmed_server_with_a_message(
    dir: &std::path::Path,
) -> (common::Warren, std::net::SocketAddr) {
    let (config, addr) = common::write_config(dir);
    let mut warren = common::start(&config, addr);
    let conn = connect(addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    within(
        "queue.declare",
        channel.queue_declare("held", durable, lapin::types::FieldTable::default()),
    )
    .await
    .expect("queue.declare");
    within("confirm.select", channel.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let persistent = BasicProperties::default().with_delivery_mode(2);
    common::publish_to(&channel, "", "held", persistent, b"from-before").await;
    conn.close(200, "bye").await.expect("close");
    warren.kill();

    tracing::info!("--- restart with the memory alarm on");
    let (config, addr) = common::write_config_with(dir, "memory_high_watermark = 1");
    (common::start(&config, addr), addr)
}

/// A capable client gets connection.blocked after open-ok; its confirmed publish (method,
/// header and body in one write, as client libraries send them) is not confirmed within
/// 500 ms, while another connection's basic.get is still answered with the message that was
/// there before the alarm. The whole publish arriving in one read is the point: a blocked
/// connection must stop at its first publish, not only at its next socket read.
#[tokio::test]
async fn capable_client_is_blocked_and_its_publish_held_while_others_consume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_warren, addr) = alarmed_server_with_a_message(dir.path()).await;

    let publisher = tokio::task::spawn_blocking(move || {
        let mut client = RawClient::connect(addr);
        client.handshake_with(0, blocked_capable());
        expect_blocked(&mut client);
        client.open_channel(1);
        client.send_method(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        );
        let AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) = client.read_method() else {
            panic!("expected confirm.select-ok");
        };
        // Properties: no flags set.
        client.send_together(&publish_frames(1, "", "held", &[0, 0], b"during-alarm"));
        // Not a wait for an event: a bound on one that must not happen.
        match client.read(Duration::from_millis(500)) {
            Incoming::Nothing => {}
            other => panic!("a publish during the memory alarm got {other:?}"),
        }
        client
    })
    .await
    .expect("raw publisher");

    // lapin stops writing altogether while it is blocked, so the consumer here is a raw
    // client that does not announce connection.blocked.
    tracing::info!("--- a connection that does not publish still gets messages");
    let bodies = tokio::task::spawn_blocking(move || {
        let mut consumer = RawClient::connect(addr);
        consumer.handshake(0);
        consumer.open_channel(1);
        let mut bodies = Vec::new();
        for _ in 0..2 {
            let get = basic::Get {
                queue: "held".into(),
                no_ack: true,
            };
            consumer.send_method(1, AMQPClass::Basic(basic::AMQPMethod::Get(get)));
            match consumer.read_method() {
                AMQPClass::Basic(basic::AMQPMethod::GetOk(_)) => {
                    let _header = consumer.read_frame();
                    let Frame::Body { payload, .. } = consumer.read_frame() else {
                        panic!("expected a body frame");
                    };
                    bodies.push(payload.to_vec());
                }
                AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_)) => {}
                other => panic!("expected get-ok or get-empty, got {other:?}"),
            }
        }
        bodies
    })
    .await
    .expect("raw consumer");
    assert_eq!(
        bodies,
        vec![b"from-before".to_vec()],
        "only the message from before the alarm is in the queue"
    );
    drop(publisher);
}

/// A client that does not announce connection.blocked gets no connection.blocked frame,
/// while one that does (connected first, so the alarm is known to be on) gets it.
#[tokio::test]
async fn client_without_the_capability_gets_no_connection_blocked() {
    let server = common::start_server_with("memory_high_watermark = 1");
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let mut capable = RawClient::connect(addr);
        capable.handshake_with(0, blocked_capable());
        expect_blocked(&mut capable);

        let mut plain = RawClient::connect(addr);
        plain.handshake(0);
        // Not a wait for an event: a bound on one that must not happen.
        match plain.read(Duration::from_millis(1000)) {
            Incoming::Nothing => {}
            other => panic!("a client without the capability got {other:?}"),
        }
        // It is otherwise served: a channel opens.
        plain.open_channel(1);
    })
    .await
    .expect("raw clients");
}
