//! Users, their password hashes and tags, and their permissions in each vhost: replicated
//! state, changed only by log entries, read by every node's front end.
//!
//! Passwords never reach the log: a command carries a hash in RabbitMQ's format
//! (`rabbit_password_hashing_sha256`: base64 of a 4-byte salt followed by
//! SHA-256(salt || password)), made by whoever proposes it, so definitions move between
//! RabbitMQ and Warren with their passwords intact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::command::{Command, Outcome, Refusal, Reply};
use super::state::BrokerState;
use super::vhost::DEFAULT_VHOST;

/// How a password hash was made: RabbitMQ's `hashing_algorithm` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashingAlgorithm {
    Sha256,
    Sha512,
}

impl HashingAlgorithm {
    /// The name RabbitMQ's definitions give it.
    pub fn rabbit_name(self) -> &'static str {
        match self {
            HashingAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashingAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
        }
    }

    pub fn from_rabbit_name(name: &str) -> Option<HashingAlgorithm> {
        match name {
            "rabbit_password_hashing_sha256" => Some(HashingAlgorithm::Sha256),
            "rabbit_password_hashing_sha512" => Some(HashingAlgorithm::Sha512),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashingAlgorithm::Sha256 => sha2::Sha256::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            HashingAlgorithm::Sha512 => sha2::Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        }
    }
}

/// A salted password hash; an empty `hash` lets no password in (RabbitMQ's
/// `clear_password`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    pub algorithm: HashingAlgorithm,
    /// base64(salt || digest), as in RabbitMQ's definitions.
    pub hash: String,
}

/// A hash is no password, but it is not for logs either.
impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash({:?}, ..)", self.algorithm)
    }
}

const SALT_LEN: usize = 4;

impl PasswordHash {
    /// The hash of `password` with `salt` (the caller draws the salt: the model has no
    /// randomness).
    pub fn new(salt: [u8; SALT_LEN], password: &[u8]) -> PasswordHash {
        use base64::Engine;
        let algorithm = HashingAlgorithm::Sha256;
        let mut bytes = salt.to_vec();
        bytes.extend(algorithm.digest(&salt, password));
        PasswordHash {
            algorithm,
            hash: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// Whether `password` is the one hashed; constant time in the digest's bytes.
    pub fn verify(&self, password: &[u8]) -> bool {
        use base64::Engine;
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&self.hash) else {
            return false;
        };
        if bytes.len() <= SALT_LEN {
            return false;
        }
        let (salt, digest) = bytes.split_at(SALT_LEN);
        let expected = self.algorithm.digest(salt, password);
        expected.len() == digest.len()
            && expected
                .iter()
                .zip(digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Whether `hash` is well-formed base64 of a salt and a digest of the algorithm's size
    /// (or empty: no password).
    pub fn is_well_formed(&self) -> bool {
        use base64::Engine;
        if self.hash.is_empty() {
            return true;
        }
        let digest_len = match self.algorithm {
            HashingAlgorithm::Sha256 => 32,
            HashingAlgorithm::Sha512 => 64,
        };
        let decoded = base64::engine::general_purpose::STANDARD.decode(&self.hash);
        decoded.is_ok_and(|b| b.len() == SALT_LEN + digest_len)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub password: PasswordHash,
    /// `administrator`, `monitoring`, `management`, `policymaker`, or any other string.
    pub tags: Vec<String>,
}

/// A user's rights in one vhost: regular expressions over resource names (RabbitMQ's; the
/// empty string matches nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Permission {
    /// Everything (`.*` three times): the default user's on `/`.
    pub fn all() -> Permission {
        Permission {
            configure: ".*".to_string(),
            write: ".*".to_string(),
            read: ".*".to_string(),
        }
    }

    /// The first pattern that is not a valid regular expression, as a refusal.
    fn check(&self) -> Result<(), Refusal> {
        for (what, pattern) in [
            ("configure", &self.configure),
            ("write", &self.write),
            ("read", &self.read),
        ] {
            if let Err(e) = regex::Regex::new(pattern) {
                let e = e.to_string().replace('\n', " ");
                return Err(Refusal::precondition_failed(format!(
                    "invalid {what} regular expression '{pattern}': {e}"
                )));
            }
        }
        Ok(())
    }
}

/// Users and permissions, as every node has applied them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Access {
    /// False until the default user was written (`Command::InitAccess`); until then a node
    /// lets in only the default user of its own config, as before users were replicated.
    pub initialized: bool,
    pub users: BTreeMap<String, User>,
    /// user -> vhost -> permission.
    pub permissions: BTreeMap<String, BTreeMap<String, Permission>>,
    /// Moves at every change of users, permissions or vhosts: the nodes republish what
    /// their front ends read when it moves.
    pub version: u64,
}

impl Access {
    /// Notes a change.
    pub(super) fn touch(&mut self) {
        self.version += 1;
    }

    /// Drops every permission on a deleted vhost.
    pub(super) fn forget_vhost(&mut self, vhost: &str) {
        for per_vhost in self.permissions.values_mut() {
            per_vhost.remove(vhost);
        }
        self.permissions
            .retain(|_, per_vhost| !per_vhost.is_empty());
        self.touch();
    }

    /// `user`'s permission in `vhost`, if any.
    pub fn permission(&self, user: &str, vhost: &str) -> Option<&Permission> {
        self.permissions.get(user)?.get(vhost)
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User, Refusal> {
        self.users
            .get_mut(name)
            .ok_or_else(|| Refusal::no_user(name))
    }
}

impl BrokerState {
    /// Applies a command about users, permissions or vhosts; a refused one changes nothing.
    pub(super) fn apply_cluster_wide(&mut self, command: Command) -> Outcome {
        let reply = match command {
            Command::DeleteVhost { name } => return self.delete_vhost(&name),
            Command::AddVhost { name } => self.add_vhost(name),
            Command::PutUser {
                name,
                password,
                tags,
                create_only,
            } => self.put_user(name, password, tags, create_only),
            Command::DeleteUser { name } => match self.access.users.remove(&name) {
                Some(_) => {
                    self.access.permissions.remove(&name);
                    Ok(Reply::Done)
                }
                None => Err(Refusal::no_user(&name)),
            },
            Command::ChangePassword { name, password } => well_formed(&password).and_then(|()| {
                self.access.user_mut(&name)?.password = password;
                Ok(Reply::Done)
            }),
            Command::SetUserTags { name, tags } => self.access.user_mut(&name).map(|user| {
                user.tags = tags;
                Reply::Done
            }),
            Command::SetPermissions {
                user,
                vhost,
                permission,
            } => self.set_permissions(user, vhost, permission),
            Command::ClearPermissions { user, vhost } => {
                let per_vhost = self.access.permissions.get_mut(&user);
                if let Some(per_vhost) = per_vhost {
                    per_vhost.remove(&vhost);
                }
                self.access.permissions.retain(|_, p| !p.is_empty());
                Ok(Reply::Done)
            }
            Command::InitAccess { user, password } => self.init_access(user, password),
            Command::ImportDefinitions { commands } => return self.import_definitions(commands),
            other => {
                debug_assert!(false, "not cluster-wide: {other:?}");
                Ok(Reply::Done)
            }
        };
        if reply.is_ok() {
            self.access.touch();
        }
        Outcome::reply(reply)
    }

    fn put_user(
        &mut self,
        name: String,
        password: PasswordHash,
        tags: Vec<String>,
        create_only: bool,
    ) -> Result<Reply, Refusal> {
        well_formed(&password)?;
        if name.is_empty() {
            let text = "a user name cannot be empty".to_string();
            return Err(Refusal::precondition_failed(text));
        }
        if create_only && self.access.users.contains_key(&name) {
            let text = format!("user '{name}' already exists");
            return Err(Refusal::precondition_failed(text));
        }
        self.access.users.insert(name, User { password, tags });
        Ok(Reply::Done)
    }

    fn set_permissions(
        &mut self,
        user: String,
        vhost: String,
        permission: Permission,
    ) -> Result<Reply, Refusal> {
        if !self.access.users.contains_key(&user) {
            return Err(Refusal::no_user(&user));
        }
        if !self.vhosts.contains_key(&vhost) {
            return Err(Refusal::no_vhost(&vhost));
        }
        permission.check()?;
        let per_vhost = self.access.permissions.entry(user).or_default();
        per_vhost.insert(vhost, permission);
        Ok(Reply::Done)
    }

    /// The default user, once: a cluster whose users were set up never gets it back.
    fn init_access(&mut self, user: String, password: PasswordHash) -> Result<Reply, Refusal> {
        if self.access.initialized {
            return Ok(Reply::Done);
        }
        well_formed(&password)?;
        self.access.initialized = true;
        if self.vhosts.contains_key(DEFAULT_VHOST) {
            let per_vhost = self.access.permissions.entry(user.clone()).or_default();
            per_vhost.insert(DEFAULT_VHOST.to_string(), Permission::all());
        }
        let tags = vec!["administrator".to_string()];
        self.access.users.insert(user, User { password, tags });
        Ok(Reply::Done)
    }
}

fn well_formed(password: &PasswordHash) -> Result<(), Refusal> {
    match password.is_well_formed() {
        true => Ok(()),
        false => Err(Refusal::precondition_failed(
            "the password hash is not base64 of a salt and a digest".to_string(),
        )),
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
