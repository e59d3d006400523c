//! Tests of declares, deletes and bindings: RabbitMQ's reply codes and texts.

use crate::broker::command::{Command, Reply};
use crate::broker::exchange::{ExchangeKind, HeaderValue};
use crate::broker::state::BrokerState;
use crate::broker::test_support::*;

#[test]
fn exclusive_queue_is_locked_to_its_connection() {
    let mut s = BrokerState::default();
    let mine = QueueDecl {
        exclusive: true,
        conn: 7,
        ..QueueDecl::new("ex")
    }
    .command();
    assert!(s.apply(0, mine.clone()).reply.is_ok());
    assert!(s.apply(0, mine).reply.is_ok(), "the owner may redeclare");
    let other = s.apply(
        0,
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
        0,
        QueueDecl {
            passive: true,
            conn: 8,
            ..QueueDecl::new("ex")
        }
        .command(),
    );
    assert_eq!(passive.reply.unwrap_err().reply_code, 405);
    let consume = s.apply(
        0,
        Command::Consume {
            queue: "ex".into(),
            consumer: consumer("c"),
            prefetch: 0,
            no_ack: false,
            exclusive: false,
        },
    );
    assert_eq!(consume.reply.unwrap_err().reply_code, 405);
    let get = s.apply(
        0,
        Command::Get {
            queue: "ex".into(),
            holder: consumer(""),
            no_ack: false,
        },
    );
    assert_eq!(get.reply.unwrap_err().reply_code, 405);
    let purge = s.apply(
        0,
        Command::QueuePurge {
            name: "ex".into(),
            conn: 1,
        },
    );
    assert_eq!(purge.reply.unwrap_err().reply_code, 405);
}

#[test]
fn queue_redeclare_with_other_properties_is_406_with_rabbitmq_text() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    let durable = s.apply(
        0,
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
        0,
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
        0,
        QueueDecl {
            arguments: ignored,
            ..QueueDecl::new("q")
        }
        .command(),
    );
    assert!(other.reply.is_ok(), "arguments RabbitMQ does not compare");
    let passive = s.apply(
        0,
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
        0,
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
        .apply(0, exchange_declare("x", ExchangeKind::Direct))
        .reply
        .is_ok());
    let kind = s.apply(0, exchange_declare("x", ExchangeKind::Fanout));
    assert_eq!(
        kind.reply.unwrap_err().reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': \
         received 'fanout' but current is 'direct'"
    );
    let passive = s.apply(
        0,
        ExchangeDecl {
            passive: true,
            ..ExchangeDecl::new("x", ExchangeKind::Topic)
        }
        .command(),
    );
    assert!(passive.reply.is_ok());
    let reserved = s.apply(0, exchange_declare("amq.x", ExchangeKind::Direct));
    let refusal = reserved.reply.unwrap_err();
    assert_eq!(refusal.reply_code, 403);
    assert_eq!(
        refusal.reply_text,
        "ACCESS_REFUSED - exchange name 'amq.x' contains reserved prefix 'amq.*'"
    );
    let builtin = s.apply(
        0,
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
    let default = s.apply(0, exchange_declare("", ExchangeKind::Direct));
    assert_eq!(default.reply.unwrap_err().reply_code, 403);
    let internal = ExchangeDecl {
        internal: true,
        ..ExchangeDecl::new("int", ExchangeKind::Fanout)
    }
    .command();
    assert!(s.apply(0, internal).reply.is_ok());
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
        0,
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

fn n_bindings(s: &BrokerState, exchange: &str) -> usize {
    s.vhosts["/"]
        .exchanges
        .get(exchange)
        .map_or(0, |x| x.bindings.len())
}

#[test]
fn unbind_removes_only_the_matching_binding_and_is_idempotent() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    bind(&mut s, "q", "amq.direct", "a");
    bind(&mut s, "q", "amq.direct", "b");
    bind(&mut s, "q", "amq.direct", "a");
    assert_eq!(n_bindings(&s, "amq.direct"), 2, "a rebind adds nothing");
    let unbind = Command::QueueUnbind {
        queue: "q".into(),
        exchange: "amq.direct".into(),
        routing_key: "a".into(),
        arguments: Vec::new(),
        conn: 1,
    };
    assert_eq!(s.apply(0, unbind.clone()).reply, Ok(Reply::Done));
    assert_eq!(
        s.apply(0, unbind).reply,
        Ok(Reply::Done),
        "unbind twice is unbind-ok"
    );
    assert_eq!(n_bindings(&s, "amq.direct"), 1);
    assert_eq!(
        publish(&mut s, "amq.direct", "a").reply,
        Ok(Reply::Published {
            msg_id: 1,
            n_queues: 0,
            rejected_by: 0
        })
    );
    let missing = Command::QueueUnbind {
        queue: "nope".into(),
        exchange: "amq.direct".into(),
        routing_key: "a".into(),
        arguments: Vec::new(),
        conn: 1,
    };
    assert_eq!(
        s.apply(0, missing.clone()).reply,
        Ok(Reply::Done),
        "a missing queue's unbind is unbind-ok (RabbitMQ 3.10, machine version 3)"
    );
    s.machine_version = Command::ACCESS_MACHINE_VERSION;
    assert_eq!(
        s.apply(0, missing).reply.unwrap_err().reply_text,
        "NOT_FOUND - no queue 'nope' in vhost '/'",
        "machine version 2 refused it"
    );
}

#[test]
fn headers_bindings_carry_their_arguments_and_unbind_needs_the_same_ones() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    let args = vec![
        ("x-match".to_string(), HeaderValue::Str("any".into())),
        ("k".to_string(), HeaderValue::Int(1)),
    ];
    let bind = Command::QueueBind {
        queue: "q".into(),
        exchange: "amq.headers".into(),
        routing_key: String::new(),
        arguments: args.clone(),
        conn: 1,
    };
    assert!(s.apply(0, bind).reply.is_ok());
    let hit = s.apply(
        0,
        Command::Publish {
            exchange: "amq.headers".into(),
            routing_key: String::new(),
            mandatory: false,
            headers: vec![
                ("k".into(), HeaderValue::Int(1)),
                ("z".into(), HeaderValue::Bool(true)),
            ],
            content: content("h"),
            expiration_ms: None,
        },
    );
    assert!(matches!(
        hit.reply,
        Ok(Reply::Published { n_queues: 1, .. })
    ));
    let other_args = Command::QueueUnbind {
        queue: "q".into(),
        exchange: "amq.headers".into(),
        routing_key: String::new(),
        arguments: Vec::new(),
        conn: 1,
    };
    s.apply(0, other_args);
    assert_eq!(
        n_bindings(&s, "amq.headers"),
        1,
        "other arguments name another binding"
    );
    let mut reversed = args;
    reversed.reverse();
    s.apply(
        0,
        Command::QueueUnbind {
            queue: "q".into(),
            exchange: "amq.headers".into(),
            routing_key: String::new(),
            arguments: reversed,
            conn: 1,
        },
    );
    assert_eq!(
        n_bindings(&s, "amq.headers"),
        0,
        "argument order does not matter"
    );
}

#[test]
fn exchange_to_exchange_bindings_route_and_unbind() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    assert!(s
        .apply(0, exchange_declare("src", ExchangeKind::Topic))
        .reply
        .is_ok());
    bind(&mut s, "q", "amq.fanout", "");
    let e2e = |add: bool| {
        let (destination, source) = ("amq.fanout".to_string(), "src".to_string());
        let (routing_key, arguments) = ("a.*".to_string(), Vec::new());
        match add {
            true => Command::ExchangeBind {
                destination,
                source,
                routing_key,
                arguments,
            },
            false => Command::ExchangeUnbind {
                destination,
                source,
                routing_key,
                arguments,
            },
        }
    };
    assert_eq!(s.apply(0, e2e(true)).reply, Ok(Reply::Done));
    assert!(matches!(
        publish(&mut s, "src", "a.b").reply,
        Ok(Reply::Published { n_queues: 1, .. })
    ));
    assert!(matches!(
        publish(&mut s, "src", "b.b").reply,
        Ok(Reply::Published { n_queues: 0, .. })
    ));
    assert_eq!(s.apply(0, e2e(false)).reply, Ok(Reply::Done));
    assert!(matches!(
        publish(&mut s, "src", "a.b").reply,
        Ok(Reply::Published { n_queues: 0, .. })
    ));
    let missing = s.apply(
        0,
        Command::ExchangeBind {
            destination: "nowhere".into(),
            source: "src".into(),
            routing_key: String::new(),
            arguments: Vec::new(),
        },
    );
    assert_eq!(
        missing.reply.unwrap_err().reply_text,
        "NOT_FOUND - no exchange 'nowhere' in vhost '/'"
    );
    let default = s.apply(
        0,
        Command::ExchangeBind {
            destination: "src".into(),
            source: String::new(),
            routing_key: String::new(),
            arguments: Vec::new(),
        },
    );
    assert_eq!(default.reply.unwrap_err().reply_code, 403);
}

#[test]
fn deleting_an_exchange_removes_bindings_to_it() {
    let mut s = BrokerState::default();
    assert!(s
        .apply(0, exchange_declare("mid", ExchangeKind::Fanout))
        .reply
        .is_ok());
    let bind = Command::ExchangeBind {
        destination: "mid".into(),
        source: "amq.fanout".into(),
        routing_key: String::new(),
        arguments: Vec::new(),
    };
    assert!(s.apply(0, bind).reply.is_ok());
    let delete = s.apply(
        0,
        Command::ExchangeDelete {
            name: "mid".into(),
            if_unused: false,
        },
    );
    assert_eq!(delete.reply, Ok(Reply::Done));
    assert_eq!(n_bindings(&s, "amq.fanout"), 0);
    let again = s.apply(
        0,
        Command::ExchangeDelete {
            name: "mid".into(),
            if_unused: false,
        },
    );
    assert_eq!(
        again.reply,
        Ok(Reply::Done),
        "delete of a missing exchange is delete-ok"
    );
}
