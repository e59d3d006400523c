//! Tests of `BrokerState::apply`: declares, routing, reply codes, message lifetimes.

use super::*;
use crate::broker::exchange::{ExchangeKind, HeaderValue};
use crate::broker::queue::ConsumerKey;
use crate::broker::test_support::*;

#[test]
fn default_exchange_routes_by_queue_name_and_counts_show_in_declare_ok() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    assert_eq!(
        publish(&mut s, "", "q").reply,
        Ok(Reply::Published {
            msg_id: 1,
            n_queues: 1,
            rejected_by: 0
        })
    );
    assert_eq!(
        publish(&mut s, "", "nowhere").reply,
        Ok(Reply::Published {
            msg_id: 2,
            n_queues: 0,
            rejected_by: 0
        })
    );
    let out = s.apply(
        0,
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
        0,
        QueueDecl {
            passive: true,
            ..QueueDecl::new("x")
        }
        .command(),
    );
    let refusal = passive.reply.unwrap_err();
    assert_eq!(refusal.reply_code, 404);
    assert_eq!(refusal.reply_text, "NOT_FOUND - no queue 'x' in vhost '/'");
    let redeclare = s.apply(0, exchange_declare("amq.direct", ExchangeKind::Fanout));
    assert_eq!(redeclare.reply.unwrap_err().reply_code, 406);
    let refusal = publish(&mut s, "missing", "k").reply.unwrap_err();
    assert_eq!(
        refusal.reply_text,
        "NOT_FOUND - no exchange 'missing' in vhost '/'"
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
        let out = s.apply(
            0,
            Command::Consume {
                queue: q.into(),
                consumer: consumer(q),
                prefetch: 0,
                no_ack: false,
                exclusive: false,
            },
        );
        assert_eq!(out.deliveries.len(), 1);
    }
    s.apply(
        0,
        Command::Settle {
            queue: "a".into(),
            msg_ids: vec![1],
            conn: 1,
            channel: 1,
        },
    );
    assert!(s.message(1).is_some(), "queue b still holds the message");
    s.apply(
        0,
        Command::Settle {
            queue: "b".into(),
            msg_ids: vec![1],
            conn: 1,
            channel: 1,
        },
    );
    assert!(s.messages.is_empty());
}

#[test]
fn no_ack_delivery_hands_over_the_content_and_frees_it() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    s.apply(
        0,
        Command::Consume {
            queue: "q".into(),
            consumer: consumer("c"),
            prefetch: 0,
            no_ack: true,
            exclusive: false,
        },
    );
    let out = publish(&mut s, "", "q");
    assert_eq!(out.deliveries.len(), 1);
    assert_eq!(out.released.len(), 1);
    assert_eq!(out.released[0].0, 1);
    assert_eq!(out.released[0].1.content, content("hi"));
    assert_eq!(out.released[0].1.routing_key, "q");
    assert!(s.messages.is_empty());
}

#[test]
fn purge_and_delete_drop_stored_messages() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    publish(&mut s, "", "q");
    publish(&mut s, "", "q");
    assert_eq!(
        s.apply(
            0,
            Command::QueuePurge {
                name: "q".into(),
                conn: 1
            }
        )
        .reply,
        Ok(Reply::Counted { message_count: 2 })
    );
    publish(&mut s, "", "q");
    let full = s.apply(
        0,
        Command::QueueDelete {
            name: "q".into(),
            if_unused: false,
            if_empty: true,
            conn: 1,
        },
    );
    assert_eq!(full.reply.unwrap_err().reply_code, 406);
    let out = s.apply(
        0,
        Command::QueueDelete {
            name: "q".into(),
            if_unused: false,
            if_empty: false,
            conn: 1,
        },
    );
    assert_eq!(out.reply, Ok(Reply::Counted { message_count: 1 }));
    assert!(s.messages.is_empty() && s.vhosts["/"].queues.is_empty());
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
        expiration_ms: None,
    };
    let bytes = postcard::to_stdvec(&command).expect("encode command");
    assert_eq!(
        postcard::from_bytes::<Command>(&bytes).expect("decode command"),
        command
    );
    s.apply(0, command);
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
    let got = s.apply(
        0,
        Command::Get {
            queue: "q".into(),
            holder: holder.clone(),
            no_ack: false,
        },
    );
    let expected = Reply::Got {
        msg_id: 1,
        redelivered: false,
        delivery_count: 0,
        message_count: 1,
        content: content("hi"),
        exchange: String::new(),
        routing_key: "q".into(),
        deaths: Vec::new(),
        first_death: None,
    };
    assert_eq!(got.reply, Ok(expected));
    assert!(s.message(1).is_some(), "an unsettled get keeps the message");
    let got = s.apply(
        0,
        Command::Get {
            queue: "q".into(),
            holder: holder.clone(),
            no_ack: true,
        },
    );
    assert!(matches!(
        got.reply,
        Ok(Reply::Got {
            msg_id: 2,
            message_count: 0,
            ..
        })
    ));
    assert!(
        s.message(2).is_none(),
        "a no_ack get lets go of the message"
    );
    let empty = s.apply(
        0,
        Command::Get {
            queue: "q".into(),
            holder,
            no_ack: false,
        },
    );
    assert_eq!(empty.reply, Ok(Reply::GetEmpty));
}

#[test]
fn stored_messages_keep_their_exchange_and_routing_key() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    bind(&mut s, "q", "amq.topic", "a.*");
    publish(&mut s, "amq.topic", "a.b");
    let message = s.message(1).expect("stored");
    assert_eq!(
        (message.exchange.as_str(), message.routing_key.as_str()),
        ("amq.topic", "a.b")
    );
    assert_eq!(message.content, content("hi"));
}

fn publish_ttl(s: &mut BrokerState, now_ms: u64, key: &str, expiration_ms: Option<u64>) {
    let out = s.apply(
        now_ms,
        Command::Publish {
            exchange: String::new(),
            routing_key: key.into(),
            mandatory: false,
            headers: Vec::new(),
            content: content("ttl"),
            expiration_ms,
        },
    );
    assert!(out.reply.is_ok());
}

#[test]
fn messages_expire_after_the_shorter_of_queue_and_message_ttl() {
    let mut s = BrokerState::default();
    let ttl = vec![("x-message-ttl".to_string(), HeaderValue::Int(100))];
    let decl = QueueDecl {
        arguments: ttl,
        ..QueueDecl::new("q")
    };
    assert!(s.apply(0, decl.command()).reply.is_ok());
    publish_ttl(&mut s, 1000, "q", Some(10));
    publish_ttl(&mut s, 1000, "q", None);
    let get = |s: &mut BrokerState, now_ms| {
        s.apply(
            now_ms,
            Command::Get {
                queue: "q".into(),
                holder: consumer(""),
                no_ack: true,
            },
        )
        .reply
    };
    assert!(matches!(
        get(&mut s, 1050),
        Ok(Reply::Got { msg_id: 2, .. })
    ));
    publish_ttl(&mut s, 1050, "q", None);
    assert_eq!(s.apply(1150, Command::Tick).reply, Ok(Reply::Done));
    assert!(s.messages.is_empty(), "a tick expires what is due");
    assert_eq!(get(&mut s, 1150), Ok(Reply::GetEmpty));
    publish_ttl(&mut s, 1200, "q", Some(0));
    assert_eq!(
        get(&mut s, 1200),
        Ok(Reply::GetEmpty),
        "expiration 0 is already due"
    );
    assert!(s.messages.is_empty());
}
