//! A three-node cluster with `cluster_tls` on: every peer connection (Raft, forwarded
//! publishes, the CLI's cluster-status and membership commands) runs inside mutually
//! verified TLS, each node with a certificate of the test's CA. The leader-kill durability
//! scenario passes over it, and a caller that knows the cookie but speaks plain TCP, or
//! presents another CA's certificate, is refused.

use std::path::Path;
use std::time::Duration;

use warren::cluster::{Cookie, PeerAuth, PeerTls};
use warren::config::NodeConfig;
use warren::raft::peer_network::call_peer;
use warren::raft::protocol::{PeerRequest, PeerResponse};

mod common;

use common::cluster::{Cluster, NODES};
use common::tls::Ca;

/// The bound on the whole test: a hung cluster fails instead of hanging CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Any node: a command-line client's target (`cluster::handshake::ANY_NODE`).
const ANY_NODE: u64 = 0;

/// Each node's config lines: its own CA-signed certificate, the CA, cluster TLS on. AMQPS
/// stays off: the three nodes share a host, and its default port would be taken twice.
fn tls_configs(ca: &Ca) -> Vec<String> {
    (1..=NODES)
        .map(|id| {
            let cert = ca.leaf(&format!("node{id}")).config(ca);
            format!("{cert}cluster_tls = true\namqps_listen = \"none\"\n")
        })
        .collect()
}

/// What a peer connection opened with `config`'s node cookie and `tls` carries.
fn auth_of(cookie_file: &Path, tls: Option<PeerTls>) -> PeerAuth {
    PeerAuth {
        cookie: Cookie::load(cookie_file).expect("load the cluster cookie"),
        tls,
    }
}

/// Cluster TLS presenting a certificate of another CA, while trusting the cluster's `ca`
/// (so the refusal is the node's, not this client's).
fn foreign_tls(dir: &Path, ca: &Ca) -> PeerTls {
    let stranger = Ca::new(dir, "stranger");
    let text = format!(
        "{}cluster_tls = true\n[[peers]]\nid = 1\ncluster = \"127.0.0.1:1\"\n",
        stranger.leaf("impostor").config(ca)
    );
    let config = NodeConfig::parse(&text).expect("a valid config");
    let configs = warren::tls::cluster::configs(&config.tls).expect("TLS configs");
    PeerTls::new(configs.server, configs.client)
}

async fn status_call(addr: &str, auth: &PeerAuth) -> anyhow::Result<PeerResponse> {
    call_peer(addr, ANY_NODE, 0, auth, PeerRequest::Status).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_a_leader_kill_with_cluster_tls() {
    let certs = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(certs.path(), "cluster");
    let run = async {
        tracing::info!("--- three nodes with cluster TLS elect a leader (seen by cluster-status)");
        let mut cluster = Cluster::start_with_config(&tls_configs(&ca)).await;

        tracing::info!("--- the cookie over plain TCP is refused; over TLS it is answered");
        let node1 = cluster.node(1);
        let addr = node1.cluster.to_string();
        let cookie_file = cluster.dir.path().join("cookie");
        let plain = status_call(&addr, &auth_of(&cookie_file, None)).await;
        assert!(plain.is_err(), "plain TCP was answered: {plain:?}");
        let config = NodeConfig::load(&node1.config).expect("node 1's config");
        let tls = warren::server::ask_leader::load_peer_auth(&config).expect("node 1's auth");
        let answer = status_call(&addr, &tls).await.expect("a status over TLS");
        assert!(matches!(answer, PeerResponse::Status(_)), "{answer:?}");

        tracing::info!("--- another CA's certificate is refused, cookie or not");
        let foreign = auth_of(&cookie_file, Some(foreign_tls(certs.path(), &ca)));
        let refused = status_call(&addr, &foreign).await;
        assert!(
            refused.is_err(),
            "another CA's certificate was answered: {refused:?}"
        );

        tracing::info!("--- a membership command reaches the leader over TLS");
        let promote = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["promote", "2", "--config"])
            .arg(&cluster.node(3).config)
            .output();
        let output = common::within("warren promote", promote)
            .await
            .expect("run warren promote");
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && said.contains("node 2 is already a voter"),
            "warren promote over cluster TLS: {said} {}",
            String::from_utf8_lossy(&output.stderr)
        );

        tracing::info!("--- kill -9 the leader mid-stream: every confirmed message survives");
        common::leader_kill::confirmed_messages_survive_a_leader_kill(&mut cluster).await;
    };
    tokio::time::timeout(TEST_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}
