//! `warren join`, `leave`, `forget`, `promote`, `demote` and `stop`: requests sent over the
//! cluster transport (with the cookie) to the leader, found by asking the members a node's
//! configuration names and following their "not the leader, ask N" answers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cluster::cookie::Cookie;
use crate::cluster::handshake::ANY_NODE;
use crate::cluster::transport::PeerClient;
use crate::cluster::{MembershipChange, PeerRequest, PeerResponse};
use crate::config::NodeConfig;

/// The node id a command-line client gives as its own: no node has it.
const CLIENT_ID: u64 = 0;
/// How long a command keeps looking for a leader that takes the change.
const LEADER_SEARCH: Duration = Duration::from_secs(30);
/// A join returns once the learner caught up, which may take a snapshot transfer.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between rounds over the members while there is no leader.
const ROUND_PAUSE: Duration = Duration::from_millis(200);
/// How long `warren stop` waits for the node to close its cluster port.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// Asks the leader to carry out `change`; returns what it says now holds.
pub async fn ask_leader(config: &NodeConfig, change: MembershipChange) -> anyhow::Result<String> {
    let cookie = load_cookie(config)?;
    let mut known: BTreeMap<u64, String> = config
        .peers
        .iter()
        .map(|p| (p.id, p.cluster.to_string()))
        .collect();
    let deadline = Instant::now() + LEADER_SEARCH;
    let mut hint: Option<u64> = None;
    let mut last_problem = String::from("no member answered");
    while Instant::now() < deadline {
        let order: Vec<u64> = hint.into_iter().chain(known.keys().copied()).collect();
        hint = None;
        for id in order {
            let Some(addr) = known.get(&id).cloned() else {
                continue;
            };
            // Addressed by address, not id: a RAM member's Raft id changes at every start.
            let mut client = PeerClient::new(&addr, CLIENT_ID, ANY_NODE, cookie.clone());
            let request = PeerRequest::ChangeMembership(change.clone());
            match client.call_timeout(request, CHANGE_TIMEOUT).await {
                Ok(PeerResponse::Done(done)) => return Ok(done),
                Ok(PeerResponse::Error(refused)) => anyhow::bail!("node {id}: {refused}"),
                Ok(PeerResponse::NotCommitted { leader, reason }) => {
                    last_problem = format!("node {id}: {reason}");
                    learn_members(&mut client, &mut known).await;
                    if let Some(leader) = leader.filter(|l| *l != id) {
                        hint = Some(leader);
                        break;
                    }
                }
                Ok(other) => last_problem = format!("node {id}: unexpected answer {other:?}"),
                Err(e) => last_problem = format!("node {id} at {addr}: {e:#}"),
            }
        }
        if hint.is_none() {
            tokio::time::sleep(ROUND_PAUSE).await;
        }
    }
    anyhow::bail!("no leader took the change within {LEADER_SEARCH:?}; last: {last_problem}")
}

/// Adds the members a node knows of (voters and learners, with their addresses) to `known`,
/// so a leader that joined after the config was written can still be reached.
async fn learn_members(client: &mut PeerClient, known: &mut BTreeMap<u64, String>) {
    if let Ok(PeerResponse::Status(status)) = client.call(PeerRequest::Status).await {
        for (id, addr) in status.voters.into_iter().chain(status.learners) {
            if !addr.is_empty() {
                known.insert(id, addr);
            }
        }
    }
}

/// Asks this node (the one `config` describes) to stop gracefully and waits until it has
/// closed its cluster port.
pub async fn stop(config: &NodeConfig) -> anyhow::Result<()> {
    let cookie = load_cookie(config)?;
    let addr = config.cluster_listen.to_string();
    let mut client = PeerClient::new(&addr, CLIENT_ID, config.node_id, cookie);
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
        tokio::time::sleep(ROUND_PAUSE).await;
    }
    Ok(())
}

fn load_cookie(config: &NodeConfig) -> anyhow::Result<Cookie> {
    anyhow::ensure!(
        config.is_clustered(),
        "this configuration has no [[peers]]: it is a single node"
    );
    let path = config.cookie_path();
    Cookie::load(&path).with_context(|| format!("load cluster cookie {}", path.display()))
}
