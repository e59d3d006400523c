//! End to end: what RabbitMQ treats as connection errors (540 NOT_IMPLEMENTED) closes the
//! whole connection on the real `warren` binary, and the server keeps serving others.

use std::net::SocketAddr;

use futures::StreamExt;
use lapin::options::{
    BasicPublishOptions, BasicRecoverOptions, ChannelFlowOptions, ConfirmSelectOptions,
};
use lapin::{BasicProperties, Connection, Event};

mod common;

use common::{connect, declare_queue, publish_confirmed, reply_code, start_server, within};

const NOT_IMPLEMENTED: u16 = 540;

/// The reply code of the connection.close the server sent, from the connection's events.
async fn connection_error_code(events: &mut (impl futures::Stream<Item = Event> + Unpin)) -> u16 {
    loop {
        match within("a connection error event", events.next()).await {
            Some(Event::Error(error)) => return reply_code(&error),
            Some(_) => continue,
            None => panic!("events ended without an error"),
        }
    }
}

/// After a connection error, the connection is unusable and a new one works.
async fn assert_closed_and_server_serves(conn: &Connection, addr: SocketAddr) {
    assert!(
        !conn.status().connected(),
        "connection still open: {:?}",
        conn.status().state()
    );
    let (fresh, channel) = common::confirm_channel(addr, "after-540").await;
    publish_confirmed(&channel, "after-540", b"still serving").await;
    fresh.close(200, "bye").await.expect("close");
}

/// basic.publish with immediate=true: connection.close 540 (RabbitMQ: "NOT_IMPLEMENTED -
/// immediate=true").
#[tokio::test]
async fn publish_immediate_closes_connection_with_540() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let mut events = Box::pin(conn.events_listener());
    let channel = conn.create_channel().await.expect("channel");
    declare_queue(&channel, "imm-q").await;
    within(
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm.select");
    let options = BasicPublishOptions {
        immediate: true,
        ..BasicPublishOptions::default()
    };
    let sent = channel
        .basic_publish("", "imm-q", options, b"now", BasicProperties::default())
        .await;
    assert_eq!(connection_error_code(&mut events).await, NOT_IMPLEMENTED);
    // The publish was never confirmed: its confirm fails with the connection.
    if let Ok(confirm) = sent {
        let confirmation = within("the failed confirm", confirm).await;
        assert!(
            confirmation.is_err(),
            "an immediate publish was confirmed: {confirmation:?}"
        );
    }
    assert_closed_and_server_serves(&conn, server.addr).await;
}

/// channel.flow(active=false): connection.close 540, as on RabbitMQ, which does not
/// implement flow control by the client.
#[tokio::test]
async fn channel_flow_inactive_closes_connection_with_540() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let mut events = Box::pin(conn.events_listener());
    let channel = conn.create_channel().await.expect("channel");
    let result = within(
        "channel.flow",
        channel.channel_flow(ChannelFlowOptions { active: false }),
    )
    .await;
    let error = result.expect_err("flow(active=false) accepted");
    assert_eq!(reply_code(&error), NOT_IMPLEMENTED, "{error:?}");
    assert_eq!(connection_error_code(&mut events).await, NOT_IMPLEMENTED);
    assert_closed_and_server_serves(&conn, server.addr).await;
}

/// channel.flow(active=true) is a no-op that is answered flow-ok(active=true).
#[tokio::test]
async fn channel_flow_active_is_answered() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let active = within(
        "channel.flow-ok",
        channel.channel_flow(ChannelFlowOptions { active: true }),
    )
    .await
    .expect("channel.flow");
    assert!(active);
    declare_queue(&channel, "flow-q").await;
    conn.close(200, "bye").await.expect("close");
}

/// basic.recover(requeue=false): connection.close 540 ("NOT_IMPLEMENTED - requeue=false").
#[tokio::test]
async fn recover_without_requeue_closes_connection_with_540() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let mut events = Box::pin(conn.events_listener());
    let channel = conn.create_channel().await.expect("channel");
    let result = within(
        "basic.recover",
        channel.basic_recover(BasicRecoverOptions { requeue: false }),
    )
    .await;
    let error = result.expect_err("recover(requeue=false) accepted");
    assert_eq!(reply_code(&error), NOT_IMPLEMENTED, "{error:?}");
    assert_eq!(connection_error_code(&mut events).await, NOT_IMPLEMENTED);
    assert_closed_and_server_serves(&conn, server.addr).await;
}

/// After sending connection.close for a connection error the server waits for close-ok
/// before closing the socket (the AMQP 0-9-1 close handshake; RabbitMQ's reader keeps the socket open in
/// its `closed` state until close-ok or a timeout). Closing at once makes the client's
/// close-ok hit a reset socket, and lapin then sometimes reports "connection aborted"
/// instead of the reply code: the flakiness of the 540 tests above.
#[tokio::test]
async fn connection_error_waits_for_close_ok_before_closing_socket() {
    use amq_protocol::protocol::{channel, connection, AMQPClass};
    use common::raw::{Incoming, RawClient};

    let server = start_server();
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let mut client = RawClient::connect(addr);
        client.handshake(0);
        client.send_method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        let AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) = client.read_method() else {
            panic!("expected channel.open-ok");
        };
        client.send_method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })),
        );
        let AMQPClass::Connection(connection::AMQPMethod::Close(close)) = client.read_method()
        else {
            panic!("expected connection.close");
        };
        assert_eq!(close.reply_code, NOT_IMPLEMENTED);

        // Not a wait for an event: a bound on one that must not happen.
        match client.read(std::time::Duration::from_millis(500)) {
            Incoming::Nothing => {}
            other => panic!("before our close-ok the server sent {other:?}"),
        }
        client.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        );
        match client.read(common::EVENT_TIMEOUT) {
            Incoming::Closed => {}
            other => panic!("after close-ok expected the socket to close, got {other:?}"),
        }
    })
    .await
    .expect("raw client");
}
