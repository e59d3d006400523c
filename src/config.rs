//! Node configuration: read once, validated once, every wrong field reported together.
//!
//! The file is TOML. Unknown keys are errors (a typo must not silently fall back to a
//! default), and so are values of the wrong type or out of range; `validate` collects them
//! all so an operator fixes a file in one pass.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::limits;

/// A node's settings. `Default` gives the embedded defaults `warren` runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Name shown in cluster-status and as `cluster_name` to clients.
    pub node_name: String,
    /// Address the AMQP front end listens on.
    pub amqp_listen: SocketAddr,
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
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_name: "warren@localhost".to_string(),
            amqp_listen: SocketAddr::from(([127, 0, 0, 1], 5672)),
            data_dir: PathBuf::from("warren-data"),
            frame_max: limits::FRAME_SIZE_MAX,
            heartbeat_s: limits::HEARTBEAT_S_DEFAULT,
            body_size_max: limits::BODY_SIZE_MAX_DEFAULT,
            memory_high_watermark: 0,
            loopback_users: vec!["guest".to_string()],
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
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    fn set(&mut self, key: &str, value: &toml::Value) -> Result<(), String> {
        match key {
            "node_name" => self.node_name = string(value)?,
            "amqp_listen" => {
                self.amqp_listen = string(value)?
                    .parse()
                    .map_err(|e| format!("not an address like 127.0.0.1:5672 ({e})"))?
            }
            "data_dir" => self.data_dir = PathBuf::from(string(value)?),
            "frame_max" => {
                self.frame_max =
                    integer(value, limits::FRAME_SIZE_MIN as i64, u32::MAX as i64)? as u32
            }
            "heartbeat_s" => self.heartbeat_s = integer(value, 0, u16::MAX as i64)? as u16,
            "body_size_max" => self.body_size_max = integer(value, 0, i64::MAX)? as u64,
            "memory_high_watermark" => {
                self.memory_high_watermark = integer(value, 0, i64::MAX)? as u64
            }
            "loopback_users" => self.loopback_users = strings(value)?,
            _ => return Err("unknown setting".to_string()),
        }
        Ok(())
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
        assert_eq!(config.amqp_listen.port(), 5672);
    }

    #[test]
    fn settings_override_defaults() {
        let config = NodeConfig::parse(
            "node_name = \"n1\"\namqp_listen = \"127.0.0.1:5673\"\nframe_max = 8192",
        )
        .unwrap();
        assert_eq!(config.node_name, "n1");
        assert_eq!(config.amqp_listen.port(), 5673);
        assert_eq!(config.frame_max, 8192);
    }

    #[test]
    fn every_wrong_field_is_named() {
        let err = NodeConfig::parse(
            "frame_max = 10\nheartbeat_s = \"x\"\nnode_nmae = \"n\"\namqp_listen = \"nowhere\"",
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 4, "{text}");
        for field in ["frame_max", "heartbeat_s", "node_nmae", "amqp_listen"] {
            assert!(text.contains(field), "{field} missing from: {text}");
        }
    }

    #[test]
    fn malformed_toml_is_an_error() {
        assert!(NodeConfig::parse("frame_max = ").is_err());
    }
}
