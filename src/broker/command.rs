//! Commands: every change to broker state, as it travels in a Raft entry.
//!
//! Architecture invariant 4: this enum is a compatibility boundary (it is written to the log
//! with postcard). Variants are only ever appended, never reordered or removed.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::exchange::{ExchangeKind, HeaderValue};
use super::queue::{ConsumerKey, Delivery};

/// A message as published: raw content-header properties (kept verbatim) and the body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub properties: Bytes,
    pub body: Bytes,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    ExchangeDeclare {
        name: String,
        kind: ExchangeKind,
        passive: bool,
        alternate_exchange: Option<String>,
    },
    ExchangeDelete {
        name: String,
        if_unused: bool,
    },
    QueueDeclare {
        name: String,
        passive: bool,
        exclusive_conn: Option<u64>,
    },
    QueueDelete {
        name: String,
        if_unused: bool,
        if_empty: bool,
    },
    QueuePurge {
        name: String,
    },
    QueueBind {
        queue: String,
        exchange: String,
        routing_key: String,
    },
    Publish {
        exchange: String,
        routing_key: String,
        mandatory: bool,
        headers: Vec<(String, HeaderValue)>,
        content: Content,
    },
    Consume {
        queue: String,
        consumer: ConsumerKey,
        prefetch: u32,
        no_ack: bool,
    },
    Cancel {
        queue: String,
        consumer: ConsumerKey,
    },
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
}

/// A channel error for the client: the AMQP reply code and text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reply_code: u16,
    pub reply_text: String,
}

impl Refusal {
    pub fn not_found(what: &str) -> Refusal {
        Refusal {
            reply_code: 404,
            reply_text: format!("NOT_FOUND - no {what}"),
        }
    }
    pub fn precondition_failed(text: String) -> Refusal {
        Refusal {
            reply_code: 406,
            reply_text: format!("PRECONDITION_FAILED - {text}"),
        }
    }
    pub fn resource_locked(queue: &str) -> Refusal {
        Refusal {
            reply_code: 405,
            reply_text: format!(
                "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}'"
            ),
        }
    }
}

/// What applying one command produced, for the node holding the issuing channel, plus the
/// deliveries it caused (for whichever nodes hold those consumers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub reply: Result<Reply, Refusal>,
    pub deliveries: Vec<(String, Delivery)>,
    /// Contents of messages this command let go of while delivering them (no_ack
    /// deliveries): the state no longer holds them, so the delivering node takes them here.
    pub released: Vec<(u64, Content)>,
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
    /// A publish: the queues it reached; empty with `mandatory` means basic.return.
    Published {
        msg_id: u64,
        n_queues: u32,
    },
    /// basic.get found a message; `message_count` is what stays ready.
    Got {
        msg_id: u64,
        redelivered: bool,
        message_count: u32,
        content: Content,
    },
    /// basic.get found the queue empty.
    GetEmpty,
}
