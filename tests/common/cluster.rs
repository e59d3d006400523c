//! A three-node Warren cluster of real processes for the cluster tests: free ports, one
//! temporary directory (configs, data directories, the shared cookie, each node's log),
//! kill -9 and restart of one node, and the cluster's state read the way an operator reads
//! it, with `warren cluster-status --json`.
//!
//! Every wait is bounded: a cluster that never elects, or a node that never catches up,
//! fails the test with the last status seen instead of hanging it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Warren;

/// Nodes in a test cluster.
pub const NODES: u64 = 3;
/// How long a fresh or shaken cluster may take to have a leader (elections take < 1 s).
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the status is polled while waiting.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// One member: its addresses, its config file and log, and its process while it runs.
pub struct Node {
    pub id: u64,
    pub amqp: SocketAddr,
    pub cluster: SocketAddr,
    pub config: PathBuf,
    pub log: PathBuf,
    /// "disk" or "ram".
    pub role: &'static str,
    /// Environment variables set on the node's process (e.g. libfaketime's).
    pub env: Vec<(String, String)>,
    /// Lines appended to the node's config (e.g. its TLS certificate and `cluster_tls`).
    pub extra: String,
    warren: Option<Warren>,
}

/// Three `warren server` processes configured as one cluster.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
}

/// `warren cluster-status --json`, as far as the tests read it.
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterView {
    pub leader: Option<u64>,
    pub nodes: Vec<NodeRow>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NodeRow {
    pub id: u64,
    pub reachable: bool,
    pub status: Option<NodeStatus>,
    pub lag: Option<u64>,
    pub digest: Option<StateDigest>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct StateDigest {
    pub applied_index: Option<u64>,
    pub hash: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NodeStatus {
    pub node_id: u64,
    pub role: String,
    pub voters: Vec<(u64, String)>,
    pub learners: Vec<(u64, String)>,
    pub raft_state: String,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub leader: Option<u64>,
    /// The state-machine version the cluster runs, as this node applied it.
    pub machine_version: u16,
}

impl ClusterView {
    pub fn row(&self, id: u64) -> &NodeRow {
        self.nodes
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("node {id} missing from cluster-status: {self:?}"))
    }

    pub fn reachable(&self, id: u64) -> bool {
        self.row(id).reachable
    }

    /// The node's applied log index, when it answered.
    pub fn applied(&self, id: u64) -> Option<u64> {
        self.row(id).status.as_ref().and_then(|s| s.applied_index)
    }

    /// How many reachable nodes say they are the leader.
    pub fn n_leaders(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|r| r.status.as_ref())
            .filter(|s| s.raft_state == "leader")
            .count()
    }

    /// Every id in `ids` is reachable and has applied the same index, which is returned.
    pub fn applied_equal(&self, ids: &[u64]) -> Option<u64> {
        let first = self.applied(ids[0])?;
        ids.iter()
            .all(|id| self.reachable(*id) && self.applied(*id) == Some(first))
            .then_some(first)
    }
}

/// `n` distinct free ports on 127.0.0.1 (all bound at once, then released).
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("pick a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect()
}

/// A node's config: its own ports and data directory, the shared cookie, its extra lines,
/// every peer.
fn node_config(node: &Node, data_dir: &Path, cookie: &Path, peers: &[Node]) -> String {
    let mut text = format!(
        "node_name = \"warren{id}@localhost\"\nnode_id = {id}\n\
         amqp_listen = \"{}\"\ncluster_listen = \"{}\"\n\
         data_dir = \"{}\"\ncookie_file = \"{}\"\n{}\n",
        node.amqp,
        node.cluster,
        data_dir.display(),
        cookie.display(),
        node.extra,
        id = node.id,
    );
    for peer in peers {
        text.push_str(&format!(
            "\n[[peers]]\nid = {}\ncluster = \"{}\"\namqp = \"{}\"\nrole = \"{}\"\n",
            peer.id, peer.cluster, peer.amqp, peer.role
        ));
    }
    text
}

/// Writes a new random cookie (mode 0600) to `path`.
pub fn write_cookie(path: &Path) {
    warren::cluster::Cookie::generate()
        .and_then(|c| c.write_new(path))
        .expect("write cluster cookie");
}

/// Starts `warren server --config CONFIG` with its log appended to `log`; returns once its
/// AMQP port accepts connections.
pub fn start_logged(config: &Path, amqp: SocketAddr, log: &Path) -> Warren {
    start_logged_with(config, amqp, log, &[])
}

/// As [`start_logged`], with `env` set on the process.
pub fn start_logged_with(
    config: &Path,
    amqp: SocketAddr,
    log: &Path,
    env: &[(String, String)],
) -> Warren {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open node log");
    let stdout = file.try_clone().expect("clone log file");
    super::start_with_env(config, amqp, Stdio::from(stdout), Stdio::from(file), env)
}

impl Cluster {
    /// Writes the cookie and three configs, starts the nodes and waits for a leader.
    pub async fn start() -> Cluster {
        Cluster::start_roles(&["disk"; NODES as usize]).await
    }

    /// As [`Cluster::start`], node `i + 1` with role `roles[i]` ("disk" or "ram").
    pub async fn start_roles(roles: &[&'static str]) -> Cluster {
        Cluster::start_with_env(roles, &vec![Vec::new(); roles.len()]).await
    }

    /// As [`Cluster::start_roles`], node `i + 1`'s process with the environment `envs[i]`.
    pub async fn start_with_env(roles: &[&'static str], envs: &[Vec<(String, String)>]) -> Cluster {
        Cluster::start_configured(roles, envs, &vec![String::new(); roles.len()]).await
    }

    /// As [`Cluster::start`], node `i + 1` with the lines `extras[i]` in its config.
    pub async fn start_with_config(extras: &[String]) -> Cluster {
        let roles = vec!["disk"; extras.len()];
        Cluster::start_configured(&roles, &vec![Vec::new(); extras.len()], extras).await
    }

    /// Node `i + 1` with role `roles[i]`, environment `envs[i]` and config lines `extras[i]`.
    pub async fn start_configured(
        roles: &[&'static str],
        envs: &[Vec<(String, String)>],
        extras: &[String],
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let cookie = dir.path().join("cookie");
        write_cookie(&cookie);
        let addrs = free_addrs(2 * roles.len());
        let mut nodes: Vec<Node> = (1..=roles.len() as u64)
            .map(|id| {
                let i = (id - 1) as usize;
                Node {
                    id,
                    amqp: addrs[2 * i],
                    cluster: addrs[2 * i + 1],
                    config: dir.path().join(format!("node{id}.toml")),
                    log: dir.path().join(format!("node{id}.log")),
                    role: roles[i],
                    env: envs[i].clone(),
                    extra: extras[i].clone(),
                    warren: None,
                }
            })
            .collect();
        for node in &nodes {
            let data = dir.path().join(format!("node{}", node.id));
            let text = node_config(node, &data, &cookie, &nodes);
            std::fs::write(&node.config, text).expect("write node config");
        }
        for node in &mut nodes {
            node.warren = Some(start_logged_with(
                &node.config,
                node.amqp,
                &node.log,
                &node.env,
            ));
        }
        let cluster = Cluster { dir, nodes };
        cluster.wait_for_leader().await;
        cluster
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    pub fn amqp(&self, id: u64) -> SocketAddr {
        self.node(id).amqp
    }

    /// Ids of the nodes other than `id`, lowest first.
    pub fn others(&self, id: u64) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| n.id)
            .filter(|n| *n != id)
            .collect()
    }

    /// Starts one more node, with an empty data directory, whose config names every node
    /// so far and itself; it waits to be joined (`warren join`). Returns its id.
    pub fn add_node(&mut self) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let addrs = free_addrs(2);
        self.nodes.push(Node {
            id,
            amqp: addrs[0],
            cluster: addrs[1],
            config: self.dir.path().join(format!("node{id}.toml")),
            log: self.dir.path().join(format!("node{id}.log")),
            role: "disk",
            env: Vec::new(),
            extra: String::new(),
            warren: None,
        });
        let node = self.node(id);
        let data = self.dir.path().join(format!("node{id}"));
        let cookie = self.dir.path().join("cookie");
        std::fs::write(&node.config, node_config(node, &data, &cookie, &self.nodes))
            .expect("write node config");
        self.restart(id);
        id
    }

    /// Waits (at most `bound`) for node `id`'s process to exit by itself; its exit status.
    pub fn wait_exit(&mut self, id: u64, bound: Duration) -> std::process::ExitStatus {
        let node = &mut self.nodes[(id - 1) as usize];
        let mut warren = node.warren.take().expect("a node that runs");
        let status = warren.wait_exit(bound);
        status.unwrap_or_else(|| panic!("node {id} still runs after {bound:?}"))
    }

    /// kill -9 node `id` and reap it.
    pub fn kill(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        let mut warren = node.warren.take().expect("kill a node that runs");
        warren.kill();
    }

    /// SIGSTOP node `id`: it stops answering anyone, peers and clients, until [`Self::resume`].
    pub fn pause(&self, id: u64) {
        self.running(id).signal(libc::SIGSTOP);
    }

    /// SIGCONT node `id` after [`Self::pause`].
    pub fn resume(&self, id: u64) {
        self.running(id).signal(libc::SIGCONT);
    }

    fn running(&self, id: u64) -> &Warren {
        let node = self.node(id);
        node.warren
            .as_ref()
            .unwrap_or_else(|| panic!("node {id} does not run"))
    }

    /// Starts node `id` again on its data directory and ports.
    pub fn restart(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        assert!(node.warren.is_none(), "restart of node {id}, which runs");
        let warren = start_logged_with(&node.config, node.amqp, &node.log, &node.env);
        node.warren = Some(warren);
    }

    /// A config for node `id`'s ports and peers with another data directory and cookie.
    pub fn config_text(&self, id: u64, data_dir: &Path, cookie: &Path) -> String {
        node_config(self.node(id), data_dir, cookie, &self.nodes)
    }

    /// The node's log so far.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }

    /// Runs `warren cluster-status --json` with node 1's config (any member's config names
    /// every peer and the cookie).
    pub async fn status(&self) -> ClusterView {
        status_with(&self.node(1).config).await
    }

    /// Polls the status until `done` holds, for at most `bound`; the status that satisfied it.
    pub async fn wait_status(
        &self,
        what: &str,
        bound: Duration,
        done: impl Fn(&ClusterView) -> bool,
    ) -> ClusterView {
        let deadline = Instant::now() + bound;
        loop {
            let view = self.status().await;
            if done(&view) {
                return view;
            }
            if Instant::now() > deadline {
                panic!("cluster-status did not show {what} within {bound:?}; last: {view:#?}");
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Waits until every node has applied state-machine `version` (or a newer one), at most
    /// `bound`.
    pub async fn wait_machine_version_all(&self, version: u16, bound: Duration) {
        let what = format!("every node at machine version {version}");
        self.wait_status(&what, bound, |v| {
            v.nodes.iter().all(|r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.machine_version >= version)
            })
        })
        .await;
    }

    /// Waits for exactly one reachable leader that every reachable node follows.
    pub async fn wait_for_leader(&self) -> u64 {
        let view = self
            .wait_status(
                "one leader followed by every reachable node",
                LEADER_TIMEOUT,
                |v| {
                    v.n_leaders() == 1
                        && v.nodes
                            .iter()
                            .filter_map(|r| r.status.as_ref())
                            .all(|s| s.leader == v.leader)
                },
            )
            .await;
        view.leader.expect("a leader")
    }
}

/// Polls the node of `config` until it applied machine `version` (its cluster's first
/// leader moves it there a moment after the start), for at most [`LEADER_TIMEOUT`]. A
/// single node listens for AMQP before it has made the cookie the tool needs (`start`
/// returns on the AMQP port), so a failed run of the tool is tried again until then.
pub async fn wait_machine_version(config: &Path, version: u16) {
    let deadline = Instant::now() + LEADER_TIMEOUT;
    loop {
        let view = try_status_args(config, &[]).await;
        let statuses = view.iter().flat_map(|v| &v.nodes);
        let mut statuses = statuses.filter_map(|row| row.status.as_ref());
        if statuses.any(|s| s.machine_version >= version) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "machine version {version} not applied within {LEADER_TIMEOUT:?}: {view:#?}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// `warren cluster-status --json --config CONFIG`, parsed.
pub async fn status_with(config: &Path) -> ClusterView {
    status_args(config, &[]).await
}

/// `warren cluster-status --json --digest`: each node's applied index and state hash too.
pub async fn status_digest(config: &Path) -> ClusterView {
    status_args(config, &["--digest"]).await
}

async fn status_args(config: &Path, extra: &[&str]) -> ClusterView {
    try_status_args(config, extra)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// As [`status_args`], with a failed run of the tool as an error rather than a panic.
async fn try_status_args(config: &Path, extra: &[&str]) -> Result<ClusterView, String> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["cluster-status", "--json", "--config"])
        .arg(config)
        .args(extra)
        .output();
    let output = super::within("warren cluster-status", output)
        .await
        .expect("run warren cluster-status");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("cluster-status failed: {stderr}"));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        let stdout = String::from_utf8_lossy(&output.stdout);
        format!("cluster-status printed no JSON ({e}): {stdout}")
    })
}

/// `warren cluster-status` (the table) with node 1's config.
pub async fn status_table(config: &Path) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["cluster-status", "--config"])
        .arg(config)
        .output();
    let output = super::within("warren cluster-status", output)
        .await
        .expect("run warren cluster-status");
    assert!(output.status.success(), "cluster-status failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Drop for Cluster {
    /// On a failing test, the tail of every node's log: the server's side of the story.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut warren) = node.warren.take() {
                warren.kill();
            }
        }
        if !std::thread::panicking() {
            return;
        }
        // Keep the logs and data of a failed run for whoever investigates it.
        self.dir.disable_cleanup(true);
        eprintln!("--- cluster directory kept: {}", self.dir.path().display());
        for node in &self.nodes {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("--- node {} log (last {} lines)", node.id, tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}
