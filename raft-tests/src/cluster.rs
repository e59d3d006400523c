//! A whole test cluster: its hosts, the controlled network between them ([`Net`]), the
//! nodes running on them, the recorder of who led which term, and the publishes the
//! cluster confirmed. A node's Raft id is its host's number, except a RAM node restarted
//! under a new id ([`Cluster::start_node`]).
//!
//! The cluster never hides a failure: a publish it could not confirm is returned as an
//! error and not counted; every confirmed one must be on every node at the end
//! ([`crate::invariants`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use tokio::net::TcpListener;

use warren::cluster::cookie::Cookie;
use warren::raft::node::RaftNode;
use warren::raft::peer_network::ClusterNetwork;
use warren::raft::types::NodeId;

use crate::invariants::Recorder;
use crate::net::{Host, Net};
use crate::{declare, publish, wait_for_leader_among, Member, WAIT};

/// How a host keeps its node's log and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Disk,
    Ram,
}

struct HostSpec {
    kind: Kind,
    addr: String,
    /// A disk host's data directory, kept across its node's restarts.
    dir: Option<tempfile::TempDir>,
    /// Its listener until its node first starts; later starts bind `addr` again.
    listener: Option<TcpListener>,
}

pub struct Cluster {
    pub net: Arc<Net>,
    cookie: Cookie,
    hosts: BTreeMap<Host, HostSpec>,
    /// The running nodes, by Raft id.
    pub members: BTreeMap<NodeId, Member>,
    host_of: BTreeMap<NodeId, Host>,
    /// The initial members' addresses (what the lowest id initialises the cluster with).
    initial: BTreeMap<NodeId, BasicNode>,
    pub recorder: Recorder,
    /// The numbers of the publishes whose commit was confirmed, in order.
    confirmed: Vec<u32>,
    next_msg: u32,
}

impl Cluster {
    /// Hosts `1..=kinds.len()`; the first `n_initial` start as the initial voters (Raft id =
    /// host) and elect a leader, which declares queue "q". The others wait for
    /// [`Cluster::start_node`]. `seed` seeds the network's drops.
    pub async fn start(kinds: &[Kind], n_initial: usize, seed: u64) -> Cluster {
        init_tracing();
        let mut hosts = BTreeMap::new();
        for (i, kind) in kinds.iter().enumerate() {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr").to_string();
            let dir = (*kind == Kind::Disk).then(|| tempfile::tempdir().expect("tempdir"));
            let spec = HostSpec {
                kind: *kind,
                addr,
                dir,
                listener: Some(listener),
            };
            hosts.insert(i as Host + 1, spec);
        }
        let real = hosts.iter().map(|(h, s)| (*h, s.addr.clone())).collect();
        let initial = hosts
            .iter()
            .take(n_initial)
            .map(|(h, s)| (*h, BasicNode::new(&s.addr)))
            .collect();
        let mut cluster = Cluster {
            net: Arc::new(Net::start(real, seed).await),
            cookie: Cookie::generate().expect("cookie"),
            hosts,
            members: BTreeMap::new(),
            host_of: BTreeMap::new(),
            initial,
            recorder: Recorder::default(),
            confirmed: Vec::new(),
            next_msg: 1,
        };
        for host in 1..=n_initial as Host {
            cluster.start_node(host, host).await;
        }
        let leader = cluster.leader().await;
        cluster.members[&leader]
            .node
            .propose(&[declare()])
            .await
            .expect("declare the queue");
        cluster
    }

    /// Starts node `id` on `host` (the host's kind decides disk or RAM).
    pub async fn start_node(&mut self, host: Host, id: NodeId) {
        tracing::info!(host, id, "cluster: start node");
        let spec = self.hosts.get_mut(&host).expect("a host");
        let listener = match spec.listener.take() {
            Some(listener) => listener,
            None => TcpListener::bind(&spec.addr).await.expect("bind again"),
        };
        let network = ClusterNetwork::with_dialer(id, self.cookie.clone(), self.net.dialer(host));
        let member = match &spec.dir {
            Some(dir) => {
                let mut members = self.initial.clone();
                members.insert(id, BasicNode::new(&spec.addr));
                let cookie = &self.cookie;
                Member::start_with(dir.path(), id, listener, &members, cookie, network).await
            }
            None => Member::start_ram_with(id, listener, &self.cookie, network).await,
        };
        self.recorder.watch(member.node.openraft());
        self.members.insert(id, member);
        self.host_of.insert(id, host);
    }

    /// Stops node `id` (a disk node keeps its directory; a RAM node forgets everything).
    pub async fn stop(&mut self, id: NodeId) {
        tracing::info!(id, "cluster: stop node");
        self.members
            .remove(&id)
            .expect("a running node")
            .stop()
            .await;
    }

    /// Stops and starts disk node `id` again from its directory.
    pub async fn restart(&mut self, id: NodeId) {
        assert_eq!(
            self.kind(self.host_of[&id]),
            Kind::Disk,
            "only disk nodes resume"
        );
        self.stop(id).await;
        self.start_node(self.host_of[&id], id).await;
    }

    /// A disk host's data directory (None for a RAM host).
    pub fn data_dir(&self, host: Host) -> Option<&std::path::Path> {
        self.hosts[&host].dir.as_ref().map(|d| d.path())
    }

    pub fn kind(&self, host: Host) -> Kind {
        self.hosts[&host].kind
    }

    pub fn host_of(&self, id: NodeId) -> Host {
        self.host_of[&id]
    }

    /// The address a node on `host` advertises (for `add_learner`).
    pub fn basic_node(&self, host: Host) -> BasicNode {
        BasicNode::new(&self.hosts[&host].addr)
    }

    pub fn node(&self, id: NodeId) -> &RaftNode {
        &self.members[&id].node
    }

    /// Waits for a leader all running nodes agree on, with a quorum behind it.
    pub async fn leader(&self) -> NodeId {
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        self.leader_among(&ids).await
    }

    /// Waits for a leader that nodes `ids` agree on (one of them).
    pub async fn leader_among(&self, ids: &[NodeId]) -> NodeId {
        let among = ids.iter().map(|id| (*id, &self.members[id])).collect();
        wait_for_leader_among(&among).await
    }

    /// Publishes a new message (body `m<n>`) through node `on` and waits up to `timeout`
    /// for its commit. On success `n` counts as confirmed; an error or a timeout leaves its
    /// fate unknown, and `n` is never proposed again (so no message can appear twice).
    pub async fn publish(&mut self, on: NodeId, timeout: Duration) -> anyhow::Result<u32> {
        let n = self.next_msg;
        self.next_msg += 1;
        let commands = [publish(n)];
        let proposal = self.members[&on].node.propose(&commands);
        match tokio::time::timeout(timeout, proposal).await {
            Ok(Ok(_)) => {
                self.confirmed.push(n);
                Ok(n)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => anyhow::bail!("publish m{n} on node {on}: no commit in {timeout:?}"),
        }
    }

    /// Publishes until `count` more messages are confirmed, each on whichever node `ids`
    /// agree leads; gives up after `attempts_max` tries in all.
    pub async fn publish_confirmed(&mut self, ids: &[NodeId], count: usize, attempts_max: usize) {
        let goal = self.confirmed.len() + count;
        for _ in 0..attempts_max {
            if self.confirmed.len() == goal {
                return;
            }
            let leader = self.leader_among(ids).await;
            if let Err(e) = self.publish(leader, Duration::from_secs(5)).await {
                tracing::info!(error = %e, "publish not confirmed; the next one is a new message");
            }
        }
        assert_eq!(
            self.confirmed.len(),
            goal,
            "confirmed within {attempts_max} tries"
        );
    }

    /// A running member other than `leader`.
    pub fn follower_of(&self, leader: NodeId) -> NodeId {
        *self
            .members
            .keys()
            .find(|id| **id != leader)
            .expect("a follower")
    }

    /// Waits until node `id` holds a snapshot covering at least `index` (its own or one it
    /// installed from the leader).
    pub async fn wait_for_snapshot(&self, id: NodeId, index: u64, what: &str) {
        self.node(id)
            .openraft()
            .wait(WAIT)
            .metrics(|m| m.snapshot.is_some_and(|s| s.index >= index), what)
            .await
            .unwrap_or_else(|e| panic!("node {id}: {what}: {e}"));
    }

    /// Builds a snapshot on node `id` covering at least `index`, then purges its log up to
    /// `index`: a node that lacks those entries can now only catch up by snapshot.
    pub async fn snapshot_and_purge(&self, id: NodeId, index: u64) {
        let raft = self.node(id).openraft();
        raft.trigger().snapshot().await.expect("trigger snapshot");
        self.wait_for_snapshot(id, index, "snapshot built").await;
        raft.trigger()
            .purge_log(index)
            .await
            .expect("trigger purge");
        raft.wait(WAIT)
            .metrics(|m| m.purged.is_some_and(|p| p.index >= index), "log purged")
            .await
            .expect("purged");
    }

    /// The voters in node `id`'s view of the membership.
    pub fn voters(&self, id: NodeId) -> BTreeSet<NodeId> {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.node(id).openraft().metrics().borrow_watched().clone();
        metrics.membership_config.voter_ids().collect()
    }

    /// The index of node `id`'s last log entry, now.
    pub fn last_log_index(&self, id: NodeId) -> Option<u64> {
        use openraft::async_runtime::WatchReceiver;
        self.node(id)
            .openraft()
            .metrics()
            .borrow_watched()
            .last_log_index
    }

    /// Node `id`'s current term.
    pub fn term(&self, id: NodeId) -> u64 {
        use openraft::async_runtime::WatchReceiver;
        self.node(id)
            .openraft()
            .metrics()
            .borrow_watched()
            .current_term
    }

    pub fn confirmed(&self) -> &[u32] {
        &self.confirmed
    }

    /// Stops every node and the network.
    pub async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// Logs to the test's output under `RUST_LOG` (once per test binary).
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init()
        .ok();
}
