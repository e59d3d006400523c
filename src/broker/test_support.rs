//! Builders and helpers shared by the broker's state tests.

use bytes::Bytes;

use super::command::{Command, Content, Outcome, Reply};
use super::exchange::{ExchangeKind, HeaderValue};
use super::messages::{ColdIter, ColdStore, Messages};
use super::queue::ConsumerKey;
use super::state::{BrokerState, StoredMessage};

pub fn content(body: &'static str) -> Content {
    Content {
        properties: Bytes::new(),
        body: Bytes::from_static(body.as_bytes()),
    }
}

/// A queue.declare under construction; `new` is a plain non-passive one from connection 1.
#[derive(Clone)]
pub struct QueueDecl {
    pub name: String,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Vec<(String, HeaderValue)>,
    pub conn: u64,
}

impl QueueDecl {
    pub fn new(name: &str) -> QueueDecl {
        QueueDecl {
            name: name.into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: Vec::new(),
            conn: 1,
        }
    }

    pub fn command(self) -> Command {
        Command::QueueDeclare {
            name: self.name,
            passive: self.passive,
            durable: self.durable,
            exclusive: self.exclusive,
            auto_delete: self.auto_delete,
            arguments: self.arguments,
            conn: self.conn,
        }
    }
}

pub fn queue_declare(name: &str) -> Command {
    QueueDecl::new(name).command()
}

pub fn declare(s: &mut BrokerState, name: &str) {
    let out = s.apply(0, queue_declare(name));
    assert!(out.reply.is_ok());
}

/// An exchange.declare under construction; `new` is a plain non-passive one.
#[derive(Clone)]
pub struct ExchangeDecl {
    pub name: String,
    pub kind: ExchangeKind,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Vec<(String, HeaderValue)>,
}

impl ExchangeDecl {
    pub fn new(name: &str, kind: ExchangeKind) -> ExchangeDecl {
        ExchangeDecl {
            name: name.into(),
            kind,
            passive: false,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: Vec::new(),
        }
    }

    pub fn command(self) -> Command {
        Command::ExchangeDeclare {
            name: self.name,
            kind: self.kind,
            passive: self.passive,
            durable: self.durable,
            auto_delete: self.auto_delete,
            internal: self.internal,
            arguments: self.arguments,
        }
    }
}

pub fn exchange_declare(name: &str, kind: ExchangeKind) -> Command {
    ExchangeDecl::new(name, kind).command()
}

pub fn bind(s: &mut BrokerState, queue: &str, exchange: &str, key: &str) {
    let out = s.apply(
        0,
        Command::QueueBind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: key.into(),
            arguments: Vec::new(),
            conn: 1,
        },
    );
    assert_eq!(out.reply, Ok(Reply::Done));
}

pub fn publish(s: &mut BrokerState, exchange: &str, key: &str) -> Outcome {
    s.apply(
        0,
        Command::Publish {
            exchange: exchange.into(),
            routing_key: key.into(),
            mandatory: false,
            headers: Vec::new(),
            content: content("hi"),
            expiration_ms: None,
        },
    )
}

pub fn consumer(tag: &str) -> ConsumerKey {
    ConsumerKey {
        conn: 1,
        channel: 1,
        tag: tag.into(),
    }
}

/// A declare argument.
pub fn arg(name: &str, value: HeaderValue) -> (String, HeaderValue) {
    (name.to_string(), value)
}

pub fn str_value(value: &str) -> HeaderValue {
    HeaderValue::Str(value.to_string())
}

/// Declares queue `name` with `arguments`, at time 0.
pub fn declare_with(s: &mut BrokerState, name: &str, arguments: Vec<(String, HeaderValue)>) {
    let decl = QueueDecl {
        arguments,
        ..QueueDecl::new(name)
    };
    let out = s.apply(0, decl.command());
    assert!(out.reply.is_ok(), "declare {name}: {:?}", out.reply);
}

/// A publish at `now_ms` with `headers`.
pub fn publish_at(
    s: &mut BrokerState,
    now_ms: u64,
    exchange: &str,
    key: &str,
    headers: Vec<(String, HeaderValue)>,
) -> Outcome {
    s.apply(
        now_ms,
        Command::Publish {
            exchange: exchange.into(),
            routing_key: key.into(),
            mandatory: false,
            headers,
            content: content("hi"),
            expiration_ms: None,
        },
    )
}

/// basic.consume on connection 1, channel 1.
pub fn consume(s: &mut BrokerState, queue: &str, tag: &str, no_ack: bool) -> Outcome {
    s.apply(
        0,
        Command::Consume {
            queue: queue.into(),
            consumer: consumer(tag),
            prefetch: 0,
            no_ack,
            exclusive: false,
        },
    )
}

/// basic.reject(requeue=false) of `msg_ids` from connection 1, channel 1, at `now_ms`.
pub fn reject(s: &mut BrokerState, now_ms: u64, queue: &str, msg_ids: Vec<u64>) -> Outcome {
    s.apply(
        now_ms,
        Command::Reject {
            queue: queue.into(),
            msg_ids,
            conn: 1,
            channel: 1,
        },
    )
}

/// basic.get with no_ack on connection 1, channel 1: the message's id, or None when empty.
pub fn get_id(s: &mut BrokerState, now_ms: u64, queue: &str, no_ack: bool) -> Option<u64> {
    let get = Command::Get {
        queue: queue.into(),
        holder: consumer(""),
        no_ack,
    };
    match s.apply(now_ms, get).reply {
        Ok(Reply::Got { msg_id, .. }) => Some(msg_id),
        _ => None,
    }
}

/// A disk node's message store, in memory: runs the model as a disk node runs it. Records are
/// kept with a holder count of 0, so a count read back from here would show.
#[derive(Debug, Default)]
pub struct MemCold {
    records: std::sync::Mutex<std::collections::BTreeMap<u64, StoredMessage>>,
    /// Every read fails while set.
    pub fail_reads: std::sync::atomic::AtomicBool,
}

impl MemCold {
    /// A state whose messages go to a new `MemCold` after each entry ([`MemCold::after_entry`]).
    pub fn state() -> (std::sync::Arc<MemCold>, BrokerState) {
        let cold = std::sync::Arc::new(MemCold::default());
        let s = BrokerState {
            messages: Messages::cold(cold.clone(), 0, Default::default()),
            ..BrokerState::default()
        };
        (cold, s)
    }

    /// What a disk node's state machine does after an entry: moves the messages it stored
    /// here and, unless `deletes_held`, deletes the records of dropped ones.
    pub fn after_entry(&self, messages: &mut Messages, deletes_held: bool) {
        self.after_entry_keeping(messages, 0, deletes_held)
    }

    /// As [`MemCold::after_entry`], keeping the newest messages up to `keep_bytes` in memory.
    pub fn after_entry_keeping(
        &self,
        messages: &mut Messages,
        keep_bytes: u64,
        deletes_held: bool,
    ) {
        let mut records = self.records.lock().expect("lock");
        let moved = messages.move_cold(keep_bytes, |msg_id, message| {
            let mut record = message.clone();
            record.n_holders = 0;
            assert!(
                records.insert(msg_id, record).is_none(),
                "{msg_id} rewritten"
            );
            Ok(())
        });
        moved.expect("move");
        if !deletes_held {
            for msg_id in messages.take_doomed() {
                assert!(records.remove(&msg_id).is_some(), "{msg_id} not stored");
            }
        }
    }

    /// How many records it holds (dropped ones not yet deleted included).
    pub fn len(&self) -> usize {
        self.records.lock().expect("lock").len()
    }

    fn check(&self) -> std::io::Result<()> {
        match self.fail_reads.load(std::sync::atomic::Ordering::Relaxed) {
            true => Err(std::io::Error::other("injected read failure")),
            false => Ok(()),
        }
    }
}

impl ColdStore for MemCold {
    fn get(&self, msg_id: u64) -> std::io::Result<Option<StoredMessage>> {
        self.check()?;
        Ok(self.records.lock().expect("lock").get(&msg_id).cloned())
    }

    fn range(&self, from: u64, below: u64) -> ColdIter<'_> {
        if let Err(e) = self.check() {
            return Box::new(std::iter::once(Err(e)));
        }
        let records = self.records.lock().expect("lock");
        let copied: Vec<_> = records
            .range(from..below.max(from))
            .map(|(id, m)| Ok((*id, m.clone())))
            .collect();
        Box::new(copied.into_iter())
    }
}
