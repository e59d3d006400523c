//! `warren cluster-status`: asks every configured member for its own view (over the cluster
//! transport, with the cookie, inside TLS with `cluster_tls`) and prints one table, or JSON.

use serde::Serialize;

use crate::cluster::handshake::ANY_NODE;
use crate::cluster::PeerAuth;
use crate::config::NodeConfig;
use crate::limits::STATUS_TIMEOUT;
use crate::raft::peer_network::call_peer;
use crate::raft::protocol::{NodeStatus, PeerRequest, PeerResponse, StateDigest};

/// The node id the status client gives as its own: no node has it.
const CLIENT_ID: u64 = 0;

#[derive(Serialize)]
pub struct ClusterStatus {
    pub cluster_name: String,
    pub leader: Option<u64>,
    pub nodes: Vec<NodeRow>,
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
pub struct NodeRow {
    pub id: u64,
    pub cluster_addr: String,
    pub reachable: bool,
    /// The node's answer, when it answered.
    pub status: Option<NodeStatus>,
    /// How far its applied index trails the leader's last log index.
    pub lag: Option<u64>,
    /// With `--digest`: its applied index and state hash, read together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<StateDigest>,
}

/// Collects every member's status, and with `digest` each one's state hash.
pub async fn collect(config: &NodeConfig, digest: bool) -> anyhow::Result<ClusterStatus> {
    let auth = crate::server::ask_leader::load_peer_auth(config)?;
    let mut rows = Vec::new();
    for (id, addr) in config.members() {
        let addr = addr.to_string();
        // By address: a RAM member's Raft id changes at every start.
        let call = call_peer(&addr, ANY_NODE, CLIENT_ID, &auth, PeerRequest::Status);
        let status = match tokio::time::timeout(STATUS_TIMEOUT, call).await {
            Ok(Ok(PeerResponse::Status(status))) => Some(status),
            _ => None,
        };
        let digest = match digest && status.is_some() {
            true => state_digest(&addr, &auth).await,
            false => None,
        };
        rows.push(NodeRow {
            id,
            cluster_addr: addr,
            reachable: status.is_some(),
            status,
            lag: None,
            digest,
        });
    }
    let leader_row = rows
        .iter()
        .filter_map(|r| r.status.as_ref())
        .find(|s| s.raft_state == "leader");
    // Rows are by configured node id; a RAM leader's Raft id carries it.
    let leader = leader_row.map(|s| crate::raft::types::config_node_of(s.node_id));
    let leader_last = leader_row.and_then(|s| s.last_log_index);
    let voters: Vec<u64> =
        leader_row.map_or(Vec::new(), |s| s.voters.iter().map(|v| v.0).collect());
    for row in &mut rows {
        let applied = row.status.as_ref().and_then(|s| s.applied_index);
        row.lag = leader_last.map(|last| last.saturating_sub(applied.unwrap_or(0)));
    }
    let mut warnings = Vec::new();
    if leader.is_none() {
        warnings.push("no reachable node is leader: the cluster cannot commit".to_string());
    }
    if !voters.is_empty() && voters.iter().all(|id| crate::raft::types::is_ram_id(*id)) {
        warnings.push(
            "every voter is a RAM node: a power cut of all of them loses every confirmed message"
                .to_string(),
        );
    }
    Ok(ClusterStatus {
        cluster_name: "warren".to_string(),
        leader,
        nodes: rows,
        warnings,
    })
}

async fn state_digest(addr: &str, auth: &PeerAuth) -> Option<StateDigest> {
    let call = call_peer(addr, ANY_NODE, CLIENT_ID, auth, PeerRequest::Digest);
    match tokio::time::timeout(STATUS_TIMEOUT, call).await {
        Ok(Ok(PeerResponse::Digest(digest))) => Some(digest),
        _ => None,
    }
}

/// The status as an aligned text table.
pub fn render_table(status: &ClusterStatus) -> String {
    let leader = status
        .leader
        .map_or("none".to_string(), |id| id.to_string());
    let mut out = format!("Cluster {} (leader: {leader})\n", status.cluster_name);
    out.push_str(&format!(
        "{:<4} {:<20} {:<21} {:<21} {:<5} {:<9} {:>5} {:>9} {:>9} {:>6} {:<9}\n",
        "id",
        "name",
        "amqp",
        "cluster",
        "role",
        "state",
        "term",
        "last log",
        "applied",
        "lag",
        "reachable"
    ));
    for row in &status.nodes {
        let s = row.status.clone().unwrap_or_default();
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let state = if row.reachable {
            s.raft_state.as_str()
        } else {
            "down"
        };
        out.push_str(&format!(
            "{:<4} {:<20} {:<21} {:<21} {:<5} {:<9} {:>5} {:>9} {:>9} {:>6} {:<9}\n",
            row.id,
            s.node_name,
            s.amqp_addr,
            row.cluster_addr,
            s.role,
            state,
            s.term,
            opt(s.last_log_index),
            opt(s.applied_index),
            opt(row.lag),
            if row.reachable { "yes" } else { "no" },
        ));
    }
    for warning in &status.warnings {
        out.push_str(&format!("WARNING: {warning}\n"));
    }
    out
}
