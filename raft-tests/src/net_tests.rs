//! The proxies over a plain echo server: a healthy link relays, a cut link closes live
//! connections and new ones, a healed link relays again, a delay holds chunks back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Fault, Net};

/// Echoes every connection's bytes back until it closes.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    addr
}

/// Host 1 reaching host 2 (the echo server) through link (1, 2).
async fn net_to_echo() -> (Net, String) {
    let echo = echo_server().await;
    let real = BTreeMap::from([(1, "127.0.0.1:1".to_string()), (2, echo.clone())]);
    let net = Net::start(real, 7).await;
    let dialer = net.dialer(1);
    let via = dialer.dial(2, &echo);
    assert_ne!(via, echo, "host 2 is reached through a proxy");
    (net, via)
}

/// Sends `byte` and reads the echo; false if the connection closed instead.
async fn round_trip(stream: &mut TcpStream, byte: u8) -> bool {
    if stream.write_all(&[byte]).await.is_err() {
        return false;
    }
    let mut back = [0u8; 1];
    matches!(stream.read(&mut back).await, Ok(1) if back[0] == byte)
}

#[tokio::test]
async fn cut_closes_live_and_new_connections_and_heal_restores() {
    let (net, via) = net_to_echo().await;
    let mut live = TcpStream::connect(&via).await.expect("connect");
    assert!(round_trip(&mut live, 1).await, "a healthy link relays");

    net.set(
        1,
        2,
        Fault {
            cut: true,
            ..Fault::default()
        },
    );
    assert!(
        !round_trip(&mut live, 2).await,
        "the cut closed the live connection"
    );
    let mut new = TcpStream::connect(&via)
        .await
        .expect("accepted, then closed");
    assert!(
        !round_trip(&mut new, 3).await,
        "a new connection is closed at once"
    );

    net.heal_all();
    let mut healed = TcpStream::connect(&via).await.expect("connect");
    assert!(
        round_trip(&mut healed, 4).await,
        "a healed link relays again"
    );
}

#[tokio::test]
async fn delay_holds_each_chunk_back_each_way() {
    let (net, via) = net_to_echo().await;
    let delay = Duration::from_millis(100);
    net.set(
        1,
        2,
        Fault {
            delay,
            ..Fault::default()
        },
    );
    let mut stream = TcpStream::connect(&via).await.expect("connect");
    let started = Instant::now();
    assert!(round_trip(&mut stream, 5).await);
    assert!(
        started.elapsed() >= 2 * delay,
        "took {:?}",
        started.elapsed()
    );
}
