//! RabbitMQ's definitions file, as serde types: what `rabbitmqctl export_definitions` and the
//! management API write, and what Warren reads and writes (docs/formats.md).
//!
//! Fields Warren does not use (a vhost's `limits` and `metadata`, a user's `limits`) are
//! accepted and dropped on import. A section Warren does not support (`parameters`,
//! `policies`, `global_parameters`, `topic_permissions`) is reported, not fatal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The top-level sections Warren imports; any other is reported as ignored.
pub const SECTIONS: [&str; 6] = [
    "users",
    "vhosts",
    "permissions",
    "exchanges",
    "queues",
    "bindings",
];

/// Top-level keys that describe the file rather than hold definitions.
pub const VERSION_KEYS: [&str; 4] = [
    "rabbit_version",
    "rabbitmq_version",
    "product_name",
    "product_version",
];

/// The whole file as Warren writes it (field order as RabbitMQ 3.10's export).
#[derive(Debug, Serialize)]
pub struct File {
    pub rabbit_version: String,
    pub rabbitmq_version: String,
    pub product_name: String,
    pub product_version: String,
    pub users: Vec<UserJson>,
    pub vhosts: Vec<VhostJson>,
    pub permissions: Vec<PermissionJson>,
    pub queues: Vec<QueueJson>,
    pub exchanges: Vec<ExchangeJson>,
    pub bindings: Vec<BindingJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UserJson {
    pub name: String,
    pub password_hash: String,
    #[serde(default = "default_hashing_algorithm")]
    pub hashing_algorithm: String,
    #[serde(default)]
    pub tags: Tags,
}

fn default_hashing_algorithm() -> String {
    crate::broker::access::HashingAlgorithm::Sha256
        .rabbit_name()
        .to_string()
}

/// A user's tags: a list (RabbitMQ 3.11+ and the management API) or one comma-separated
/// string (what RabbitMQ 3.10 exports, and what Warren writes).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    Text(String),
    List(Vec<String>),
}

impl Default for Tags {
    fn default() -> Tags {
        Tags::Text(String::new())
    }
}

impl Tags {
    pub fn to_vec(&self) -> Vec<String> {
        let tags: Vec<String> = match self {
            Tags::Text(text) => text.split(',').map(|t| t.trim().to_string()).collect(),
            Tags::List(list) => list.iter().map(|t| t.trim().to_string()).collect(),
        };
        tags.into_iter().filter(|t| !t.is_empty()).collect()
    }

    pub fn from_vec(tags: &[String]) -> Tags {
        Tags::Text(tags.join(","))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VhostJson {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PermissionJson {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// Declare arguments as JSON: strings, integers and booleans.
pub type ArgumentsJson = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Serialize, Deserialize)]
pub struct QueueJson {
    pub name: String,
    pub vhost: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: ArgumentsJson,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExchangeJson {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: ArgumentsJson,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BindingJson {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: ArgumentsJson,
}

fn yes() -> bool {
    true
}
