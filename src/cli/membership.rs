//! `warren join`, `leave`, `forget`, `promote`, `demote` and `stop`: requests sent over the
//! cluster transport (with the cookie, inside TLS with `cluster_tls`) to the leader (`server/ask_leader.rs` finds it), or
//! to the node itself for `stop`.

use std::time::Instant;

use anyhow::Context;

use crate::config::NodeConfig;
use crate::raft::protocol::PeerClient;
use crate::raft::protocol::{PeerRequest, PeerResponse};

use crate::limits::{LEADER_SEARCH_ROUND_PAUSE, STOP_WAIT};
pub use crate::server::ask_leader::ask_leader;
use crate::server::ask_leader::{load_peer_auth, CLIENT_ID};

/// Asks this node (the one `config` describes) to stop gracefully and waits until it has
/// closed its cluster port.
pub async fn stop(config: &NodeConfig) -> anyhow::Result<()> {
    let auth = load_peer_auth(config)?;
    let addr = config.cluster_listen.to_string();
    let mut client = PeerClient::new(&addr, CLIENT_ID, config.node_id, auth);
    match client.call(PeerRequest::Stop).await {
        Ok(PeerResponse::Done(_)) => {}
        Ok(other) => anyhow::bail!("node {} did not stop: {other:?}", config.node_id),
        Err(e) => return Err(e).with_context(|| format!("ask node at {addr} to stop")),
    }
    drop(client);
    let deadline = Instant::now() + STOP_WAIT;
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "node {} still listens on {addr} after {STOP_WAIT:?}",
            config.node_id
        );
        tokio::time::sleep(LEADER_SEARCH_ROUND_PAUSE).await;
    }
    Ok(())
}
