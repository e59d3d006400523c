//! What the front end reads of users, permissions and vhosts: built from the applied state
//! whenever its access version moves, with every permission's patterns compiled once, and
//! shared with every connection through a `watch` (no state lock on the AMQP path).
//!
//! A change takes effect on a node as soon as it applies the entry (DESIGN.md, "Tenants and
//! access"): each check reads the newest view.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::broker::access::{PasswordHash, Permission, User};
use crate::broker::state::BrokerState;
use crate::config::NodeConfig;

/// A permission's three patterns, compiled. RabbitMQ matches them unanchored; the empty
/// pattern matches nothing.
#[derive(Debug)]
pub struct Rights {
    configure: Option<regex::Regex>,
    write: Option<regex::Regex>,
    read: Option<regex::Regex>,
}

/// Which of a permission's patterns a method needs (RabbitMQ's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    Configure,
    Write,
    Read,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::Configure => "configure",
            Right::Write => "write",
            Right::Read => "read",
        }
    }
}

impl Rights {
    /// No right at all (a permission cleared while connected).
    pub fn none() -> Rights {
        Rights {
            configure: None,
            write: None,
            read: None,
        }
    }

    fn compile(permission: &Permission) -> Rights {
        // Patterns were checked when the entry was applied; one that does not compile here
        // (another regex build) grants nothing rather than everything.
        let compile = |p: &str| match p {
            "" => None,
            p => regex::Regex::new(p).ok(),
        };
        Rights {
            configure: compile(&permission.configure),
            write: compile(&permission.write),
            read: compile(&permission.read),
        }
    }

    /// Whether `right` covers the resource `name`.
    pub fn allows(&self, right: Right, name: &str) -> bool {
        let pattern = match right {
            Right::Configure => &self.configure,
            Right::Write => &self.write,
            Right::Read => &self.read,
        };
        pattern.as_ref().is_some_and(|p| p.is_match(name))
    }
}

/// Users, vhosts and compiled permissions as of one applied entry.
#[derive(Debug, Default)]
pub struct AccessView {
    /// The state's access version this view was built at.
    pub version: u64,
    /// False until the default user was written: only the config's default user logs in.
    pub initialized: bool,
    users: HashMap<String, User>,
    vhosts: HashSet<String>,
    rights: HashMap<(String, String), Arc<Rights>>,
}

/// Why a login or a vhost was refused (never says which of user and password was wrong).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Login,
    NoVhost,
    NoAccess,
}

impl AccessView {
    /// A placeholder until the state is read (at node start): refuses everything.
    pub fn unbuilt() -> AccessView {
        AccessView {
            version: u64::MAX,
            ..AccessView::default()
        }
    }

    pub fn build(broker: &BrokerState) -> AccessView {
        let access = &broker.access;
        let rights = access.permissions.iter().flat_map(|(user, per_vhost)| {
            per_vhost.iter().map(move |(vhost, permission)| {
                let rights = Arc::new(Rights::compile(permission));
                ((user.clone(), vhost.clone()), rights)
            })
        });
        AccessView {
            version: access.version,
            initialized: access.initialized,
            users: access
                .users
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            vhosts: broker.vhosts.keys().cloned().collect(),
            rights: rights.collect(),
        }
    }

    /// Whether `user` logs in with `password`. Before the cluster wrote its users, the
    /// node's configured default user does (with every right on `/`).
    pub fn authenticate(&self, config: &NodeConfig, user: &str, password: &[u8]) -> bool {
        if !self.initialized {
            return user == config.default_user && password == config.default_pass.as_bytes();
        }
        self.users
            .get(user)
            .is_some_and(|u| u.password.verify(password))
    }

    /// The user's tags (empty for an unknown user).
    pub fn tags(&self, user: &str) -> &[String] {
        self.users.get(user).map_or(&[], |u| u.tags.as_slice())
    }

    /// The rights `user` has in `vhost`, for connection.open.
    pub fn open(
        &self,
        config: &NodeConfig,
        user: &str,
        vhost: &str,
    ) -> Result<Arc<Rights>, Refused> {
        if !self.vhosts.contains(vhost) {
            return Err(Refused::NoVhost);
        }
        if !self.initialized && user == config.default_user && vhost == "/" {
            return Ok(Arc::new(Rights::compile(&Permission::all())));
        }
        let key = (user.to_string(), vhost.to_string());
        self.rights.get(&key).cloned().ok_or(Refused::NoAccess)
    }
}

/// A new hash of `password` in RabbitMQ's default format, with a random 4-byte salt.
pub fn hash_password(password: &[u8]) -> PasswordHash {
    let mut salt = [0u8; 4];
    // No randomness is a broken machine: a fixed salt still verifies, only weaker.
    if let Err(e) = getrandom::fill(&mut salt) {
        tracing::warn!(error = %e, "no random salt");
    }
    PasswordHash::new(salt, password)
}
