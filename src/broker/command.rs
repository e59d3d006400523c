//! Commands: every change to broker state, as it travels in a Raft entry.
//!
//! Architecture invariant 4: this enum is a compatibility boundary (it is written to the log
//! with postcard). Variants are only ever appended, never reordered or removed.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::access::{PasswordHash, Permission};
use super::args::Arguments;
use super::dead_letter::{Death, DeathReason};
use super::exchange::{ExchangeKind, HeaderValue};
use super::queue::{ConsumerKey, Delivery};
use super::state::StoredMessage;

/// A message as published: raw content-header properties (kept verbatim) and the body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub properties: Bytes,
    pub body: Bytes,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// exchange.declare; `alternate-exchange` travels in `arguments`.
    ExchangeDeclare {
        name: String,
        kind: ExchangeKind,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Arguments,
    },
    ExchangeDelete {
        name: String,
        if_unused: bool,
    },
    /// queue.declare from connection `conn` (the owner when `exclusive`).
    QueueDeclare {
        name: String,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: Arguments,
        conn: u64,
    },
    QueueDelete {
        name: String,
        if_unused: bool,
        if_empty: bool,
        conn: u64,
    },
    QueuePurge {
        name: String,
        conn: u64,
    },
    QueueBind {
        queue: String,
        exchange: String,
        routing_key: String,
        arguments: Arguments,
        conn: u64,
    },
    Publish {
        exchange: String,
        routing_key: String,
        mandatory: bool,
        headers: Vec<(String, HeaderValue)>,
        content: Content,
        /// The `expiration` property in ms, parsed by the front end (per-message TTL).
        expiration_ms: Option<u64>,
    },
    Consume {
        queue: String,
        consumer: ConsumerKey,
        prefetch: u32,
        no_ack: bool,
        /// basic.consume(exclusive): refused (403) unless the queue has no consumer, and
        /// refuses every later consumer while registered.
        exclusive: bool,
    },
    Cancel {
        queue: String,
        consumer: ConsumerKey,
    },
    /// basic.ack: the messages are done with.
    Settle {
        queue: String,
        msg_ids: Vec<u64>,
        conn: u64,
        channel: u16,
    },
    Requeue {
        queue: String,
        msg_ids: Vec<u64>,
        conn: u64,
        channel: u16,
    },
    ChannelClosed {
        conn: u64,
        channel: u16,
    },
    /// basic.get: take the head message for `holder`'s channel.
    Get {
        queue: String,
        holder: ConsumerKey,
        no_ack: bool,
    },
    /// queue.unbind; unbinding a binding that does not exist is unbind-ok (RabbitMQ 3.10).
    QueueUnbind {
        queue: String,
        exchange: String,
        routing_key: String,
        arguments: Arguments,
        conn: u64,
    },
    /// exchange.bind: messages routed by `source` also go through `destination`.
    ExchangeBind {
        destination: String,
        source: String,
        routing_key: String,
        arguments: Arguments,
    },
    /// exchange.unbind; idempotent like QueueUnbind.
    ExchangeUnbind {
        destination: String,
        source: String,
        routing_key: String,
        arguments: Arguments,
    },
    /// A connection ended: its deliveries return to their queues, its consumers and its
    /// exclusive queues go (covers every channel: no ChannelClosed is needed first).
    ConnectionClosed {
        conn: u64,
    },
    /// basic.recover(requeue=true) on a channel: its unacked deliveries return to their
    /// queues as redelivered; consumers stay.
    Recover {
        conn: u64,
        channel: u16,
    },
    /// Nothing but time passing: expires messages in every queue. The leader proposes it
    /// periodically so TTLs act without other traffic.
    Tick,
    /// basic.nack/basic.reject with requeue=false: the messages die in the queue and are
    /// dead-lettered (x-dead-letter-exchange), or dropped when it has none.
    Reject {
        queue: String,
        msg_ids: Vec<u64>,
        conn: u64,
        channel: u16,
    },
    /// basic.qos(global=true): at most `prefetch` unacked deliveries over all the channel's
    /// consumers (0: no limit). Takes effect at once; a raise may release held messages.
    ChannelQos {
        conn: u64,
        channel: u16,
        prefetch: u32,
    },
    /// The leader of `term` found the node of these connections down (`server/node_down.rs`):
    /// each is closed as by ConnectionClosed, but only by an entry of that same term. A
    /// deposed leader's decision (it was cut off and took the others for down) can reach the
    /// log later, re-proposed by its proposer to the next leader; by then the nodes it named
    /// may be serving, and closing their connections would take messages from live
    /// consumers. The state machine drops it then (`raft/state_machine.rs`).
    NodeDown {
        conns: Vec<u64>,
        term: u64,
    },
    /// The cluster moves to state-machine `version` (`raft/envelope.rs`): proposed by the
    /// leader once every member supports it; applied by the state machine, not the model.
    SetMachineVersion {
        version: u16,
    },
    /// The connection holding `consumer` wrote `n` more of its deliveries to the socket:
    /// a consumer its prefetch does not bound (no_ack, prefetch 0) gets that much of its
    /// credit window back and is served (`queue.rs`, rabbit_fifo's credit). A consumer that
    /// is gone, or bound by its prefetch, is left as it is. Machine version 1.
    Credit {
        queue: String,
        consumer: ConsumerKey,
        n: u32,
    },
    /// `command` in vhost `vhost` (`vhost.rs`); a command outside this wrapper is in `/`.
    /// Machine version 2, as every variant after it.
    InVhost {
        vhost: String,
        command: Box<Command>,
    },
    /// add_vhost: a new vhost with the builtin exchanges.
    AddVhost {
        name: String,
    },
    /// delete_vhost: the vhost and all it holds; its connections are closed (320).
    DeleteVhost {
        name: String,
    },
    /// add_user (`create_only`: refused when the user exists) or a user written whole
    /// (definitions, the HTTP API's PUT). Only the hash travels: never a password.
    PutUser {
        name: String,
        password: PasswordHash,
        tags: Vec<String>,
        create_only: bool,
    },
    DeleteUser {
        name: String,
    },
    ChangePassword {
        name: String,
        password: PasswordHash,
    },
    SetUserTags {
        name: String,
        tags: Vec<String>,
    },
    /// set_permissions: configure, write and read regular expressions of `user` in `vhost`.
    SetPermissions {
        user: String,
        vhost: String,
        permission: Permission,
    },
    ClearPermissions {
        user: String,
        vhost: String,
    },
    /// The cluster's first leader at machine version 2 writes the configured default user
    /// (RabbitMQ's `default_user`) with every permission on `/`; applied once in a cluster's
    /// life (later ones change nothing), so a restart with another config changes nothing.
    InitAccess {
        user: String,
        password: PasswordHash,
    },
    /// import_definitions: vhosts, users, permissions, exchanges, queues and bindings (the
    /// commands above, `InVhost`-wrapped where not in `/`) applied all or nothing: when one
    /// is refused none is applied, and the refusal names it (`broker/import.rs`).
    ImportDefinitions {
        commands: Vec<Command>,
    },
    /// basic.consume with a consumer priority (`x-priority`, RabbitMQ's consumer
    /// priorities): as `Consume`, and the queue serves it before every consumer of a lower
    /// priority that has credit (`queue.rs`). Machine version 4; the front end proposes the
    /// plain `Consume` for priority 0, and at older versions, where priority is ignored.
    ConsumeWithPriority {
        queue: String,
        consumer: ConsumerKey,
        prefetch: u32,
        no_ack: bool,
        exclusive: bool,
        priority: i32,
    },
}

impl Command {
    /// The state-machine version that brought vhosts, users and permissions.
    pub const ACCESS_MACHINE_VERSION: u16 = 2;
    /// The state-machine version from which apply follows RabbitMQ 3.10 where version 2
    /// did not (issue 16): a requeued message returns to its place in the queue, not to its
    /// head, and unbinding a binding, queue or exchange that does not exist is unbind-ok.
    /// No command is new, so none needs it to be proposed.
    pub const COMPAT_MACHINE_VERSION: u16 = 3;
    /// The state-machine version that brought the queue features of issue 16: consumer
    /// priorities (`ConsumeWithPriority`), priority queues and single active consumer
    /// (`x-max-priority`, `x-single-active-consumer` on a `QueueDeclare`, checked and acted
    /// on from this version; the same command below it makes a plain queue, as before).
    pub const QUEUE_FEATURES_MACHINE_VERSION: u16 = 4;
    /// The newest rules the model knows; what a state on its own (tests) follows.
    pub const NEWEST_MACHINE_VERSION: u16 = Command::QUEUE_FEATURES_MACHINE_VERSION;

    /// Whether the command is about the cluster's users, permissions or vhosts rather than
    /// what one vhost holds.
    pub fn is_cluster_wide(&self) -> bool {
        matches!(
            self,
            Command::AddVhost { .. }
                | Command::DeleteVhost { .. }
                | Command::PutUser { .. }
                | Command::DeleteUser { .. }
                | Command::ChangePassword { .. }
                | Command::SetUserTags { .. }
                | Command::SetPermissions { .. }
                | Command::ClearPermissions { .. }
                | Command::InitAccess { .. }
                | Command::ImportDefinitions { .. }
        )
    }

    /// The variant's name, for messages and the golden tests. No wildcard arm: a new
    /// variant does not compile until it is named here.
    pub fn name(&self) -> &'static str {
        match self {
            Command::ExchangeDeclare { .. } => "ExchangeDeclare",
            Command::ExchangeDelete { .. } => "ExchangeDelete",
            Command::QueueDeclare { .. } => "QueueDeclare",
            Command::QueueDelete { .. } => "QueueDelete",
            Command::QueuePurge { .. } => "QueuePurge",
            Command::QueueBind { .. } => "QueueBind",
            Command::Publish { .. } => "Publish",
            Command::Consume { .. } => "Consume",
            Command::Cancel { .. } => "Cancel",
            Command::Settle { .. } => "Settle",
            Command::Requeue { .. } => "Requeue",
            Command::ChannelClosed { .. } => "ChannelClosed",
            Command::Get { .. } => "Get",
            Command::QueueUnbind { .. } => "QueueUnbind",
            Command::ExchangeBind { .. } => "ExchangeBind",
            Command::ExchangeUnbind { .. } => "ExchangeUnbind",
            Command::ConnectionClosed { .. } => "ConnectionClosed",
            Command::Recover { .. } => "Recover",
            Command::Tick => "Tick",
            Command::Reject { .. } => "Reject",
            Command::ChannelQos { .. } => "ChannelQos",
            Command::NodeDown { .. } => "NodeDown",
            Command::SetMachineVersion { .. } => "SetMachineVersion",
            Command::Credit { .. } => "Credit",
            Command::InVhost { .. } => "InVhost",
            Command::AddVhost { .. } => "AddVhost",
            Command::DeleteVhost { .. } => "DeleteVhost",
            Command::PutUser { .. } => "PutUser",
            Command::DeleteUser { .. } => "DeleteUser",
            Command::ChangePassword { .. } => "ChangePassword",
            Command::SetUserTags { .. } => "SetUserTags",
            Command::SetPermissions { .. } => "SetPermissions",
            Command::ClearPermissions { .. } => "ClearPermissions",
            Command::InitAccess { .. } => "InitAccess",
            Command::ImportDefinitions { .. } => "ImportDefinitions",
            Command::ConsumeWithPriority { .. } => "ConsumeWithPriority",
        }
    }

    /// The oldest state-machine version that applies this command (`raft/envelope.rs`):
    /// a node must not propose it before the cluster runs that version.
    pub fn machine_version_min(&self) -> u16 {
        match self {
            Command::ConsumeWithPriority { .. } => Command::QUEUE_FEATURES_MACHINE_VERSION,
            Command::InVhost { command, .. } => {
                (command.machine_version_min()).max(Command::ACCESS_MACHINE_VERSION)
            }
            c if c.is_cluster_wide() => Command::ACCESS_MACHINE_VERSION,
            _ => 1,
        }
    }
}

/// A channel error for the client: the AMQP reply code and text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reply_code: u16,
    pub reply_text: String,
}

impl Refusal {
    fn new(reply_code: u16, reply_text: String) -> Refusal {
        Refusal {
            reply_code,
            reply_text,
        }
    }
    pub fn no_queue(vhost: &str, name: &str) -> Refusal {
        Refusal::new(
            404,
            format!("NOT_FOUND - no queue '{name}' in vhost '{vhost}'"),
        )
    }
    pub fn no_exchange(vhost: &str, name: &str) -> Refusal {
        Refusal::new(
            404,
            format!("NOT_FOUND - no exchange '{name}' in vhost '{vhost}'"),
        )
    }
    pub fn no_vhost(name: &str) -> Refusal {
        Refusal::new(404, format!("NOT_FOUND - no vhost '{name}'"))
    }
    pub fn no_user(name: &str) -> Refusal {
        Refusal::new(404, format!("NOT_FOUND - no user '{name}'"))
    }
    pub fn precondition_failed(text: String) -> Refusal {
        Refusal::new(406, format!("PRECONDITION_FAILED - {text}"))
    }
    pub fn access_refused(text: String) -> Refusal {
        Refusal::new(403, format!("ACCESS_REFUSED - {text}"))
    }
    /// A redeclare whose `arg` differs: `what` is e.g. "queue 'q' in vhost '/'".
    pub fn inequivalent(what: &str, arg: &str, received: String, current: String) -> Refusal {
        Refusal::precondition_failed(format!(
            "inequivalent arg '{arg}' for {what}: \
             received {received} but current is {current}"
        ))
    }
    pub fn resource_locked(vhost: &str, queue: &str) -> Refusal {
        Refusal::new(
            405,
            format!(
                "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' \
                 in vhost '{vhost}'. It could be originally declared on another connection \
                 or the exclusive property value does not match that of the original \
                 declaration."
            ),
        )
    }
    pub fn default_exchange() -> Refusal {
        Refusal::access_refused("operation not permitted on the default exchange".to_string())
    }
}

/// What applying one command produced, for the node holding the issuing channel, plus the
/// deliveries it caused (for whichever nodes hold those consumers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub reply: Result<Reply, Refusal>,
    pub deliveries: Vec<(String, Delivery)>,
    /// Messages this command let go of while delivering them (no_ack deliveries) that were
    /// in memory: the state no longer holds them, so the delivering node takes them here. (A
    /// disk node's cold message is read from its store, where its record stays until after
    /// the entry.)
    pub released: Vec<(u64, StoredMessage)>,
    /// Consumers removed because their queue went (queue.delete, auto-delete, the exclusive
    /// owner's close): the node holding each sends basic.cancel (consumer_cancel_notify).
    pub cancelled: Vec<(String, ConsumerKey)>,
    /// A vhost that went (vhost.delete): each node closes its connections to it.
    pub vhost_deleted: Option<String>,
}

impl Outcome {
    /// A command that changed nothing and delivered nothing.
    pub fn done() -> Outcome {
        Outcome {
            reply: Ok(Reply::Done),
            deliveries: Vec::new(),
            released: Vec::new(),
            cancelled: Vec::new(),
            vhost_deleted: None,
        }
    }

    /// A command refused: nothing changed.
    pub fn refused(refusal: Refusal) -> Outcome {
        Outcome {
            reply: Err(refusal),
            ..Outcome::done()
        }
    }

    /// A command with only a reply.
    pub fn reply(reply: Result<Reply, Refusal>) -> Outcome {
        Outcome {
            reply,
            ..Outcome::done()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Done,
    QueueDeclared {
        name: String,
        message_count: u32,
        consumer_count: u32,
    },
    Counted {
        message_count: u32,
    },
    /// A publish: the queues it reached (0 with `mandatory` means basic.return), and how
    /// many of them refused it for being full (x-overflow reject-publish*): under confirms
    /// any refusal makes the confirm a basic.nack, as in RabbitMQ.
    Published {
        msg_id: u64,
        n_queues: u32,
        rejected_by: u32,
    },
    /// basic.get found a message; `message_count` is what stays ready.
    Got {
        msg_id: u64,
        redelivered: bool,
        /// Times returned to the queue: the front end's x-delivery-count.
        delivery_count: u32,
        message_count: u32,
        content: Content,
        exchange: String,
        routing_key: String,
        /// As `StoredMessage::deaths`: the front end's `x-death`.
        deaths: Vec<Death>,
        /// As `StoredMessage::first_death`: `x-first-death-*`.
        first_death: Option<(String, DeathReason, String)>,
    },
    /// basic.get found the queue empty.
    GetEmpty,
}
