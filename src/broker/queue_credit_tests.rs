//! Unit tests of the credit window of consumers their prefetch does not bound (no_ack and
//! prefetch 0): a backlog reaches such a consumer one window at a time, as its connection
//! hands credit back (`Queue::add_credit`, `Command::Credit`).

use super::*;
use crate::broker::channel_limit::Unlimited;
use crate::limits::CONSUMER_CREDIT_WINDOW;

const WINDOW: u64 = CONSUMER_CREDIT_WINDOW as u64;

fn key(tag: &str) -> ConsumerKey {
    ConsumerKey {
        conn: 1,
        channel: 1,
        tag: tag.to_string(),
    }
}

/// A queue holding `n` ready one-byte messages, ids 1..=n, and no consumer.
fn backlog(n: u64) -> Queue {
    let mut q = Queue::default();
    for id in 1..=n {
        assert!(matches!(
            q.offer(id, None, 1, &mut Unlimited),
            Offer::Taken(d) if d.is_empty()
        ));
    }
    q
}

fn ids(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries.iter().map(|d| d.msg_id).collect()
}

/// A backlog of three windows reaches a consumer one window at a time: nothing more until
/// credit comes back, then as much as came back, in order.
fn drains_by_window(prefetch: u32, no_ack: bool) {
    let mut q = backlog(3 * WINDOW);
    let first = q.add_consumer(key("c"), prefetch, no_ack, false, &mut Unlimited);
    assert_eq!(ids(&first), (1..=WINDOW).collect::<Vec<_>>());
    assert_eq!(q.n_ready() as u64, 2 * WINDOW, "the rest waits");
    let half = CONSUMER_CREDIT_WINDOW / 2;
    let next = q.add_credit(&key("c"), half, &mut Unlimited);
    let expected: Vec<u64> = (WINDOW + 1..=WINDOW + u64::from(half)).collect();
    assert_eq!(ids(&next), expected, "exactly the credit returned");
    assert!(next.iter().all(|d| d.settled == no_ack));
}

#[test]
fn a_no_ack_consumer_takes_one_window_until_credit_returns() {
    drains_by_window(0, true);
    // no_ack ignores prefetch: a prefetch set on its channel does not lift the window.
    drains_by_window(5, true);
}

#[test]
fn a_prefetch_0_manual_ack_consumer_takes_one_window_until_credit_returns() {
    drains_by_window(0, false);
}

#[test]
fn a_settle_does_not_refill_the_window_of_a_prefetch_0_consumer() {
    let mut q = backlog(WINDOW + 1);
    q.add_consumer(key("c"), 0, false, false, &mut Unlimited);
    let (settled, next) = q.settle(1, 1, 1, &mut Unlimited);
    assert!(settled);
    assert!(next.is_empty(), "only Credit refills the window: {next:?}");
}

#[test]
fn credit_never_lifts_a_consumer_past_its_window() {
    let mut q = Queue::default();
    q.add_consumer(key("c"), 0, true, false, &mut Unlimited);
    assert!(q.add_credit(&key("c"), u32::MAX, &mut Unlimited).is_empty());
    for id in 1..=2 * WINDOW {
        assert!(matches!(
            q.offer(id, None, 1, &mut Unlimited),
            Offer::Taken(_)
        ));
    }
    assert_eq!(
        q.n_ready() as u64,
        WINDOW,
        "one window went, the rest waits"
    );
}

#[test]
fn credit_for_an_unknown_or_prefetch_bound_consumer_changes_nothing() {
    let mut q = backlog(3);
    q.add_consumer(key("bound"), 1, false, false, &mut Unlimited);
    let before = q.clone();
    assert!(q.add_credit(&key("nobody"), 10, &mut Unlimited).is_empty());
    assert!(q.add_credit(&key("bound"), 10, &mut Unlimited).is_empty());
    assert_eq!(q, before);
}

#[test]
fn a_consumer_out_of_credit_is_skipped_and_the_others_served() {
    let mut q = backlog(WINDOW);
    q.add_consumer(key("a"), 0, true, false, &mut Unlimited);
    assert_eq!(q.n_ready(), 0);
    q.add_consumer(key("b"), 1, false, false, &mut Unlimited);
    let Offer::Taken(next) = q.offer(WINDOW + 1, None, 1, &mut Unlimited) else {
        panic!("refused");
    };
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].consumer, key("b"), "a has no credit left");
}
