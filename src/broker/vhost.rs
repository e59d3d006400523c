//! Virtual hosts: every exchange, queue and binding belongs to one; the same name in two
//! vhosts is two entities.
//!
//! A command is applied in one vhost. Its exchanges and queues are moved into the state's
//! working place ([`BrokerState`]'s `here`) for the time of the command, so the model's
//! code (declare, route, deliver, dead-letter) works on one namespace and never mixes two.
//! The move is a swap of two maps, not a copy. What belongs to no vhost stays where it is:
//! stored messages (by id), channel limits (by connection and channel), users and
//! permissions.
//!
//! A command travels unscoped when it is in `/` (so the log of a cluster that never made a
//! vhost reads as before) and inside `Command::InVhost` otherwise. A command that names
//! only connections (a connection closed, a node down) or only time (`Tick`) is applied in
//! every vhost: the node that proposes it may not know where the connection was.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::{Command, Outcome, Refusal, Reply};
use super::exchange::{Exchange, ExchangeKind};
use super::state::{BrokerState, Effects, QueueEntry};

/// The vhost a fresh cluster has, and the one of every unscoped command.
pub const DEFAULT_VHOST: &str = "/";

/// One virtual host's exchanges and queues.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vhost {
    pub exchanges: BTreeMap<String, Exchange>,
    pub queues: BTreeMap<String, QueueEntry>,
}

impl Vhost {
    /// A new vhost with the predeclared exchanges every RabbitMQ vhost has.
    pub fn with_builtins() -> Vhost {
        let builtin = [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ];
        let exchanges = builtin
            .iter()
            .map(|(n, k)| (n.to_string(), Exchange::new(*k)))
            .collect();
        Vhost {
            exchanges,
            queues: BTreeMap::new(),
        }
    }

    /// Nothing at all (the working place between commands).
    pub fn empty() -> Vhost {
        Vhost {
            exchanges: BTreeMap::new(),
            queues: BTreeMap::new(),
        }
    }
}

/// Where a command is applied.
pub(super) enum Scope {
    /// In one vhost.
    In(String),
    /// In every vhost, one after the other (in name order), outcomes merged.
    Everywhere,
    /// Outside any vhost: users, permissions, the vhosts themselves.
    Cluster,
}

/// Where `command` applies, and the command itself (unwrapped from `InVhost`).
pub(super) fn scope_of(command: Command) -> (Scope, Command) {
    match command {
        Command::InVhost { vhost, command } => (Scope::In(vhost), *command),
        c @ (Command::ConnectionClosed { .. } | Command::NodeDown { .. } | Command::Tick) => {
            (Scope::Everywhere, c)
        }
        c if c.is_cluster_wide() => (Scope::Cluster, c),
        c => (Scope::In(DEFAULT_VHOST.to_string()), c),
    }
}

impl BrokerState {
    /// Runs `f` with vhost `name`'s exchanges and queues in the working place; `None` when
    /// there is no such vhost.
    pub(super) fn in_vhost<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        let slot = self.vhosts.get_mut(name)?;
        debug_assert!(self.here.exchanges.is_empty() && self.here.queues.is_empty());
        std::mem::swap(&mut self.here, slot);
        if self.here_name != name {
            self.here_name = name.to_string();
        }
        let result = f(self);
        if let Some(slot) = self.vhosts.get_mut(name) {
            std::mem::swap(&mut self.here, slot);
        }
        Some(result)
    }

    /// Applies `command` in vhost `name`. A missing vhost is a 404 refusal: its connections
    /// were closed when it went, and a late command of one finds nothing.
    pub(super) fn apply_in(&mut self, name: &str, command: Command) -> Outcome {
        self.in_vhost(name, |s| s.apply_here(command))
            .unwrap_or_else(|| Outcome::refused(Refusal::no_vhost(name)))
    }

    /// Applies `command` in every vhost, in name order, and merges what each produced.
    pub(super) fn apply_everywhere(&mut self, command: Command) -> Outcome {
        let names: Vec<String> = self.vhosts.keys().cloned().collect();
        let mut merged = Outcome::done();
        for name in names {
            let outcome = self.apply_in(&name, command.clone());
            merged.deliveries.extend(outcome.deliveries);
            merged.released.extend(outcome.released);
            merged.cancelled.extend(outcome.cancelled);
        }
        merged
    }

    /// vhost.add: a new vhost with the builtin exchanges; refused when it exists.
    pub(super) fn add_vhost(&mut self, name: String) -> Result<Reply, Refusal> {
        if name.is_empty() {
            return Err(Refusal::precondition_failed(
                "a vhost name cannot be empty".to_string(),
            ));
        }
        if self.vhosts.contains_key(&name) {
            return Err(Refusal::precondition_failed(format!(
                "vhost '{name}' already exists"
            )));
        }
        self.vhosts.insert(name, Vhost::with_builtins());
        Ok(Reply::Done)
    }

    /// vhost.delete: every queue in it goes (consumers cancelled, messages dropped), then the
    /// vhost and every permission on it. The nodes close its connections (320) when they see
    /// `Outcome::vhost_deleted`.
    pub(super) fn delete_vhost(&mut self, name: &str) -> Outcome {
        if !self.vhosts.contains_key(name) {
            return Outcome::refused(Refusal::no_vhost(name));
        }
        let purged = self.in_vhost(name, |s| {
            let mut fx = Effects::default();
            let names: Vec<String> = s.here.queues.keys().cloned().collect();
            for queue in names {
                s.remove_queue(&queue, &mut fx);
            }
            s.finish(Ok(Reply::Done), fx)
        });
        let mut outcome = purged.unwrap_or_else(Outcome::done);
        self.vhosts.remove(name);
        self.access.forget_vhost(name);
        outcome.vhost_deleted = Some(name.to_string());
        outcome
    }
}
