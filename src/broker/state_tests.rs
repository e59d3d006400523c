//! Tests of `BrokerState::apply`: declares, routing, reply codes, message lifetimes.

use bytes::Bytes;

use super::*;
use crate::broker::exchange::HeaderValue;
use crate::broker::queue::ConsumerKey;

fn content(body: &'static str) -> Content {
    Content {
        properties: Bytes::new(),
        body: Bytes::from_static(body.as_bytes()),
    }
}

/// A queue.declare under construction; `new` is a plain non-passive one from connection 1.
#[derive(Clone)]
struct QueueDecl {
    name: String,
    passive: bool,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    arguments: Vec<(String, HeaderValue)>,
    conn: u64,
}

impl QueueDecl {
    fn new(name: &str) -> QueueDecl {
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

    fn command(self) -> Command {
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

fn queue_declare(name: &str) -> Command {
    QueueDecl::new(name).command()
}

fn declare(s: &mut BrokerState, name: &str) {
    let out = s.apply(queue_declare(name));
    assert!(out.reply.is_ok());
}

/// An exchange.declare under construction; `new` is a plain non-passive one.
#[derive(Clone)]
struct ExchangeDecl {
    name: String,
    kind: ExchangeKind,
    passive: bool,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    arguments: Vec<(String, HeaderValue)>,
}

impl ExchangeDecl {
    fn new(name: &str, kind: ExchangeKind) -> ExchangeDecl {
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

    fn command(self) -> Command {
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

fn exchange_declare(name: &str, kind: ExchangeKind) -> Command {
    ExchangeDecl::new(name, kind).command()
}

fn bind(s: &mut BrokerState, queue: &str, exchange: &str, key: &str) {
    let out = s.apply(Command::QueueBind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: key.into(),
        conn: 1,
    });
    assert_eq!(out.reply, Ok(Reply::Done));
}

fn publish(s: &mut BrokerState, exchange: &str, key: &str) -> Outcome {
    s.apply(Command::Publish {
        exchange: exchange.into(),
        routing_key: key.into(),
        mandatory: false,
        headers: Vec::new(),
        content: content("hi"),
    })
}

fn consumer(tag: &str) -> ConsumerKey {
    ConsumerKey {
        conn: 1,
        channel: 1,
        tag: tag.into(),
    }
}

#[test]
fn default_exchange_routes_by_queue_name_and_counts_show_in_declare_ok() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    assert_eq!(
        publish(&mut s, "", "q").reply,
        Ok(Reply::Published {
            msg_id: 1,
            n_queues: 1
        })
    );
    assert_eq!(
        publish(&mut s, "", "nowhere").reply,
        Ok(Reply::Published {
            msg_id: 2,
            n_queues: 0
        })
    );
    let out = s.apply(
        QueueDecl {
            passive: true,
            ..QueueDecl::new("q")
        }
        .command(),
    );
    assert_eq!(
        out.reply,
        Ok(Reply::QueueDeclared {
            name: "q".into(),
            message_count: 1,
            consumer_count: 0
        })
    );
    assert_eq!(
        s.messages.len(),
        1,
        "an unroutable message must not be stored"
    );
}

#[test]
fn reply_codes_match_rabbitmq() {
    let mut s = BrokerState::default();
    let passive = s.apply(
        QueueDecl {
            passive: true,
            ..QueueDecl::new("x")
        }
        .command(),
    );
    let refusal = passive.reply.unwrap_err();
    assert_eq!(refusal.reply_code, 404);
    assert_eq!(refusal.reply_text, "NOT_FOUND - no queue 'x' in vhost '/'");
    let redeclare = s.apply(exchange_declare("amq.direct", ExchangeKind::Fanout));
    assert_eq!(redeclare.reply.unwrap_err().reply_code, 406);
    let refusal = publish(&mut s, "missing", "k").reply.unwrap_err();
    assert_eq!(
        refusal.reply_text,
        "NOT_FOUND - no exchange 'missing' in vhost '/'"
    );
}

#[test]
fn exclusive_queue_is_locked_to_its_connection() {
    let mut s = BrokerState::default();
    let mine = QueueDecl {
        exclusive: true,
        conn: 7,
        ..QueueDecl::new("ex")
    }
    .command();
    assert!(s.apply(mine.clone()).reply.is_ok());
    assert!(s.apply(mine).reply.is_ok(), "the owner may redeclare");
    let other = s.apply(
        QueueDecl {
            exclusive: true,
            conn: 8,
            ..QueueDecl::new("ex")
        }
        .command(),
    );
    let refusal = other.reply.unwrap_err();
    assert_eq!(refusal.reply_code, 405);
    assert!(refusal
        .reply_text
        .starts_with("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex'"));
    let passive = s.apply(
        QueueDecl {
            passive: true,
            conn: 8,
            ..QueueDecl::new("ex")
        }
        .command(),
    );
    assert_eq!(passive.reply.unwrap_err().reply_code, 405);
    let consume = s.apply(Command::Consume {
        queue: "ex".into(),
        consumer: consumer("c"),
        prefetch: 0,
        no_ack: false,
    });
    assert_eq!(consume.reply.unwrap_err().reply_code, 405);
    let get = s.apply(Command::Get {
        queue: "ex".into(),
        holder: consumer(""),
        no_ack: false,
    });
    assert_eq!(get.reply.unwrap_err().reply_code, 405);
    let purge = s.apply(Command::QueuePurge {
        name: "ex".into(),
        conn: 1,
    });
    assert_eq!(purge.reply.unwrap_err().reply_code, 405);
}

#[test]
fn queue_redeclare_with_other_properties_is_406_with_rabbitmq_text() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    let durable = s.apply(
        QueueDecl {
            durable: true,
            ..QueueDecl::new("q")
        }
        .command(),
    );
    assert_eq!(
        durable.reply.unwrap_err().reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': \
         received 'true' but current is 'false'"
    );
    let ttl = vec![("x-message-ttl".to_string(), HeaderValue::Int(1000))];
    let args = s.apply(
        QueueDecl {
            arguments: ttl.clone(),
            ..QueueDecl::new("q")
        }
        .command(),
    );
    assert_eq!(
        args.reply.unwrap_err().reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': \
         received the value '1000' of type 'long' but current is none"
    );
    let ignored = vec![("my-own-arg".to_string(), HeaderValue::Bool(true))];
    let other = s.apply(
        QueueDecl {
            arguments: ignored,
            ..QueueDecl::new("q")
        }
        .command(),
    );
    assert!(other.reply.is_ok(), "arguments RabbitMQ does not compare");
    let passive = s.apply(
        QueueDecl {
            passive: true,
            durable: true,
            arguments: ttl,
            ..QueueDecl::new("q")
        }
        .command(),
    );
    assert!(passive.reply.is_ok(), "passive declare ignores properties");
    let bad = vec![("x-message-ttl".to_string(), HeaderValue::Int(-1))];
    let bad = s.apply(
        QueueDecl {
            arguments: bad,
            ..QueueDecl::new("q2")
        }
        .command(),
    );
    assert_eq!(
        bad.reply.unwrap_err().reply_text,
        "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q2' in vhost '/': \
         {value_negative,-1}"
    );
}

#[test]
fn exchange_redeclare_reserved_names_and_internal_publish() {
    let mut s = BrokerState::default();
    assert!(s
        .apply(exchange_declare("x", ExchangeKind::Direct))
        .reply
        .is_ok());
    let kind = s.apply(exchange_declare("x", ExchangeKind::Fanout));
    assert_eq!(
        kind.reply.unwrap_err().reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': \
         received 'fanout' but current is 'direct'"
    );
    let passive = s.apply(
        ExchangeDecl {
            passive: true,
            ..ExchangeDecl::new("x", ExchangeKind::Topic)
        }
        .command(),
    );
    assert!(passive.reply.is_ok());
    let reserved = s.apply(exchange_declare("amq.x", ExchangeKind::Direct));
    let refusal = reserved.reply.unwrap_err();
    assert_eq!(refusal.reply_code, 403);
    assert_eq!(
        refusal.reply_text,
        "ACCESS_REFUSED - exchange name 'amq.x' contains reserved prefix 'amq.*'"
    );
    let builtin = s.apply(
        ExchangeDecl {
            durable: true,
            ..ExchangeDecl::new("amq.topic", ExchangeKind::Topic)
        }
        .command(),
    );
    assert!(
        builtin.reply.is_ok(),
        "an existing amq.* with the same type"
    );
    let default = s.apply(exchange_declare("", ExchangeKind::Direct));
    assert_eq!(default.reply.unwrap_err().reply_code, 403);
    let internal = ExchangeDecl {
        internal: true,
        ..ExchangeDecl::new("int", ExchangeKind::Fanout)
    }
    .command();
    assert!(s.apply(internal).reply.is_ok());
    let refusal = publish(&mut s, "int", "").reply.unwrap_err();
    assert_eq!(
        refusal.reply_text,
        "ACCESS_REFUSED - cannot publish to internal exchange 'int' in vhost '/'"
    );
    let ae = vec![(
        "alternate-exchange".to_string(),
        HeaderValue::Str("a".into()),
    )];
    let changed = s.apply(
        ExchangeDecl {
            arguments: ae,
            ..ExchangeDecl::new("x", ExchangeKind::Direct)
        }
        .command(),
    );
    assert_eq!(
        changed.reply.unwrap_err().reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange 'x' in vhost \
         '/': received the value 'a' of type 'longstr' but current is none"
    );
}

#[test]
fn a_message_in_two_queues_lives_until_both_settle() {
    let mut s = BrokerState::default();
    declare(&mut s, "a");
    declare(&mut s, "b");
    for q in ["a", "b"] {
        bind(&mut s, q, "amq.fanout", "");
    }
    publish(&mut s, "amq.fanout", "");
    for q in ["a", "b"] {
        let out = s.apply(Command::Consume {
            queue: q.into(),
            consumer: consumer(q),
            prefetch: 0,
            no_ack: false,
        });
        assert_eq!(out.deliveries.len(), 1);
    }
    s.apply(Command::Settle {
        queue: "a".into(),
        msg_ids: vec![1],
        conn: 1,
        channel: 1,
    });
    assert!(s.content(1).is_some(), "queue b still holds the message");
    s.apply(Command::Settle {
        queue: "b".into(),
        msg_ids: vec![1],
        conn: 1,
        channel: 1,
    });
    assert!(s.messages.is_empty());
}

#[test]
fn no_ack_delivery_hands_over_the_content_and_frees_it() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    s.apply(Command::Consume {
        queue: "q".into(),
        consumer: consumer("c"),
        prefetch: 0,
        no_ack: true,
    });
    let out = publish(&mut s, "", "q");
    assert_eq!(out.deliveries.len(), 1);
    assert_eq!(out.released, vec![(1, content("hi"))]);
    assert!(s.messages.is_empty());
}

#[test]
fn purge_and_delete_drop_stored_messages() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    publish(&mut s, "", "q");
    publish(&mut s, "", "q");
    assert_eq!(
        s.apply(Command::QueuePurge {
            name: "q".into(),
            conn: 1
        })
        .reply,
        Ok(Reply::Counted { message_count: 2 })
    );
    publish(&mut s, "", "q");
    let full = s.apply(Command::QueueDelete {
        name: "q".into(),
        if_unused: false,
        if_empty: true,
        conn: 1,
    });
    assert_eq!(full.reply.unwrap_err().reply_code, 406);
    let out = s.apply(Command::QueueDelete {
        name: "q".into(),
        if_unused: false,
        if_empty: false,
        conn: 1,
    });
    assert_eq!(out.reply, Ok(Reply::Counted { message_count: 1 }));
    assert!(s.messages.is_empty() && s.queues.is_empty());
}

#[test]
fn commands_and_state_round_trip_through_postcard() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    let command = Command::Publish {
        exchange: String::new(),
        routing_key: "q".into(),
        mandatory: true,
        headers: vec![("k".into(), crate::broker::exchange::HeaderValue::Int(-3))],
        content: content("body"),
    };
    let bytes = postcard::to_stdvec(&command).expect("encode command");
    assert_eq!(
        postcard::from_bytes::<Command>(&bytes).expect("decode command"),
        command
    );
    s.apply(command);
    let bytes = postcard::to_stdvec(&s).expect("encode state");
    assert_eq!(
        postcard::from_bytes::<BrokerState>(&bytes).expect("decode state"),
        s
    );
}

#[test]
fn get_takes_the_head_with_its_content_and_counts_what_stays() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    publish(&mut s, "", "q");
    publish(&mut s, "", "q");
    let holder = ConsumerKey {
        conn: 1,
        channel: 1,
        tag: String::new(),
    };
    let got = s.apply(Command::Get {
        queue: "q".into(),
        holder: holder.clone(),
        no_ack: false,
    });
    let expected = Reply::Got {
        msg_id: 1,
        redelivered: false,
        message_count: 1,
        content: content("hi"),
    };
    assert_eq!(got.reply, Ok(expected));
    assert!(s.content(1).is_some(), "an unsettled get keeps the message");
    let got = s.apply(Command::Get {
        queue: "q".into(),
        holder: holder.clone(),
        no_ack: true,
    });
    assert!(matches!(
        got.reply,
        Ok(Reply::Got {
            msg_id: 2,
            message_count: 0,
            ..
        })
    ));
    assert!(
        s.content(2).is_none(),
        "a no_ack get lets go of the message"
    );
    let empty = s.apply(Command::Get {
        queue: "q".into(),
        holder,
        no_ack: false,
    });
    assert_eq!(empty.reply, Ok(Reply::GetEmpty));
}
