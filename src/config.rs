//! Node configuration: read once, validated once, every wrong field reported together.
//!
//! The file is TOML. Unknown keys are errors (a typo must not silently fall back to a
//! default), and so are values of the wrong type or out of range; `validate` collects them
//! all so an operator fixes a file in one pass.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::limits;

mod tls;
pub use tls::{TlsSettings, TlsVerify};

/// A node's settings. `Default` gives the embedded defaults `warren` runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Name shown in cluster-status and as `cluster_name` to clients.
    pub node_name: String,
    /// Address of the plain AMQP listener; `None` (`"none"` in the file) switches it off.
    pub amqp_listen: Option<SocketAddr>,
    /// Address of the AMQPS listener (AMQP over TLS). It listens only when a certificate is
    /// configured (`tls.cert_file`); `None` (`"none"`) keeps it off even then.
    pub amqps_listen: Option<SocketAddr>,
    /// Certificates and verification for AMQPS and the cluster transport.
    pub tls: TlsSettings,
    /// Directory of the Raft log, snapshots and the state machine store.
    pub data_dir: PathBuf,
    /// frame_max offered in connection.tune.
    pub frame_max: u32,
    /// Heartbeat interval offered in connection.tune, in seconds (0 disables).
    pub heartbeat_s: u16,
    /// Largest message body accepted.
    pub body_size_max: u64,
    /// Resident memory (bytes) above which publishers are blocked (connection.blocked), as
    /// RabbitMQ's memory alarm; 0 means 40 % of the machine's memory, read at start.
    pub memory_high_watermark: u64,
    /// Users who may only log in from a loopback address (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    /// The user a new cluster starts with, with every right on `/` (RabbitMQ's
    /// `default_user` and `default_pass`); written once, when the cluster is formed.
    pub default_user: String,
    pub default_pass: Secret,
    /// This node's Raft id (unique in the cluster, never reused).
    pub node_id: u64,
    /// Where this node listens for its peers (Raft RPCs, forwarded batches, status).
    pub cluster_listen: SocketAddr,
    /// The cluster cookie file (owner-only permissions); default `<data_dir>/cookie`.
    pub cookie_file: Option<PathBuf>,
    /// The cluster's initial members, this node included; empty for a single node.
    pub peers: Vec<Peer>,
    /// A definitions file (RabbitMQ's JSON) the cluster's first leader imports once, right
    /// after it writes the default user (RabbitMQ's `load_definitions`). Read and checked
    /// at every start: a node with a wrong file does not start.
    pub load_definitions: Option<PathBuf>,
}

/// A password from the config: never shown by `Debug` (configs are logged).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The largest node id: connection ids and RAM nodes' Raft ids carry it in 8 bits.
const NODE_ID_MAX: i64 = 255;

/// A member of the cluster as configured: its id, addresses and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The node id; a disk node's Raft id. A RAM node takes a new Raft id at every start
    /// (`crate::raft::types::ram_node_id`).
    pub id: u64,
    pub cluster: SocketAddr,
    pub amqp: Option<SocketAddr>,
    pub role: Role,
}

/// Whether a node keeps its Raft log and state on disk or in memory only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Disk,
    Ram,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Disk => "disk",
            Role::Ram => "ram",
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_name: "warren@localhost".to_string(),
            amqp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 5672))),
            amqps_listen: Some(SocketAddr::from(([127, 0, 0, 1], 5671))),
            tls: TlsSettings::default(),
            data_dir: PathBuf::from("warren-data"),
            frame_max: limits::FRAME_SIZE_MAX,
            heartbeat_s: limits::HEARTBEAT_S_DEFAULT,
            body_size_max: limits::BODY_SIZE_MAX_DEFAULT,
            memory_high_watermark: 0,
            loopback_users: vec!["guest".to_string()],
            default_user: "guest".to_string(),
            default_pass: Secret("guest".to_string()),
            node_id: 1,
            cluster_listen: SocketAddr::from(([127, 0, 0, 1], 25672)),
            cookie_file: None,
            peers: Vec::new(),
            load_definitions: None,
        }
    }
}

/// Every problem found in a config file, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .problems.join("\n  "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl NodeConfig {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        let config = NodeConfig::parse(&text)
            .with_context(|| format!("load config file {}", path.display()))?;
        Ok(config)
    }

    /// Parses TOML text over the defaults, collecting every wrong field.
    pub fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            problems: vec![format!("not valid TOML: {}", e.message())],
        })?;
        let mut config = NodeConfig::default();
        let mut problems = Vec::new();
        for (key, value) in &table {
            if let Err(problem) = config.set(key, value) {
                problems.push(format!("{key}: {problem}"));
            }
        }
        // Files are read here, so a missing or unreadable certificate is named with the
        // other wrong fields, not found at start.
        config.check_tls_files(&mut problems);
        if problems.is_empty() {
            config.check_relations(&mut problems);
            config.check_tls_relations(table.contains_key("amqps_listen"), &mut problems);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    fn set(&mut self, key: &str, value: &toml::Value) -> Result<(), String> {
        match key {
            "node_name" => self.node_name = string(value)?,
            "amqp_listen" => self.amqp_listen = address_or_none(value)?,
            "amqps_listen" => self.amqps_listen = address_or_none(value)?,
            "tls_cert_file" => self.tls.cert_file = Some(PathBuf::from(string(value)?)),
            "tls_key_file" => self.tls.key_file = Some(PathBuf::from(string(value)?)),
            "tls_ca_file" => self.tls.ca_file = Some(PathBuf::from(string(value)?)),
            "tls_verify" => {
                self.tls.verify = match string(value)?.as_str() {
                    "verify_none" => TlsVerify::VerifyNone,
                    "verify_peer" => TlsVerify::VerifyPeer,
                    _ => return Err("expected \"verify_none\" or \"verify_peer\"".into()),
                }
            }
            "tls_fail_if_no_peer_cert" => self.tls.fail_if_no_peer_cert = boolean(value)?,
            "cluster_tls" => self.tls.cluster = boolean(value)?,
            "data_dir" => self.data_dir = PathBuf::from(string(value)?),
            "frame_max" => {
                self.frame_max =
                    integer(value, limits::FRAME_SIZE_MIN as i64, u32::MAX as i64)? as u32
            }
            "heartbeat_s" => self.heartbeat_s = integer(value, 0, u16::MAX as i64)? as u16,
            "body_size_max" => {
                let limit = limits::BODY_SIZE_MAX_LIMIT as i64;
                self.body_size_max = integer(value, 0, limit)? as u64
            }
            "memory_high_watermark" => {
                self.memory_high_watermark = integer(value, 0, i64::MAX)? as u64
            }
            "loopback_users" => self.loopback_users = strings(value)?,
            "default_user" => self.default_user = string(value)?,
            "default_pass" => self.default_pass = Secret(string(value)?),
            "node_id" => self.node_id = integer(value, 1, NODE_ID_MAX)? as u64,
            "cluster_listen" => self.cluster_listen = address(value)?,
            "cookie_file" => self.cookie_file = Some(PathBuf::from(string(value)?)),
            "peers" => self.peers = peers(value)?,
            "load_definitions" => self.load_definitions = Some(PathBuf::from(string(value)?)),
            _ => return Err("unknown setting".to_string()),
        }
        Ok(())
    }

    /// The cookie file: configured, or `cookie` in the data directory.
    pub fn cookie_path(&self) -> PathBuf {
        self.cookie_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cookie"))
    }

    /// This node's role, as its own `[[peers]]` entry gives it (a single node is a disk node).
    pub fn role(&self) -> Role {
        self.peers
            .iter()
            .find(|p| p.id == self.node_id)
            .map_or(Role::Disk, |p| p.role)
    }

    /// The AMQPS listener's address, when it listens: a certificate is configured and
    /// `amqps_listen` is not `"none"`.
    pub fn amqps_addr(&self) -> Option<SocketAddr> {
        self.tls.cert_file.as_ref().and(self.amqps_listen)
    }

    /// Where clients reach this node: the plain listener, or AMQPS when that is off
    /// (validation leaves at least one).
    pub fn client_addr(&self) -> SocketAddr {
        self.amqp_listen
            .or(self.amqps_addr())
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5672)))
    }

    /// The nodes the command-line tools ask, by configured id and cluster address: the
    /// peers, or a single node itself (it answers them on `cluster_listen` too).
    pub fn members(&self) -> Vec<(u64, SocketAddr)> {
        match self.is_clustered() {
            true => self.peers.iter().map(|p| (p.id, p.cluster)).collect(),
            false => vec![(self.node_id, self.cluster_listen)],
        }
    }

    /// Whether this node is one of several (peers configured).
    pub fn is_clustered(&self) -> bool {
        !self.peers.is_empty()
    }

    /// Checks between settings, once every field parsed.
    fn check_relations(&self, problems: &mut Vec<String>) {
        if self.is_clustered() && !self.peers.iter().any(|p| p.id == self.node_id) {
            problems.push(format!(
                "peers: node_id {} is not among the peers (list this node too)",
                self.node_id
            ));
        }
        let mut ids: Vec<u64> = self.peers.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            problems.push("peers: two peers have the same id".to_string());
        }
        if self.is_clustered() && self.peers.iter().all(|p| p.role == Role::Ram) {
            // A RAM node forgets its log on restart: with no disk voter, one power cut of
            // every node loses every confirmed message.
            problems
                .push("peers: every peer is a RAM node; at least one must be a disk node".into());
        }
    }
}

/// An address, or `"none"` for a listener switched off.
fn address_or_none(value: &toml::Value) -> Result<Option<SocketAddr>, String> {
    match value {
        toml::Value::String(s) if s == "none" => Ok(None),
        other => address(other).map(Some),
    }
}

fn boolean(value: &toml::Value) -> Result<bool, String> {
    match value {
        toml::Value::Boolean(b) => Ok(*b),
        other => Err(format!(
            "expected true or false, found {}",
            other.type_str()
        )),
    }
}

fn address(value: &toml::Value) -> Result<SocketAddr, String> {
    string(value)?
        .parse()
        .map_err(|e| format!("not an address like 127.0.0.1:5672 ({e})"))
}

/// `[[peers]]` tables: `id`, `cluster` and optional `amqp`; every wrong field is named.
fn peers(value: &toml::Value) -> Result<Vec<Peer>, String> {
    let toml::Value::Array(items) = value else {
        return Err(format!(
            "expected [[peers]] tables, found {}",
            value.type_str()
        ));
    };
    let mut peers = Vec::new();
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(table) = item.as_table() else {
            problems.push(format!("[{i}]: expected a table"));
            continue;
        };
        let mut field = |name: &str| -> Option<&toml::Value> {
            let value = table.get(name);
            if value.is_none() && name != "amqp" {
                problems.push(format!("[{i}].{name}: missing"));
            }
            value
        };
        let (id, cluster, amqp) = (field("id"), field("cluster"), field("amqp"));
        let id = id.map(|v| integer(v, 1, NODE_ID_MAX).map(|n| n as u64));
        let cluster = cluster.map(address);
        let amqp = amqp.map(address).transpose();
        let role = match table.get("role").map(string) {
            None => Ok(Role::Disk),
            Some(Ok(r)) if r == "disk" => Ok(Role::Disk),
            Some(Ok(r)) if r == "ram" => Ok(Role::Ram),
            Some(_) => Err("expected \"disk\" or \"ram\"".to_string()),
        };
        if let Err(e) = &role {
            problems.push(format!("[{i}].role: {e}"));
        }
        for key in table
            .keys()
            .filter(|k| !["id", "cluster", "amqp", "role"].contains(&k.as_str()))
        {
            problems.push(format!("[{i}].{key}: unknown setting"));
        }
        match (id, cluster, amqp, role) {
            (Some(Ok(id)), Some(Ok(cluster)), Ok(amqp), Ok(role)) => peers.push(Peer {
                id,
                cluster,
                amqp,
                role,
            }),
            (id, cluster, amqp, _) => {
                let errors = [
                    id.and_then(Result::err).map(|e| format!("[{i}].id: {e}")),
                    cluster
                        .and_then(Result::err)
                        .map(|e| format!("[{i}].cluster: {e}")),
                    amqp.err().map(|e| format!("[{i}].amqp: {e}")),
                ];
                problems.extend(errors.into_iter().flatten());
            }
        }
    }
    if problems.is_empty() {
        Ok(peers)
    } else {
        Err(problems.join("; "))
    }
}

fn string(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) if !s.is_empty() => Ok(s.clone()),
        toml::Value::String(_) => Err("must not be empty".to_string()),
        other => Err(format!("expected a string, found {}", other.type_str())),
    }
}

fn strings(value: &toml::Value) -> Result<Vec<String>, String> {
    let toml::Value::Array(items) = value else {
        return Err(format!(
            "expected a list of strings, found {}",
            value.type_str()
        ));
    };
    items
        .iter()
        .map(|item| match item {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected strings, found {}", other.type_str())),
        })
        .collect()
}

fn integer(value: &toml::Value, min: i64, max: i64) -> Result<i64, String> {
    match value {
        toml::Value::Integer(n) if (min..=max).contains(n) => Ok(*n),
        toml::Value::Integer(n) => Err(format!("{n} is outside {min}..={max}")),
        other => Err(format!("expected an integer, found {}", other.type_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(NodeConfig::parse("").unwrap(), NodeConfig::default());
    }

    #[test]
    fn example_config_file_is_valid() {
        let text = include_str!("../config/warren.toml");
        let config = NodeConfig::parse(text).unwrap();
        assert_eq!(config.amqp_listen.map(|a| a.port()), Some(5672));
        assert_eq!(
            config.amqps_addr(),
            None,
            "AMQPS is off without a certificate"
        );
    }

    #[test]
    fn cluster_config_files_are_valid() {
        for text in [
            include_str!("../config/node1.toml"),
            include_str!("../config/node2.toml"),
            include_str!("../config/node3.toml"),
        ] {
            let config = NodeConfig::parse(text).unwrap();
            assert_eq!(config.peers.len(), 3);
        }
    }

    #[test]
    fn settings_override_defaults() {
        let config = NodeConfig::parse(
            "node_name = \"n1\"\namqp_listen = \"127.0.0.1:5673\"\nframe_max = 8192",
        )
        .unwrap();
        assert_eq!(config.node_name, "n1");
        assert_eq!(config.amqp_listen.map(|a| a.port()), Some(5673));
        assert_eq!(config.frame_max, 8192);
    }

    #[test]
    fn load_definitions_names_a_file() {
        let config = NodeConfig::parse("load_definitions = \"/etc/warren/defs.json\"").unwrap();
        let path = config.load_definitions.as_deref();
        assert_eq!(path, Some(Path::new("/etc/warren/defs.json")));
        assert_eq!(NodeConfig::default().load_definitions, None);
    }

    #[test]
    fn every_wrong_field_is_named() {
        let err = NodeConfig::parse(
            "frame_max = 10\nheartbeat_s = \"x\"\nnode_nmae = \"n\"\namqp_listen = \"nowhere\"\n\
             load_definitions = 3",
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 5, "{text}");
        for field in [
            "frame_max",
            "heartbeat_s",
            "node_nmae",
            "amqp_listen",
            "load_definitions",
        ] {
            assert!(text.contains(field), "{field} missing from: {text}");
        }
    }

    #[test]
    fn peers_are_parsed_and_checked() {
        let text = "node_id = 2\n[[peers]]\nid = 1\ncluster = \"127.0.0.1:25672\"\n\
                    [[peers]]\nid = 2\ncluster = \"127.0.0.1:25673\"\namqp = \"127.0.0.1:5673\"\n";
        let config = NodeConfig::parse(text).unwrap();
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.peers[1].amqp.map(|a| a.port()), Some(5673));
        let missing_self = NodeConfig::parse(&text.replace("node_id = 2", "node_id = 3"));
        assert!(missing_self.unwrap_err().to_string().contains("node_id 3"));
        let ram = text.replace("\nid = 2\n", "\nid = 2\nrole = \"ram\"\n");
        assert_eq!(NodeConfig::parse(&ram).unwrap().role(), Role::Ram);
        let all_ram = ram.replace("\nid = 1\n", "\nid = 1\nrole = \"ram\"\n");
        let err = NodeConfig::parse(&all_ram).unwrap_err().to_string();
        assert!(err.contains("every peer is a RAM node"), "{err}");
        let bad = "[[peers]]\nid = 0\ncluster = \"x\"\nport = 1\nrole = \"tape\"\n";
        let err = NodeConfig::parse(bad).unwrap_err().to_string();
        for field in ["[0].id", "[0].cluster", "[0].port", "[0].role"] {
            assert!(err.contains(field), "{field} missing from: {err}");
        }
    }

    /// A message is one Raft entry, and an entry must fit a peer frame.
    #[test]
    fn body_size_max_is_bounded_by_what_one_entry_can_carry() {
        let limit = limits::BODY_SIZE_MAX_LIMIT;
        let at_limit = NodeConfig::parse(&format!("body_size_max = {limit}")).unwrap();
        assert_eq!(at_limit.body_size_max, limit);
        let over = NodeConfig::parse(&format!("body_size_max = {}", limit + 1)).unwrap_err();
        assert!(over.to_string().contains("body_size_max"), "{over}");
    }

    #[test]
    fn malformed_toml_is_an_error() {
        assert!(NodeConfig::parse("frame_max = ").is_err());
    }
}
