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
    let listener = bind_cluster_listen(config).await?;
    // Does not wait for a leader: the election needs the peer server below.
    let node = match config.role() {
        Role::Disk => RaftNode::open_cluster_at(&config.data_dir, id, network, members).await,
        Role::Ram => RaftNode::open_ram(id, network).await,
    };
    let node = Arc::new(node.context("open raft node")?);
    let server = serve_peers(listener, config, &node, id, &auth, stop, admin)?;
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
    let listener = bind_cluster_listen(config).await?;
    let node = Arc::new(RaftNode::open(&config.data_dir, SINGLE_NODE_ID).await?);
    let server = serve_peers(listener, config, &node, SINGLE_NODE_ID, &auth, stop, admin)?;
    Ok((node, server))
}

/// Binds `cluster_listen`, before Raft opens: a port in use fails the start at once.
async fn bind_cluster_listen(config: &NodeConfig) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = config.cluster_listen;
    let bound = tokio::net::TcpListener::bind(addr).await;
    bound.with_context(|| format!("bind cluster listener on {addr}"))
}

/// Starts answering peers and the command-line tools for `node` (Raft id `id`) on
/// `listener`; `stop` and `admin` are where `warren stop` and the operator's commands go.
fn serve_peers(
    listener: tokio::net::TcpListener,
    config: &Arc<NodeConfig>,
    node: &Arc<RaftNode>,
    id: u64,
    auth: &PeerAuth,
    stop: Arc<tokio::sync::Notify>,
    admin: Arc<super::peer_admin::AdminSlot>,
) -> anyhow::Result<PeerServer> {
    let handler = NodeHandler {
        node: Arc::clone(node),
        config: Arc::clone(config),
        stop,
        admin,
    };
    PeerServer::start(listener, id, auth, Arc::new(handler))
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
