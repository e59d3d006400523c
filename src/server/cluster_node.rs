//! A node that is one of several: its cookie (and cluster TLS), its Raft node on the cluster
//! network with the configured initial members (the disk nodes), and the server that answers
//! its peers. A RAM node starts empty under a new Raft id and joins before it serves clients.
//! A single node answers the command-line tools with the same server.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use super::peer::NodeHandler;
use crate::cluster::transport::PeerServer;
use crate::cluster::PeerAuth;
use crate::config::{NodeConfig, Role};
use crate::limits::RAM_JOIN_RETRY;
use crate::raft::node::{wall_clock_ms, RaftNode};
use crate::raft::peer_network::ClusterNetwork;
use crate::raft::protocol::MembershipChange;
use crate::raft::types::ram_node_id;

/// A single node's Raft id, whatever its `node_id`.
const SINGLE_NODE_ID: u64 = 1;

/// Opens this node's Raft state as a cluster member and starts answering peers.
pub async fn open(
    config: &Arc<NodeConfig>,
    stop: Arc<tokio::sync::Notify>,
    admin: Arc<super::peer_admin::AdminSlot>,
) -> anyhow::Result<(Arc<RaftNode>, PeerAuth, PeerServer)> {
    let auth = super::ask_leader::load_peer_auth(config)?;
    // RAM peers are not initial members: each start of one joins under a new Raft id.
    let members: BTreeMap<u64, String> = config
        .peers
        .iter()
        .filter(|p| p.role == Role::Disk)
        .map(|p| (p.id, p.cluster.to_string()))
        .collect();
    let id = match config.role() {
        Role::Disk => config.node_id,
        Role::Ram => ram_node_id(config.node_id, wall_clock_ms()),
    };
    let network = ClusterNetwork::new(id, &auth);
    let listener = tokio::net::TcpListener::bind(config.cluster_listen)
        .await
        .with_context(|| format!("bind cluster listener on {}", config.cluster_listen))?;
    // Does not wait for a leader: the election needs the peer server below.
    let node = match config.role() {
        Role::Disk => RaftNode::open_cluster_at(&config.data_dir, id, network, members).await,
        Role::Ram => RaftNode::open_ram(id, network).await,
    };
    let node = Arc::new(node.context("open raft node")?);
    let handler = NodeHandler {
        node: Arc::clone(&node),
        config: Arc::clone(config),
        stop,
        admin,
    };
    let server = PeerServer::start(listener, id, &auth, Arc::new(handler))?;
    super::catch_up::start(&node, auth.clone());
    if config.role() == Role::Ram {
        join_as_ram_node(config, id).await;
    }
    Ok((node, auth, server))
}

/// A single node's server for the command-line tools (`warren list_queues`, `add_user`, ...):
/// the same peer server on `cluster_listen`, behind a cookie the node makes on its first
/// start. No Raft peer is configured, so nothing else comes through it.
pub async fn open_single(
    config: &Arc<NodeConfig>,
    stop: Arc<tokio::sync::Notify>,
    admin: Arc<super::peer_admin::AdminSlot>,
) -> anyhow::Result<(Arc<RaftNode>, PeerServer)> {
    let auth = super::ask_leader::load_or_make_peer_auth(config)?;
    let listener = tokio::net::TcpListener::bind(config.cluster_listen)
        .await
        .with_context(|| format!("bind cluster_listen {}", config.cluster_listen))?;
    let node = Arc::new(RaftNode::open(&config.data_dir, SINGLE_NODE_ID).await?);
    let handler = NodeHandler {
        node: Arc::clone(&node),
        config: Arc::clone(config),
        stop,
        admin,
    };
    let server = PeerServer::start(listener, SINGLE_NODE_ID, &auth, Arc::new(handler))?;
    Ok((node, server))
}

/// Asks the leader, until it has done so, to add this start of a RAM node: as a learner
/// caught up from a snapshot, then as a voter in place of the node's earlier starts.
async fn join_as_ram_node(config: &NodeConfig, id: u64) {
    tracing::info!(
        raft_id = id,
        "RAM node: joining the cluster under a new raft id"
    );
    let change = MembershipChange::Join {
        id,
        addr: config.cluster_listen.to_string(),
        voter: true,
    };
    loop {
        match crate::server::ask_leader::ask_leader(config, change.clone()).await {
            Ok(done) => {
                tracing::info!(%done, "RAM node joined");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "RAM node: join failed; retrying");
                tokio::time::sleep(RAM_JOIN_RETRY).await;
            }
        }
    }
}
