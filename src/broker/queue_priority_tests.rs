//! Consumer priorities (`x-priority`, machine version 4): the highest-priority consumer
//! with credit is served, round-robin among equals; a lower one only while every higher
//! one is blocked (RabbitMQ's semantics).

use super::*;
use crate::broker::channel_limit::Unlimited;

fn enqueue(q: &mut Queue, msg_id: u64) -> Vec<Delivery> {
    match q.offer(msg_id, None, 1, &mut Unlimited) {
        Offer::Taken(deliveries) => deliveries,
        refused => panic!("message {msg_id} refused: {refused:?}"),
    }
}

fn key(tag: &str) -> ConsumerKey {
    ConsumerKey {
        conn: 1,
        channel: 1,
        tag: tag.to_string(),
    }
}

fn add(q: &mut Queue, tag: &str, prefetch: u32, priority: i32) {
    let out =
        q.add_consumer_with_priority(key(tag), prefetch, false, false, priority, &mut Unlimited);
    assert!(out.is_empty(), "no message was ready");
}

/// The tags messages `ids` went to, in order.
fn tags_of(q: &mut Queue, ids: std::ops::RangeInclusive<u64>) -> Vec<String> {
    ids.flat_map(|id| enqueue(q, id))
        .map(|d| d.consumer.tag)
        .collect()
}

#[test]
fn the_highest_priority_consumer_with_credit_takes_every_message_it_can() {
    let mut q = Queue::default();
    add(&mut q, "low", 10, 1);
    add(&mut q, "high", 3, 5);
    add(&mut q, "default", 10, 0);
    let tags = tags_of(&mut q, 1..=6);
    assert_eq!(tags, ["high", "high", "high", "low", "low", "low"]);
}

#[test]
fn equal_priorities_take_turns_and_a_settle_gives_the_higher_one_the_next() {
    let mut q = Queue::default();
    add(&mut q, "a", 2, 3);
    add(&mut q, "low", 10, -1);
    add(&mut q, "b", 2, 3);
    let tags = tags_of(&mut q, 1..=5);
    assert_eq!(tags, ["a", "b", "a", "b", "low"]);
    // "a" held messages 1 and 3: a settle gives it room, and the next message is its.
    let (settled, next) = q.settle(1, 1, 1, &mut Unlimited);
    assert!(settled);
    assert!(next.is_empty(), "nothing was waiting");
    assert_eq!(tags_of(&mut q, 6..=6), ["a"]);
}

#[test]
fn a_waiting_backlog_goes_to_the_higher_consumer_as_it_gains_credit() {
    let mut q = Queue::default();
    for id in 1..=4 {
        assert!(enqueue(&mut q, id).is_empty());
    }
    let low = q.add_consumer_with_priority(key("low"), 1, false, false, 0, &mut Unlimited);
    assert_eq!(low.iter().map(|d| d.msg_id).collect::<Vec<_>>(), [1]);
    let high = q.add_consumer_with_priority(key("high"), 2, false, false, 9, &mut Unlimited);
    assert_eq!(high.iter().map(|d| d.msg_id).collect::<Vec<_>>(), [2, 3]);
    // The low one settles: the one message left goes to it only because "high" is full.
    let (_, next) = q.settle(1, 1, 1, &mut Unlimited);
    let next: Vec<_> = next
        .iter()
        .map(|d| (d.msg_id, d.consumer.tag.as_str()))
        .collect();
    assert_eq!(next, [(4, "low")]);
}

#[test]
fn without_priorities_the_order_is_what_it_was() {
    // Every consumer at 0 (all a cluster below version 4 has): plain round-robin.
    let mut q = Queue::default();
    for tag in ["a", "b", "c"] {
        add(&mut q, tag, 2, 0);
    }
    let tags = tags_of(&mut q, 1..=6);
    assert_eq!(tags, ["a", "b", "c", "a", "b", "c"]);
    assert_eq!(q.consumer_priorities(), Vec::new());
}

#[test]
fn priorities_are_listed_and_set_by_consumer_id() {
    let mut q = Queue::default();
    add(&mut q, "a", 1, 0);
    add(&mut q, "b", 1, -7);
    assert_eq!(q.consumer_priorities(), vec![(1, -7)]);
    assert!(q.set_consumer_priority(0, 4));
    assert!(!q.set_consumer_priority(2, 4), "no consumer 2");
    assert_eq!(q.consumer_priorities(), vec![(0, 4), (1, -7)]);
}
