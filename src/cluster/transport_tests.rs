//! The transport over real TCP on 127.0.0.1: the handshake admits a peer with the same cookie
//! and the right node id, refuses any other on both sides, and a client reconnects by itself.

use super::*;
use crate::cluster::handshake::HandshakeError;
use crate::cluster::{Cookie, PeerTls};
use crate::raft::protocol::{
    NodeProtocol, NodeStatus, PeerClient, PeerRequest, PeerResponse, PendingResponse,
};

/// Answers `Status` with its node id, anything else with an error.
struct Echo {
    node_id: NodeId,
}

impl PeerHandler for Echo {
    type Protocol = NodeProtocol;

    async fn handle(&self, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::Status => PeerResponse::Status(NodeStatus {
                node_id: self.node_id,
                ..NodeStatus::default()
            }),
            other => PeerResponse::Error(format!("echo does not handle {other:?}")),
        }
    }
}

fn cookie(text: &str) -> Cookie {
    Cookie::from_secret(text).expect("cookie")
}

async fn echo_server(node_id: NodeId, secret: &str) -> PeerServer {
    let echo = Arc::new(Echo { node_id });
    PeerServer::bind("127.0.0.1:0", node_id, cookie(secret), echo)
        .await
        .expect("bind")
}

fn status_of(response: PeerResponse) -> NodeId {
    match response {
        PeerResponse::Status(status) => status.node_id,
        other => panic!("expected a status, got {other:?}"),
    }
}

#[tokio::test]
async fn a_peer_with_the_same_cookie_is_served_in_sequence() {
    let server = echo_server(2, "the-cluster-cookie").await;
    let addr = server.local_addr().to_string();
    let mut client = PeerClient::new(addr, 1, 2, cookie("the-cluster-cookie"));
    for _ in 0..3 {
        assert_eq!(
            status_of(client.call(PeerRequest::Status).await.expect("call")),
            2
        );
    }
    let response = client.call(PeerRequest::Propose(Default::default())).await;
    assert!(matches!(response.expect("call"), PeerResponse::Error(_)));
    server.stop().await;
}

#[tokio::test]
async fn a_client_reconnects_after_the_server_restarts() {
    let server = echo_server(2, "the-cluster-cookie").await;
    let addr = server.local_addr();
    let mut client = PeerClient::new(addr.to_string(), 1, 2, cookie("the-cluster-cookie"));
    client.call(PeerRequest::Status).await.expect("first call");

    tracing::info!("--- stop the server: the open connection is closed");
    server.stop().await;
    assert!(client.call(PeerRequest::Status).await.is_err());

    tracing::info!("--- start it again on the same port: the next call reconnects");
    let echo = Arc::new(Echo { node_id: 2 });
    let server = PeerServer::bind(&addr.to_string(), 2, cookie("the-cluster-cookie"), echo)
        .await
        .expect("rebind");
    assert_eq!(
        status_of(client.call(PeerRequest::Status).await.expect("call")),
        2
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_cookie_is_refused_by_the_client() {
    let server = echo_server(2, "the-cluster-cookie").await;
    let addr = server.local_addr().to_string();
    let mut client = PeerClient::new(addr, 1, 2, cookie("another-cluster-cookie"));
    let err = client.call(PeerRequest::Status).await.expect_err("refused");
    let err = format!("{err:#}");
    assert!(err.contains("wrong cookie"), "{err}");
}

/// Runs both halves of the handshake over a real TCP connection and returns both results.
async fn handshake_pair(
    server_cookie: &str,
    client_cookie: &str,
    server_id: NodeId,
    asked_id: NodeId,
) -> (Result<NodeId, HandshakeError>, Result<(), HandshakeError>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_cookie = cookie(server_cookie);
    let server = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.expect("accept");
        let (mut rd, mut wr) = stream.into_split();
        handshake::server(&mut rd, &mut wr, &server_cookie, server_id, peer).await
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let addr = addr.to_string();
    let client_cookie = cookie(client_cookie);
    let client = handshake::client(&mut rd, &mut wr, &client_cookie, 1, asked_id, &addr).await;
    (server.await.expect("server task"), client)
}

#[tokio::test]
async fn the_handshake_admits_the_same_cookie() {
    let (server, client) = handshake_pair("the-cluster-cookie", "the-cluster-cookie", 2, 2).await;
    assert_eq!(server.expect("server side"), 1);
    client.expect("client side");
}

#[tokio::test]
async fn the_handshake_refuses_a_different_cookie_on_both_sides() {
    let (server, client) = handshake_pair("the-cluster-cookie", "a-different-cookie", 2, 2).await;
    assert!(
        matches!(client, Err(HandshakeError::WrongCookie)),
        "{client:?}"
    );
    let server = server.expect_err("server must refuse");
    assert!(server.to_string().contains("wrong cookie"), "{server}");
}

#[tokio::test]
async fn the_handshake_refuses_a_request_for_another_node_id() {
    let (server, client) = handshake_pair("the-cluster-cookie", "the-cluster-cookie", 2, 3).await;
    assert!(
        matches!(server, Err(HandshakeError::WrongNode { ours: 2, asked: 3 })),
        "{server:?}"
    );
    let client = client.expect_err("client must see the refusal");
    assert!(
        client.to_string().contains("this is node 2, not node 3"),
        "{client}"
    );
}

/// Starts every `Propose` at once and finishes it only when `wanted` have started, answering
/// with the batch's `time_ms`: a server that waited for each response before reading the next
/// request would never answer.
struct Gate {
    started: tokio::sync::watch::Sender<usize>,
    wanted: usize,
}

impl PeerHandler for Gate {
    type Protocol = NodeProtocol;

    async fn handle(&self, _: PeerRequest) -> PeerResponse {
        PeerResponse::Error("gate only starts requests".to_string())
    }

    async fn start(&self, request: PeerRequest) -> PendingResponse<'_> {
        let PeerRequest::Propose(batch) = request else {
            return Box::pin(std::future::ready(PeerResponse::Error(
                "not a batch".into(),
            )));
        };
        self.started.send_modify(|n| *n += 1);
        let mut started = self.started.subscribe();
        let wanted = self.wanted;
        Box::pin(async move {
            started
                .wait_for(|n| *n >= wanted)
                .await
                .expect("gate alive");
            PeerResponse::Done(batch.time_ms.to_string())
        })
    }
}

#[tokio::test]
async fn a_pipeline_has_several_requests_started_and_answers_them_in_order() {
    let gate = Arc::new(Gate {
        started: tokio::sync::watch::channel(0).0,
        wanted: 3,
    });
    let secret = cookie("the-cluster-cookie");
    let server = PeerServer::bind("127.0.0.1:0", 2, secret.clone(), gate)
        .await
        .expect("bind");
    let client = PeerClient::new(server.local_addr().to_string(), 1, 2, secret);
    let mut pipeline = crate::cluster::pipeline::PeerPipeline::open(&client)
        .await
        .expect("open");
    let mut answers = Vec::new();
    for time_ms in [11, 22, 33] {
        let batch = crate::raft::state_machine::Batch {
            time_ms,
            ..Default::default()
        };
        let request = PeerRequest::Propose(batch);
        answers.push(
            pipeline
                .send(&request, Duration::from_secs(5))
                .await
                .expect("send"),
        );
    }
    for (answer, time_ms) in answers.into_iter().zip([11, 22, 33]) {
        let response = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("answered while the others were started")
            .expect("pipeline alive")
            .expect("a response");
        assert!(
            matches!(&response, PeerResponse::Done(t) if *t == time_ms.to_string()),
            "{response:?} for {time_ms}"
        );
    }

    tracing::info!("--- the server goes: a request still waiting fails instead of hanging");
    server.stop().await;
    let waiting = match pipeline
        .send(&PeerRequest::Status, Duration::from_secs(5))
        .await
    {
        Ok(answer) => tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("the broken pipeline answers"),
        Err(e) => Ok(Err(e)),
    };
    assert!(!matches!(waiting, Ok(Ok(_))), "{waiting:?}");
}

/// Cluster TLS for a node: a certificate for 127.0.0.1 signed by `ca`, written in `dir`.
fn peer_tls(
    dir: &std::path::Path,
    ca: &rcgen::CertifiedIssuer<'_, rcgen::KeyPair>,
    name: &str,
) -> PeerTls {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = params.signed_by(&key, ca).expect("sign");
    let (cert_file, key_file) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_file, cert.pem()).expect("write cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("write key");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let settings = crate::config::TlsSettings {
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        ca_file: Some(ca_file),
        cluster: true,
        ..Default::default()
    };
    let configs = crate::tls::cluster::configs(&settings).expect("TLS configs");
    PeerTls::new(configs.server, configs.client)
}

#[tokio::test]
async fn with_cluster_tls_only_a_peer_over_tls_with_the_cookie_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).expect("CA");
    let secret = cookie("the-cluster-cookie");
    let auth = |name: &str| PeerAuth {
        cookie: secret.clone(),
        tls: Some(peer_tls(dir.path(), &ca, name)),
    };
    let server = PeerServer::bind(
        "127.0.0.1:0",
        2,
        auth("node2"),
        Arc::new(Echo { node_id: 2 }),
    )
    .await
    .expect("bind");
    let addr = server.local_addr().to_string();

    tracing::info!("--- a peer over TLS with the cookie is served, repeatedly");
    let mut client = PeerClient::new(&addr, 1, 2, auth("node1"));
    for _ in 0..2 {
        assert_eq!(
            status_of(client.call(PeerRequest::Status).await.expect("call")),
            2
        );
    }

    tracing::info!("--- the right cookie over plain TCP is refused");
    let mut plain = PeerClient::new(&addr, 1, 2, secret.clone());
    plain
        .call(PeerRequest::Status)
        .await
        .expect_err("plain TCP refused");

    tracing::info!("--- TLS with a wrong cookie is refused by the cookie handshake");
    let mut wrong = PeerClient::new(
        &addr,
        1,
        2,
        PeerAuth {
            cookie: cookie("another-cluster-cookie"),
            tls: auth("node3").tls,
        },
    );
    let err = format!(
        "{:#}",
        wrong.call(PeerRequest::Status).await.expect_err("refused")
    );
    assert!(err.contains("wrong cookie"), "{err}");
    server.stop().await;
}
