//! A node that is one of several: its cookie, its Raft node on the cluster network with the
//! configured initial members, and the server that answers its peers.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

use super::peer::NodeHandler;
use crate::cluster::cookie::Cookie;
use crate::cluster::network::ClusterNetwork;
use crate::cluster::transport::PeerServer;
use crate::config::NodeConfig;
use crate::raft::node::RaftNode;

/// Opens this node's Raft state as a cluster member and starts answering peers.
pub async fn open(
    config: &Arc<NodeConfig>,
    stop: Arc<tokio::sync::Notify>,
) -> anyhow::Result<(Arc<RaftNode>, Cookie, PeerServer)> {
    let cookie_path = config.cookie_path();
    let cookie = Cookie::load(&cookie_path)
        .with_context(|| format!("load cluster cookie {}", cookie_path.display()))?;
    let members: BTreeMap<u64, openraft::BasicNode> = config
        .peers
        .iter()
        .map(|p| (p.id, openraft::BasicNode::new(p.cluster.to_string())))
        .collect();
    let network = ClusterNetwork::new(config.node_id, cookie.clone());
    let listener = tokio::net::TcpListener::bind(config.cluster_listen)
        .await
        .with_context(|| format!("bind cluster listener on {}", config.cluster_listen))?;
    // Does not wait for a leader: the election needs the peer server below.
    let node = Arc::new(
        RaftNode::open_cluster(&config.data_dir, config.node_id, network, members)
            .await
            .context("open raft node")?,
    );
    let handler = NodeHandler {
        node: Arc::clone(&node),
        config: Arc::clone(config),
        stop,
    };
    let server = PeerServer::start(listener, config.node_id, cookie.clone(), Arc::new(handler))?;
    Ok((node, cookie, server))
}
