//! AMQPS: lapin over TLS (rustls) against a real `warren server` with a certificate signed by
//! a CA the test makes. A client that trusts the CA gets in and round-trips a message; one
//! that does not trust it is refused; with client-certificate verification on, a client
//! without a certificate or with one from another CA is refused and one with a CA-signed
//! certificate gets in.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use lapin::options::BasicGetOptions;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties};

mod common;

use common::tls::{trusting, Ca};

/// A node whose only AMQP listener is AMQPS, configured with `tls` lines; its AMQPS address.
fn start_amqps_node(dir: &Path, tls: &str) -> (common::Warren, SocketAddr) {
    let amqps = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a free port");
    let config = dir.join("warren.toml");
    let text = format!(
        "amqp_listen = \"none\"\namqps_listen = \"{amqps}\"\ncluster_listen = \"127.0.0.1:0\"\n\
         data_dir = \"{}\"\n{tls}",
        dir.join("data").display()
    );
    std::fs::write(&config, text).expect("write config");
    (common::start(&config, amqps), amqps)
}

fn amqps_uri(addr: SocketAddr) -> String {
    // By IP: the node's certificate names 127.0.0.1, and the client checks that name.
    format!("amqps://guest:guest@{addr}/%2f")
}

async fn connect_tls(addr: SocketAddr, tls: OwnedTLSConfig) -> lapin::Result<Connection> {
    common::within(
        "an AMQPS connection attempt",
        Connection::connect_with_config(&amqps_uri(addr), ConnectionProperties::default(), tls),
    )
    .await
}

/// The attempt failed in TLS (an I/O error), not later in AMQP (a refused login would be a
/// protocol error with a reply code).
fn assert_refused_by_tls(attempt: lapin::Result<Connection>, who: &str) {
    match attempt {
        Ok(_) => panic!("{who} got in"),
        Err(error) => assert!(
            matches!(error.kind(), lapin::ErrorKind::IOError(_)),
            "{who} was refused, but not by TLS: {error:?}"
        ),
    }
}

/// The connection works end to end: a confirmed publish and its message read back.
async fn round_trip(conn: &Connection, queue: &str) {
    let channel = conn.create_channel().await.expect("channel over TLS");
    common::declare_queue(&channel, queue).await;
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm.select");
    common::publish_confirmed(&channel, queue, b"over tls").await;
    let got = common::within(
        "basic.get",
        channel.basic_get(queue, BasicGetOptions::default()),
    )
    .await
    .expect("basic.get")
    .expect("a message");
    assert_eq!(got.delivery.data, b"over tls");
}

#[tokio::test]
async fn amqps_serves_a_client_that_trusts_the_ca_and_refuses_one_that_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "warren");
    let node_cert = ca.leaf("node");
    let tls = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        node_cert.cert_file.display(),
        node_cert.key_file.display()
    );
    let (_node, addr) = start_amqps_node(dir.path(), &tls);

    tracing::info!("--- a client trusting the CA publishes and reads back over TLS");
    let conn = connect_tls(addr, trusting(&ca))
        .await
        .expect("connect over TLS");
    round_trip(&conn, "tls-q").await;

    tracing::info!("--- a client trusting only the public roots is refused");
    let refused = connect_tls(addr, OwnedTLSConfig::default()).await;
    assert_refused_by_tls(refused, "a client that does not trust the CA");

    tracing::info!("--- a client trusting another CA is refused");
    let stranger = Ca::new(dir.path(), "stranger");
    let refused = connect_tls(addr, trusting(&stranger)).await;
    assert_refused_by_tls(refused, "a client trusting another CA");

    tracing::info!("--- plain AMQP on the AMQPS port is refused");
    let plain = common::within(
        "a plain connection attempt",
        Connection::connect(&common::uri(addr), ConnectionProperties::default()),
    )
    .await;
    assert!(plain.is_err(), "plain AMQP was served on the AMQPS port");

    tracing::info!("--- the first connection still works");
    round_trip(&conn, "tls-q2").await;
}

#[tokio::test]
async fn with_fail_if_no_peer_cert_only_a_ca_signed_client_certificate_gets_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "warren");
    let tls = format!(
        "{}tls_verify = \"verify_peer\"\ntls_fail_if_no_peer_cert = true\n",
        ca.leaf("node").config(&ca)
    );
    let (_node, addr) = start_amqps_node(dir.path(), &tls);

    tracing::info!("--- a client without a certificate is refused");
    let refused = connect_tls(addr, trusting(&ca)).await;
    assert_refused_by_tls(refused, "a client without a certificate");

    tracing::info!("--- a client with a certificate of another CA is refused");
    let stranger = Ca::new(dir.path(), "stranger");
    let foreign = stranger.leaf("foreign-client").client_tls(&ca);
    let refused = connect_tls(addr, foreign).await;
    assert_refused_by_tls(refused, "a client with another CA's certificate");

    tracing::info!("--- a client with a CA-signed certificate gets in");
    let client = ca.leaf("client").client_tls(&ca);
    let conn = connect_tls(addr, client)
        .await
        .expect("connect with a client certificate");
    round_trip(&conn, "mtls-q").await;
}

#[tokio::test]
async fn verify_peer_alone_lets_a_client_without_a_certificate_in_but_checks_one_that_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "warren");
    let tls = format!(
        "{}tls_verify = \"verify_peer\"\n",
        ca.leaf("node").config(&ca)
    );
    let (_node, addr) = start_amqps_node(dir.path(), &tls);

    tracing::info!(
        "--- no certificate: let in (RabbitMQ's verify_peer without fail_if_no_peer_cert)"
    );
    let conn = connect_tls(addr, trusting(&ca))
        .await
        .expect("connect without a certificate");
    round_trip(&conn, "verify-q").await;

    tracing::info!("--- a certificate of another CA: refused");
    let stranger = Ca::new(dir.path(), "stranger");
    let refused = connect_tls(addr, stranger.leaf("foreign").client_tls(&ca)).await;
    assert_refused_by_tls(refused, "a client with another CA's certificate");
}
