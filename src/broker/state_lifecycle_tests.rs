//! Tests of lifecycles: connection close, exclusive and auto-delete queues and exchanges.

use crate::broker::command::{Command, Reply};
use crate::broker::exchange::ExchangeKind;
use crate::broker::queue::ConsumerKey;
use crate::broker::state::BrokerState;
use crate::broker::test_support::*;

fn consume(s: &mut BrokerState, queue: &str, key: ConsumerKey) -> usize {
    let out = s.apply(
        0,
        Command::Consume {
            queue: queue.into(),
            consumer: key,
            prefetch: 0,
            no_ack: false,
            exclusive: false,
        },
    );
    assert_eq!(out.reply, Ok(Reply::Done));
    out.deliveries.len()
}

fn key(conn: u64, channel: u16, tag: &str) -> ConsumerKey {
    ConsumerKey {
        conn,
        channel,
        tag: tag.into(),
    }
}

#[test]
fn connection_close_returns_every_channels_deliveries_and_drops_exclusive_queues() {
    let mut s = BrokerState::default();
    declare(&mut s, "shared");
    let exclusive = QueueDecl {
        exclusive: true,
        conn: 5,
        ..QueueDecl::new("mine")
    };
    assert!(s.apply(0, exclusive.command()).reply.is_ok());
    bind(&mut s, "shared", "amq.fanout", "");
    for _ in 0..2 {
        publish(&mut s, "", "shared");
        publish(&mut s, "", "mine");
    }
    assert_eq!(consume(&mut s, "shared", key(5, 1, "a")), 2);
    assert_eq!(consume(&mut s, "mine", key(5, 2, "b")), 2);
    let out = s.apply(0, Command::ConnectionClosed { conn: 5 });
    assert_eq!(out.reply, Ok(Reply::Done));
    assert!(
        !s.vhosts["/"].queues.contains_key("mine"),
        "the owner's exclusive queue goes"
    );
    let shared = &s.vhosts["/"].queues["shared"].queue;
    assert_eq!(
        (shared.n_ready(), shared.n_unacked(), shared.n_consumers()),
        (2, 0, 0)
    );
    assert_eq!(
        s.messages.len(),
        2,
        "messages of the deleted queue are dropped"
    );
    assert_eq!(consume(&mut s, "shared", key(6, 1, "c")), 2);
}

#[test]
fn auto_delete_queue_goes_with_its_last_consumer_only_after_having_one() {
    let mut s = BrokerState::default();
    let auto = QueueDecl {
        auto_delete: true,
        ..QueueDecl::new("auto")
    };
    assert!(s.apply(0, auto.command()).reply.is_ok());
    bind(&mut s, "auto", "amq.direct", "k");
    s.apply(
        0,
        Command::ChannelClosed {
            conn: 1,
            channel: 1,
        },
    );
    assert!(
        s.vhosts["/"].queues.contains_key("auto"),
        "never had a consumer"
    );
    consume(&mut s, "auto", key(1, 1, "a"));
    consume(&mut s, "auto", key(1, 2, "b"));
    let cancel = s.apply(
        0,
        Command::Cancel {
            queue: "auto".into(),
            consumer: key(1, 1, "a"),
        },
    );
    assert_eq!(cancel.reply, Ok(Reply::Done));
    assert!(
        s.vhosts["/"].queues.contains_key("auto"),
        "one consumer is left"
    );
    s.apply(
        0,
        Command::ChannelClosed {
            conn: 1,
            channel: 2,
        },
    );
    assert!(!s.vhosts["/"].queues.contains_key("auto"));
    assert!(s.vhosts["/"].exchanges["amq.direct"].bindings.is_empty());
}

#[test]
fn auto_delete_exchange_goes_with_its_last_source_binding_and_cascades() {
    let mut s = BrokerState::default();
    declare(&mut s, "q1");
    declare(&mut s, "q2");
    let auto = |name: &str| ExchangeDecl {
        auto_delete: true,
        ..ExchangeDecl::new(name, ExchangeKind::Fanout)
    };
    assert!(s.apply(0, auto("ax").command()).reply.is_ok());
    assert!(s.apply(0, auto("upstream").command()).reply.is_ok());
    bind(&mut s, "q1", "ax", "");
    bind(&mut s, "q2", "ax", "");
    let e2e = Command::ExchangeBind {
        destination: "ax".into(),
        source: "upstream".into(),
        routing_key: String::new(),
        arguments: Vec::new(),
    };
    assert!(s.apply(0, e2e).reply.is_ok());
    s.apply(
        0,
        Command::QueueUnbind {
            queue: "q1".into(),
            exchange: "ax".into(),
            routing_key: String::new(),
            arguments: Vec::new(),
            conn: 1,
        },
    );
    assert!(
        s.vhosts["/"].exchanges.contains_key("ax"),
        "one binding is left"
    );
    let delete = s.apply(
        0,
        Command::QueueDelete {
            name: "q2".into(),
            if_unused: false,
            if_empty: false,
            conn: 1,
        },
    );
    assert!(delete.reply.is_ok());
    assert!(
        !s.vhosts["/"].exchanges.contains_key("ax"),
        "its last binding went with q2"
    );
    assert!(
        !s.vhosts["/"].exchanges.contains_key("upstream"),
        "upstream's only binding led to ax"
    );
}

#[test]
fn deleting_a_queue_reports_its_consumers_cancelled() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    consume(&mut s, "q", key(1, 1, "a"));
    consume(&mut s, "q", key(2, 1, "b"));
    let out = s.apply(
        0,
        Command::QueueDelete {
            name: "q".into(),
            if_unused: false,
            if_empty: false,
            conn: 1,
        },
    );
    let cancelled = vec![
        ("q".to_string(), key(1, 1, "a")),
        ("q".to_string(), key(2, 1, "b")),
    ];
    assert_eq!(out.cancelled, cancelled);
}

#[test]
fn recover_redelivers_the_channels_unacked_and_keeps_its_consumers() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    publish(&mut s, "", "q");
    publish(&mut s, "", "q");
    assert_eq!(consume(&mut s, "q", key(1, 1, "a")), 2);
    let out = s.apply(
        0,
        Command::Recover {
            conn: 1,
            channel: 1,
        },
    );
    let again: Vec<(u64, bool, u32)> = out
        .deliveries
        .iter()
        .map(|(_, d)| (d.msg_id, d.redelivered, d.delivery_count))
        .collect();
    assert_eq!(again, vec![(1, true, 1), (2, true, 1)]);
    assert_eq!(s.vhosts["/"].queues["q"].queue.n_consumers(), 1);
    let other = s.apply(
        0,
        Command::Recover {
            conn: 1,
            channel: 2,
        },
    );
    assert!(other.deliveries.is_empty(), "another channel holds nothing");
}
