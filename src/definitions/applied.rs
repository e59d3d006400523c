//! What one node has applied of users, vhosts, permissions, exchanges, queues, bindings and
//! consumers: the answer to `PeerRequest::Definitions`, read by the CLI's `list_*` commands
//! and `export_definitions`.
//!
//! Architecture invariant 4: this travels on the wire (postcard), so its fields are only
//! ever appended, with the wire version bumped. It holds password hashes, never passwords.

use serde::{Deserialize, Serialize};

use crate::broker::access::{Permission, User};
use crate::broker::args::Arguments;
use crate::broker::exchange::{Destination, ExchangeKind};
use crate::broker::state::BrokerState;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// By name.
    pub users: Vec<(String, User)>,
    pub vhosts: Vec<String>,
    pub permissions: Vec<PermissionRow>,
    /// Every exchange but the default one (which has no entry), builtins included.
    pub exchanges: Vec<ExchangeRow>,
    pub queues: Vec<QueueRow>,
    /// Explicit bindings only: the default exchange's implicit ones are not stored.
    pub bindings: Vec<BindingRow>,
    pub consumers: Vec<ConsumerRow>,
    /// The connections the state refers to (holding consumers, unacked messages or
    /// exclusive queues): an idle connection leaves no trace in the replicated state.
    pub connections: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PermissionRow {
    pub user: String,
    pub vhost: String,
    pub permission: Permission,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRow {
    pub vhost: String,
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Arguments,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    pub vhost: String,
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: Arguments,
    pub messages_ready: u64,
    pub messages_unacknowledged: u64,
    pub consumers: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BindingRow {
    pub vhost: String,
    pub source: String,
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: Arguments,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerRow {
    pub vhost: String,
    pub queue: String,
    pub conn: u64,
    pub channel: u16,
    pub tag: String,
    pub ack_required: bool,
    pub prefetch: u32,
    pub exclusive: bool,
}

impl Applied {
    /// Reads it from an applied state.
    pub fn of(state: &BrokerState) -> Applied {
        let access = &state.access;
        let users = access.users.iter().map(|(n, u)| (n.clone(), u.clone()));
        let permissions = access.permissions.iter().flat_map(|(user, per_vhost)| {
            per_vhost.iter().map(move |(vhost, p)| PermissionRow {
                user: user.clone(),
                vhost: vhost.clone(),
                permission: p.clone(),
            })
        });
        let mut applied = Applied {
            users: users.collect(),
            vhosts: state.vhosts.keys().cloned().collect(),
            permissions: permissions.collect(),
            connections: state.connections().into_iter().collect(),
            ..Applied::default()
        };
        for (vhost, v) in &state.vhosts {
            applied.add_exchanges(vhost, v);
        }
        for (vhost, name, entry) in state.all_queues() {
            applied.queues.push(QueueRow {
                vhost: vhost.to_string(),
                name: name.to_string(),
                durable: entry.durable,
                auto_delete: entry.auto_delete,
                exclusive: entry.exclusive_conn.is_some(),
                arguments: entry.arguments.clone(),
                messages_ready: entry.queue.n_ready() as u64,
                messages_unacknowledged: entry.queue.n_unacked() as u64,
                consumers: entry.queue.n_consumers() as u64,
            });
            for c in entry.queue.consumers() {
                applied.consumers.push(ConsumerRow {
                    vhost: vhost.to_string(),
                    queue: name.to_string(),
                    conn: c.key.conn,
                    channel: c.key.channel,
                    tag: c.key.tag.clone(),
                    ack_required: !c.no_ack,
                    prefetch: c.prefetch,
                    exclusive: c.exclusive,
                });
            }
        }
        applied
    }

    fn add_exchanges(&mut self, vhost: &str, v: &crate::broker::vhost::Vhost) {
        for (name, x) in &v.exchanges {
            // The exchange keeps its alternate exchange parsed: the only argument it acts on.
            let arguments = x.alternate_exchange.iter().map(|ae| {
                let value = crate::broker::exchange::HeaderValue::Str(ae.clone());
                ("alternate-exchange".to_string(), value)
            });
            self.exchanges.push(ExchangeRow {
                vhost: vhost.to_string(),
                name: name.clone(),
                kind: x.kind,
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: arguments.collect(),
            });
            for b in &x.bindings {
                self.bindings.push(BindingRow {
                    vhost: vhost.to_string(),
                    source: name.clone(),
                    destination: b.destination.clone(),
                    routing_key: b.routing_key.clone(),
                    arguments: b.arguments.clone(),
                });
            }
        }
    }

    /// The user `name`, if any.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|(n, _)| n == name).map(|(_, u)| u)
    }
}
