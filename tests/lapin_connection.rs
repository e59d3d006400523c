//! End to end: connection-level behaviour of the real `warren` binary: AMQPLAIN logins with
//! lapin, and heartbeats with a hand-driven client on a plain socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{channel, AMQPClass};
use lapin::uri::{AMQPUri, SASLMechanism};
use lapin::{Connection, ConnectionProperties};
use warren::amqp::frame::Frame;

mod common;

use common::raw::{Incoming, RawClient};
use common::{publish_confirmed, reply_code, start_server, within};

/// Connects with `user:password` through the AMQPLAIN mechanism.
async fn connect_amqplain(addr: SocketAddr, password: &str) -> lapin::Result<Connection> {
    let text = format!("amqp://guest:{password}@{addr}/%2f?auth_mechanism=amqplain");
    let uri: AMQPUri = text.parse().expect("uri");
    assert_eq!(uri.query.auth_mechanism, Some(SASLMechanism::AMQPlain));
    within(
        "AMQPLAIN login",
        Connection::connect_uri(uri, ConnectionProperties::default()),
    )
    .await
}

/// guest/guest through AMQPLAIN logs in, and the connection works.
#[tokio::test]
async fn amqplain_login_is_accepted() {
    let server = start_server();
    let conn = connect_amqplain(server.addr, "guest")
        .await
        .expect("AMQPLAIN login");
    let channel = conn.create_channel().await.expect("channel");
    common::declare_queue(&channel, "amqplain-q").await;
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm.select");
    publish_confirmed(&channel, "amqplain-q", b"hello").await;
    conn.close(200, "bye").await.expect("close");
}

/// A wrong password through AMQPLAIN is refused: lapin announces
/// authentication_failure_close, so the server explains with connection.close 403.
#[tokio::test]
async fn amqplain_wrong_password_is_refused_with_403() {
    let server = start_server();
    let refused = connect_amqplain(server.addr, "wrong")
        .await
        .expect_err("AMQPLAIN login with a wrong password succeeded");
    assert_eq!(reply_code(&refused), 403, "{refused:?}");
}

/// After negotiating a 1 s heartbeat, a client that goes silent still receives heartbeat
/// frames, and is disconnected once it has missed two intervals: not at once, and well within
/// 10 s.
#[tokio::test]
async fn silent_client_is_disconnected_after_missed_heartbeats() {
    let server = start_server();
    let addr = server.addr;
    let (heartbeats, silent_for) = tokio::task::spawn_blocking(move || {
        let mut client = RawClient::connect(addr);
        client.handshake(1);
        let silent_since = Instant::now();
        let mut heartbeats = 0;
        loop {
            let left = Duration::from_secs(10).saturating_sub(silent_since.elapsed());
            match client.read(left) {
                Incoming::Frame(Frame::Heartbeat) => heartbeats += 1,
                Incoming::Frame(other) => panic!("unexpected frame {other:?}"),
                Incoming::Closed => return (heartbeats, silent_since.elapsed()),
                Incoming::Nothing => panic!("still connected after 10 s of silence"),
            }
        }
    })
    .await
    .expect("raw client");
    assert!(heartbeats >= 1, "no heartbeat frame from the server");
    // Two missed 1 s intervals: measured from a little after the server last heard us.
    assert!(
        silent_for >= Duration::from_millis(1500),
        "disconnected after only {silent_for:?} of silence"
    );
}

/// A client that sends a heartbeat every half interval is not disconnected, however long
/// it sends nothing else, and its connection still answers afterwards.
#[tokio::test]
async fn heartbeating_client_stays_connected() {
    let server = start_server();
    let addr = server.addr;
    let heartbeats = tokio::task::spawn_blocking(move || {
        let mut client = RawClient::connect(addr);
        client.handshake(1);
        let start = Instant::now();
        let mut heartbeats = 0;
        // Four heartbeat intervals: twice what the server tolerates from a silent client.
        while start.elapsed() < Duration::from_secs(4) {
            client.send(&Frame::Heartbeat);
            // Reading for half an interval paces the heartbeats we send.
            match client.read(Duration::from_millis(500)) {
                Incoming::Frame(Frame::Heartbeat) => heartbeats += 1,
                Incoming::Frame(other) => panic!("unexpected frame {other:?}"),
                Incoming::Closed => panic!("disconnected after {:?}", start.elapsed()),
                Incoming::Nothing => {}
            }
        }
        client.send_method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        let AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) = client.read_method() else {
            panic!("expected channel.open-ok");
        };
        heartbeats
    })
    .await
    .expect("raw client");
    assert!(heartbeats >= 1, "no heartbeat frame from the server");
}
