//! Reading a definitions file into the commands of one `Command::ImportDefinitions`.
//!
//! Everything is checked before anything is sent, and every wrong field is reported at once
//! (as `config.rs` does): an item that does not parse, an unknown hashing algorithm, a hash
//! that is not base64 of a salt and a digest, an exchange type or destination type Warren
//! does not know, a permission pattern that is not a regular expression, an argument that
//! is neither a string, an integer nor a boolean. What the state alone can judge (a queue
//! inequivalent to one already there) is judged at apply, all or nothing.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::json::{
    ArgumentsJson, BindingJson, ExchangeJson, PermissionJson, QueueJson, UserJson, VhostJson,
    SECTIONS, VERSION_KEYS,
};
use crate::broker::access::{HashingAlgorithm, PasswordHash, Permission};
use crate::broker::args::Arguments;
use crate::broker::command::Command;
use crate::broker::exchange::{ExchangeKind, HeaderValue};
use crate::broker::vhost::DEFAULT_VHOST;

/// A definitions file read and checked.
#[derive(Debug)]
pub struct Parsed {
    /// In dependency order: vhosts, users, permissions, exchanges, queues, bindings.
    pub commands: Vec<Command>,
    /// What the file holds that Warren does not import, one line each ("ignored: ...").
    pub ignored: Vec<String>,
}

/// Every problem found in a definitions file, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid definitions:\n  {}", .problems.join("\n  "))]
pub struct DefinitionsError {
    pub problems: Vec<String>,
    /// What would have been ignored, reported with the problems all the same.
    pub ignored: Vec<String>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &std::path::Path) -> anyhow::Result<Parsed> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read definitions file {}", path.display()))?;
    let parsed =
        parse(&text).with_context(|| format!("load definitions file {}", path.display()))?;
    Ok(parsed)
}

/// Parses definitions JSON, collecting every wrong field.
pub fn parse(text: &str) -> Result<Parsed, DefinitionsError> {
    let top: serde_json::Map<String, Value> =
        serde_json::from_str(text).map_err(|e| DefinitionsError {
            problems: vec![format!("not a JSON object: {e}")],
            ignored: Vec::new(),
        })?;
    let mut reader = Reader::default();
    for (key, value) in &top {
        if SECTIONS.contains(&key.as_str()) || VERSION_KEYS.contains(&key.as_str()) {
            continue;
        }
        let empty = matches!(value, Value::Array(a) if a.is_empty())
            || matches!(value, Value::Object(o) if o.is_empty());
        if !empty {
            reader
                .ignored
                .push(format!("ignored: {key} (not supported by Warren)"));
        }
    }
    let section = |name: &str| top.get(name).cloned().unwrap_or(Value::Array(Vec::new()));
    let vhosts: Vec<VhostJson> = reader.items("vhosts", section("vhosts"));
    let users: Vec<UserJson> = reader.items("users", section("users"));
    let permissions: Vec<PermissionJson> = reader.items("permissions", section("permissions"));
    let exchanges: Vec<ExchangeJson> = reader.items("exchanges", section("exchanges"));
    let queues: Vec<QueueJson> = reader.items("queues", section("queues"));
    let bindings: Vec<BindingJson> = reader.items("bindings", section("bindings"));
    for v in vhosts {
        reader.vhost(v);
    }
    for (i, u) in users.into_iter().enumerate() {
        reader.user(i, u);
    }
    for (i, p) in permissions.into_iter().enumerate() {
        reader.permission(i, p);
    }
    for (i, x) in exchanges.into_iter().enumerate() {
        reader.exchange(i, x);
    }
    for (i, q) in queues.into_iter().enumerate() {
        reader.queue(i, q);
    }
    for (i, b) in bindings.into_iter().enumerate() {
        reader.binding(i, b);
    }
    match reader.problems.is_empty() {
        true => Ok(Parsed {
            commands: reader.commands,
            ignored: reader.ignored,
        }),
        false => Err(DefinitionsError {
            problems: reader.problems,
            ignored: reader.ignored,
        }),
    }
}

#[derive(Default)]
struct Reader {
    commands: Vec<Command>,
    ignored: Vec<String>,
    problems: Vec<String>,
}

impl Reader {
    /// The items of section `name` that parse; a problem for each one that does not.
    fn items<T: DeserializeOwned>(&mut self, name: &str, section: Value) -> Vec<T> {
        let Value::Array(items) = section else {
            self.problems.push(format!("{name}: expected a list"));
            return Vec::new();
        };
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match serde_json::from_value(item) {
                Ok(item) => parsed.push(item),
                Err(e) => self.problems.push(format!("{name}[{i}]: {e}")),
            }
        }
        parsed
    }

    fn vhost(&mut self, v: VhostJson) {
        self.commands.push(Command::AddVhost { name: v.name });
    }

    fn user(&mut self, i: usize, u: UserJson) {
        let at = format!("users[{i}] ('{}')", u.name);
        let Some(algorithm) = HashingAlgorithm::from_rabbit_name(&u.hashing_algorithm) else {
            let known = "rabbit_password_hashing_sha256 or rabbit_password_hashing_sha512";
            let found = &u.hashing_algorithm;
            let text = format!("{at}.hashing_algorithm: '{found}' is not {known}");
            self.problems.push(text);
            return;
        };
        let password = PasswordHash {
            algorithm,
            hash: u.password_hash,
        };
        if !password.is_well_formed() {
            self.problems.push(format!(
                "{at}.password_hash: not base64 of a 4-byte salt and a {} digest",
                u.hashing_algorithm
            ));
        }
        if u.name.is_empty() {
            self.problems.push(format!("{at}.name: empty"));
        }
        self.commands.push(Command::PutUser {
            name: u.name,
            password,
            tags: u.tags.to_vec(),
            create_only: false,
        });
    }

    fn permission(&mut self, i: usize, p: PermissionJson) {
        for (what, pattern) in [
            ("configure", &p.configure),
            ("write", &p.write),
            ("read", &p.read),
        ] {
            if let Err(e) = regex::Regex::new(pattern) {
                let e = e.to_string().replace('\n', " ");
                self.problems.push(format!(
                    "permissions[{i}].{what}: '{pattern}' is not a regular expression: {e}"
                ));
            }
        }
        self.commands.push(Command::SetPermissions {
            user: p.user,
            vhost: p.vhost,
            permission: Permission {
                configure: p.configure,
                write: p.write,
                read: p.read,
            },
        });
    }

    fn exchange(&mut self, i: usize, x: ExchangeJson) {
        // The default and `amq.*` exchanges exist in every vhost and cannot be declared.
        if x.name.is_empty() || x.name.starts_with("amq.") {
            return;
        }
        let at = format!("exchanges[{i}] ('{}')", x.name);
        let kind = ExchangeKind::parse(&x.kind);
        if kind.is_none() {
            let text = format!(
                "{at}.type: '{}' is not direct, fanout, topic or headers",
                x.kind
            );
            self.problems.push(text);
        }
        let arguments = self.arguments(&at, x.arguments);
        let command = Command::ExchangeDeclare {
            name: x.name,
            kind: kind.unwrap_or(ExchangeKind::Direct),
            passive: false,
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments,
        };
        self.commands.push(in_vhost(x.vhost, command));
    }

    fn queue(&mut self, i: usize, q: QueueJson) {
        let at = format!("queues[{i}] ('{}')", q.name);
        if q.name.is_empty() {
            self.problems.push(format!("{at}.name: empty"));
        }
        let arguments = self.arguments(&at, q.arguments);
        let command = Command::QueueDeclare {
            name: q.name,
            passive: false,
            durable: q.durable,
            exclusive: false,
            auto_delete: q.auto_delete,
            arguments,
            conn: 0,
        };
        self.commands.push(in_vhost(q.vhost, command));
    }

    fn binding(&mut self, i: usize, b: BindingJson) {
        let at = format!("bindings[{i}]");
        let arguments = self.arguments(&at, b.arguments);
        let command = match b.destination_type.as_str() {
            "queue" => Command::QueueBind {
                queue: b.destination,
                exchange: b.source,
                routing_key: b.routing_key,
                arguments,
                conn: 0,
            },
            "exchange" => Command::ExchangeBind {
                destination: b.destination,
                source: b.source,
                routing_key: b.routing_key,
                arguments,
            },
            other => {
                let text = format!("{at}.destination_type: '{other}' is not queue or exchange");
                self.problems.push(text);
                return;
            }
        };
        self.commands.push(in_vhost(b.vhost, command));
    }

    fn arguments(&mut self, at: &str, arguments: ArgumentsJson) -> Arguments {
        let mut out = Vec::with_capacity(arguments.len());
        for (name, value) in arguments {
            let value = match value {
                Value::String(s) => HeaderValue::Str(s),
                Value::Bool(b) => HeaderValue::Bool(b),
                Value::Number(n) if n.as_i64().is_some() => {
                    HeaderValue::Int(n.as_i64().unwrap_or_default())
                }
                other => {
                    self.problems.push(format!(
                        "{at}.arguments.{name}: {other} is not a string, an integer or a boolean"
                    ));
                    continue;
                }
            };
            out.push((name, value));
        }
        out
    }
}

/// `command` in `vhost`, unscoped in `/` (as every command travels there).
fn in_vhost(vhost: String, command: Command) -> Command {
    match vhost == DEFAULT_VHOST {
        true => command,
        false => Command::InVhost {
            vhost,
            command: Box::new(command),
        },
    }
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
