//! Writing what a node applied as a RabbitMQ definitions file.
//!
//! Written as RabbitMQ 3.10 writes it (tags as one comma-separated string), without what
//! every vhost has anyway (the default and `amq.*` exchanges, the default exchange's
//! implicit bindings) and without exclusive queues (they belong to a connection), so that
//! exporting, importing into a fresh cluster and exporting again gives the same file.

use serde_json::Value;

use super::applied::Applied;
use super::json::{
    ArgumentsJson, BindingJson, ExchangeJson, File, PermissionJson, QueueJson, Tags, UserJson,
    VhostJson,
};
use crate::broker::args::Arguments;
use crate::broker::exchange::{Destination, HeaderValue};

/// The RabbitMQ version whose format this is.
pub const RABBIT_VERSION: &str = "3.10.0";

/// The definitions file of `applied`, as pretty JSON.
pub fn to_json(applied: &Applied) -> String {
    let file = file(applied);
    // Plain data (strings, numbers, maps with string keys): serialising cannot fail.
    serde_json::to_string_pretty(&file).unwrap_or_default() + "\n"
}

/// The definitions file of `applied`.
pub fn file(applied: &Applied) -> File {
    let users = applied.users.iter().map(|(name, u)| UserJson {
        name: name.clone(),
        password_hash: u.password.hash.clone(),
        hashing_algorithm: u.password.algorithm.rabbit_name().to_string(),
        tags: Tags::from_vec(&u.tags),
    });
    let vhosts = applied
        .vhosts
        .iter()
        .map(|name| VhostJson { name: name.clone() });
    let permissions = applied.permissions.iter().map(|p| PermissionJson {
        user: p.user.clone(),
        vhost: p.vhost.clone(),
        configure: p.permission.configure.clone(),
        write: p.permission.write.clone(),
        read: p.permission.read.clone(),
    });
    let queues = applied.queues.iter().filter(|q| !q.exclusive);
    let queues = queues.map(|q| QueueJson {
        name: q.name.clone(),
        vhost: q.vhost.clone(),
        durable: q.durable,
        auto_delete: q.auto_delete,
        arguments: arguments(&q.arguments),
    });
    let exchanges = applied.exchanges.iter();
    let exchanges = exchanges.filter(|x| !x.name.is_empty() && !x.name.starts_with("amq."));
    let exchanges = exchanges.map(|x| ExchangeJson {
        name: x.name.clone(),
        vhost: x.vhost.clone(),
        kind: x.kind.as_str().to_string(),
        durable: x.durable,
        auto_delete: x.auto_delete,
        internal: x.internal,
        arguments: arguments(&x.arguments),
    });
    let bindings = applied.bindings.iter().map(|b| {
        let (destination, destination_type) = match &b.destination {
            Destination::Queue(q) => (q.clone(), "queue"),
            Destination::Exchange(x) => (x.clone(), "exchange"),
        };
        BindingJson {
            source: b.source.clone(),
            vhost: b.vhost.clone(),
            destination,
            destination_type: destination_type.to_string(),
            routing_key: b.routing_key.clone(),
            arguments: arguments(&b.arguments),
        }
    });
    File {
        rabbit_version: RABBIT_VERSION.to_string(),
        rabbitmq_version: RABBIT_VERSION.to_string(),
        product_name: "Warren".to_string(),
        product_version: env!("CARGO_PKG_VERSION").to_string(),
        users: users.collect(),
        vhosts: vhosts.collect(),
        permissions: permissions.collect(),
        queues: queues.collect(),
        exchanges: exchanges.collect(),
        bindings: bindings.collect(),
    }
}

/// Arguments as JSON; a value of a type JSON has no match for (a float, a table, ...) is
/// written as the text Warren keeps of it.
pub fn arguments(arguments: &Arguments) -> ArgumentsJson {
    let value = |v: &HeaderValue| match v {
        HeaderValue::Str(s) => Value::String(s.clone()),
        HeaderValue::Int(i) => Value::from(*i),
        HeaderValue::Bool(b) => Value::Bool(*b),
        HeaderValue::Other(text) => Value::String(text.clone()),
    };
    arguments
        .iter()
        .map(|(name, v)| (name.clone(), value(v)))
        .collect()
}
