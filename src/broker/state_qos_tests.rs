//! Tests of channel limits (basic.qos global=true) through `BrokerState::apply`. All on
//! connection 1, channel 1 unless said otherwise.

use crate::broker::command::{Command, Reply};
use crate::broker::queue::Delivery;
use crate::broker::state::BrokerState;
use crate::broker::test_support::*;

fn qos(s: &mut BrokerState, prefetch: u32) -> Vec<(String, Delivery)> {
    let out = s.apply(
        0,
        Command::ChannelQos {
            conn: 1,
            channel: 1,
            prefetch,
        },
    );
    assert_eq!(out.reply, Ok(Reply::Done));
    out.deliveries
}

/// basic.consume with its own prefetch (basic.qos global=false).
fn consume_with(
    s: &mut BrokerState,
    queue: &str,
    tag: &str,
    prefetch: u32,
) -> Vec<(String, Delivery)> {
    let out = s.apply(
        0,
        Command::Consume {
            queue: queue.into(),
            consumer: consumer(tag),
            prefetch,
            no_ack: false,
            exclusive: false,
        },
    );
    assert_eq!(out.reply, Ok(Reply::Done));
    out.deliveries
}

fn ack(s: &mut BrokerState, queue: &str, msg_id: u64) -> Vec<(String, Delivery)> {
    let settle = Command::Settle {
        queue: queue.into(),
        msg_ids: vec![msg_id],
        conn: 1,
        channel: 1,
    };
    let out = s.apply(0, settle);
    assert_eq!(out.reply, Ok(Reply::Done));
    out.deliveries
}

/// Declares `queue` with `n` messages in it.
fn fill(s: &mut BrokerState, queue: &str, n: usize) {
    declare(s, queue);
    for _ in 0..n {
        publish(s, "", queue);
    }
}

/// (queue, consumer tag) of each delivery.
fn whom(deliveries: &[(String, Delivery)]) -> Vec<(&str, &str)> {
    let each = deliveries.iter();
    each.map(|(q, d)| (q.as_str(), d.consumer.tag.as_str()))
        .collect()
}

fn n_unacked(s: &BrokerState) -> u32 {
    s.channel_limits
        .get((1, 1))
        .expect("a channel limit")
        .n_unacked
}

#[test]
fn a_limit_of_2_over_two_queues_delivers_2_and_each_ack_releases_one() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 10);
    fill(&mut s, "q2", 10);
    assert!(qos(&mut s, 2).is_empty());
    let first = consume_with(&mut s, "q1", "a", 0);
    assert_eq!(whom(&first), [("q1", "a"), ("q1", "a")]);
    assert!(
        consume_with(&mut s, "q2", "b", 0).is_empty(),
        "no channel credit left"
    );
    assert_eq!(n_unacked(&s), 2);

    // q1 waited first (for its third message), so the first credit is its; q2 is next.
    let next = ack(&mut s, "q1", first[0].1.msg_id);
    assert_eq!(whom(&next), [("q1", "a")]);
    let then = ack(&mut s, "q1", first[1].1.msg_id);
    assert_eq!(
        whom(&then),
        [("q2", "b")],
        "freed credit goes to the queue that waited"
    );
    let after = ack(&mut s, "q2", then[0].1.msg_id);
    assert_eq!(whom(&after), [("q1", "a")], "the queues take turns");
    assert_eq!(n_unacked(&s), 2);
}

#[test]
fn a_delivery_needs_credit_from_its_consumer_and_its_channel() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 5);
    fill(&mut s, "q2", 5);
    qos(&mut s, 2);
    let a = consume_with(&mut s, "q1", "a", 1);
    assert_eq!(whom(&a), [("q1", "a")], "a's own prefetch of 1 binds");
    let b = consume_with(&mut s, "q2", "b", 5);
    assert_eq!(whom(&b), [("q2", "b")], "the channel's 2 bind");

    let raised = qos(&mut s, 10);
    assert_eq!(
        whom(&raised),
        [("q2", "b"); 4],
        "up to b's own 5; a stays at its 1"
    );
    assert_eq!(n_unacked(&s), 6);
}

#[test]
fn raising_the_limit_releases_held_messages_queue_by_queue() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 5);
    fill(&mut s, "q2", 5);
    qos(&mut s, 1);
    assert_eq!(consume_with(&mut s, "q1", "a", 0).len(), 1);
    assert!(consume_with(&mut s, "q2", "b", 0).is_empty());
    let raised = qos(&mut s, 3);
    assert_eq!(whom(&raised), [("q1", "a"), ("q2", "b")]);
}

#[test]
fn a_limit_of_0_is_no_limit() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 10);
    qos(&mut s, 0);
    assert!(s.channel_limits.get((1, 1)).is_none());
    assert_eq!(consume_with(&mut s, "q1", "a", 0).len(), 10);

    tracing::info!("--- a limit, then 0: everything held goes out");
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 10);
    fill(&mut s, "q2", 10);
    qos(&mut s, 2);
    consume_with(&mut s, "q1", "a", 0);
    consume_with(&mut s, "q2", "b", 0);
    let released = qos(&mut s, 0);
    assert_eq!(released.len(), 18);
    assert!(s.channel_limits.get((1, 1)).is_none());
}

#[test]
fn lowering_the_limit_holds_deliveries_until_the_count_is_below_it() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 10);
    qos(&mut s, 3);
    let held = consume_with(&mut s, "q1", "a", 0);
    assert_eq!(held.len(), 3);
    assert!(qos(&mut s, 1).is_empty());
    assert!(ack(&mut s, "q1", held[0].1.msg_id).is_empty());
    assert!(ack(&mut s, "q1", held[1].1.msg_id).is_empty());
    assert_eq!(ack(&mut s, "q1", held[2].1.msg_id).len(), 1);
}

#[test]
fn a_first_limit_counts_the_deliveries_the_channel_already_holds() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 2);
    fill(&mut s, "q2", 5);
    let held = consume_with(&mut s, "q1", "a", 0);
    assert_eq!(held.len(), 2);
    qos(&mut s, 2);
    assert_eq!(n_unacked(&s), 2);
    assert!(consume_with(&mut s, "q2", "b", 0).is_empty());
    assert_eq!(whom(&ack(&mut s, "q1", held[0].1.msg_id)), [("q2", "b")]);
}

#[test]
fn no_ack_consumers_and_basic_get_are_neither_limited_nor_counted() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 3);
    fill(&mut s, "q2", 3);
    fill(&mut s, "q3", 3);
    qos(&mut s, 1);
    assert!(get_id(&mut s, 0, "q1", false).is_some());
    assert!(get_id(&mut s, 0, "q1", false).is_some());
    assert_eq!(consume(&mut s, "q2", "free", true).deliveries.len(), 3);
    assert_eq!(n_unacked(&s), 0);
    assert_eq!(consume_with(&mut s, "q3", "a", 0).len(), 1);
}

#[test]
fn closing_the_channel_or_connection_forgets_its_limit() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 10);
    qos(&mut s, 1);
    consume_with(&mut s, "q1", "a", 0);
    assert!(s.connections().contains(&1));
    s.apply(
        0,
        Command::ChannelClosed {
            conn: 1,
            channel: 1,
        },
    );
    assert!(s.channel_limits.get((1, 1)).is_none());
    assert!(
        !s.connections().contains(&1),
        "nothing of connection 1 is left"
    );
    assert_eq!(
        consume_with(&mut s, "q1", "a", 0).len(),
        10,
        "the channel number reused: no limit"
    );

    tracing::info!("--- a connection close forgets every channel's limit");
    qos(&mut s, 1);
    s.apply(0, Command::ConnectionClosed { conn: 1 });
    assert_eq!(s.channel_limits.iter().count(), 0);
}

#[test]
fn deleting_a_queue_frees_the_credit_its_deliveries_held() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 3);
    fill(&mut s, "q2", 3);
    qos(&mut s, 1);
    assert_eq!(consume_with(&mut s, "q1", "a", 0).len(), 1);
    assert!(consume_with(&mut s, "q2", "b", 0).is_empty());
    let delete = Command::QueueDelete {
        name: "q1".into(),
        if_unused: false,
        if_empty: false,
        conn: 1,
    };
    let out = s.apply(0, delete);
    assert_eq!(whom(&out.deliveries), [("q2", "b")]);
    assert_eq!(n_unacked(&s), 1);
}

#[test]
fn the_limit_is_in_the_digest() {
    let digest = |s: &BrokerState| {
        let mut out = Vec::new();
        s.digest_into(&mut out).expect("digest");
        out
    };
    let mut s = BrokerState::default();
    let before = digest(&s);
    qos(&mut s, 5);
    assert_ne!(digest(&s), before);
}

#[test]
fn credit_freed_by_an_emptied_queue_goes_to_the_queue_that_waited() {
    let mut s = BrokerState::default();
    fill(&mut s, "q1", 1);
    fill(&mut s, "q2", 1);
    qos(&mut s, 1);
    let held = consume_with(&mut s, "q1", "a", 0);
    assert!(consume_with(&mut s, "q2", "b", 0).is_empty());
    assert_eq!(whom(&ack(&mut s, "q1", held[0].1.msg_id)), [("q2", "b")]);
}
