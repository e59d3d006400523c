//! Finding the leader from outside it: ask the members a node's configuration names and
//! follow their "not the leader, ask N" answers. Used by the membership commands of the CLI
//! and by a RAM node joining the cluster at its start.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;

use crate::cluster::handshake::ANY_NODE;
use crate::cluster::{Cookie, PeerAuth, PeerTls};
use crate::config::NodeConfig;
use crate::limits::{LEADER_SEARCH, LEADER_SEARCH_ROUND_PAUSE, MEMBERSHIP_CHANGE_TIMEOUT};
use crate::raft::protocol::{MembershipChange, PeerClient, PeerRequest, PeerResponse};

/// The node id a command-line client gives as its own: no node has it.
pub const CLIENT_ID: u64 = 0;

/// Asks the leader to carry out `change`; returns what it says now holds.
pub async fn ask_leader(config: &NodeConfig, change: MembershipChange) -> anyhow::Result<String> {
    let auth = load_peer_auth(config)?;
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
            let mut client = PeerClient::new(&addr, CLIENT_ID, ANY_NODE, &auth);
            let request = PeerRequest::ChangeMembership(change.clone());
            match client
                .call_timeout(request, MEMBERSHIP_CHANGE_TIMEOUT)
                .await
            {
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
            tokio::time::sleep(LEADER_SEARCH_ROUND_PAUSE).await;
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

/// What `config`'s node (or a command-line tool run with its config) connects to peers
/// with: the cluster cookie, and with `cluster_tls` the node's certificate and the CA. (A
/// single node has a cookie too: the command-line tools reach it the same way.)
pub fn load_peer_auth(config: &NodeConfig) -> anyhow::Result<PeerAuth> {
    let path = config.cookie_path();
    anyhow::ensure!(
        path.exists(),
        "cookie file {0} does not exist: make one with `warren cookie {0}` and give every \
         member of the cluster a copy (owner-only permissions), or set cookie_file",
        path.display()
    );
    let cookie =
        Cookie::load(&path).with_context(|| format!("load cluster cookie {}", path.display()))?;
    let tls = match config.tls.cluster {
        false => None,
        true => {
            let configs =
                crate::tls::cluster::configs(&config.tls).context("set up cluster TLS")?;
            Some(PeerTls::new(configs.server, configs.client))
        }
    };
    Ok(PeerAuth { cookie, tls })
}

/// A single node's peer credentials: its cookie file, made on its first start when there is
/// none (as RabbitMQ makes its Erlang cookie). A cluster member never makes one: a member
/// with a cookie of its own could not talk to the others.
pub fn load_or_make_peer_auth(config: &NodeConfig) -> anyhow::Result<PeerAuth> {
    let path = config.cookie_path();
    if !config.is_clustered() && !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        Cookie::generate()?.write_new(&path)?;
        tracing::info!(path = %path.display(), "made a cookie for the command-line tools");
    }
    load_peer_auth(config)
}
