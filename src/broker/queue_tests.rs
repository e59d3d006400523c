//! Unit tests of the queue's bookkeeping (the property test is in queue_prop_tests.rs).

use super::*;
use crate::broker::args::Overflow;
use crate::broker::channel_limit::Unlimited;
use crate::broker::ready::RequeueTo;

/// Offers a one-byte message to a queue that must take it.
fn enqueue(q: &mut Queue, msg_id: u64, expires_at_ms: Option<u64>) -> Vec<Delivery> {
    match q.offer(msg_id, expires_at_ms, 1, &mut Unlimited) {
        Offer::Taken(deliveries) => deliveries,
        refused => panic!("message {msg_id} refused: {refused:?}"),
    }
}

fn key(conn: u64, channel: u16, tag: &str) -> ConsumerKey {
    ConsumerKey {
        conn,
        channel,
        tag: tag.to_string(),
    }
}

#[test]
fn prefetch_limits_deliveries_and_a_settle_frees_credit() {
    let mut q = Queue::default();
    assert!(q
        .add_consumer(key(1, 1, "a"), 2, false, false, &mut Unlimited)
        .is_empty());
    let first: Vec<u64> = (1..=3)
        .flat_map(|id| enqueue(&mut q, id, None))
        .map(|d| d.msg_id)
        .collect();
    assert_eq!(first, vec![1, 2]);
    assert_eq!((q.n_ready(), q.n_unacked()), (1, 2));
    let (settled, next) = q.settle(1, 1, 1, &mut Unlimited);
    assert!(settled);
    assert_eq!(next.iter().map(|d| d.msg_id).collect::<Vec<_>>(), vec![3]);
}

/// Regression (found by the state property test): a settle of a delivery made to a
/// cancelled consumer credited the new consumer that took its tag on the same channel,
/// which then got more than its prefetch (or tripped the unacked-count assertion).
#[test]
fn a_cancelled_consumers_settle_does_not_credit_a_new_consumer_with_its_tag() {
    let mut q = Queue::default();
    q.add_consumer(key(1, 1, "a"), 1, false, false, &mut Unlimited);
    assert_eq!(enqueue(&mut q, 1, None).len(), 1);
    assert!(q.cancel_consumer(&key(1, 1, "a")));
    q.add_consumer(key(1, 1, "a"), 1, false, false, &mut Unlimited);
    assert_eq!(
        enqueue(&mut q, 2, None).len(),
        1,
        "the new consumer holds one"
    );
    assert!(enqueue(&mut q, 3, None).is_empty());
    let (settled, next) = q.settle(1, 1, 1, &mut Unlimited);
    assert!(settled, "the old delivery is still the channel's to settle");
    assert!(
        next.is_empty(),
        "the new consumer is still at its prefetch: {next:?}"
    );
    let (_, next) = q.settle(2, 1, 1, &mut Unlimited);
    assert_eq!(next.iter().map(|d| d.msg_id).collect::<Vec<_>>(), vec![3]);
}

#[test]
fn consumers_are_served_round_robin() {
    let mut q = Queue::default();
    q.add_consumer(key(1, 1, "a"), 0, false, false, &mut Unlimited);
    q.add_consumer(key(2, 1, "b"), 0, false, false, &mut Unlimited);
    let tags: Vec<String> = (1..=4)
        .flat_map(|id| enqueue(&mut q, id, None))
        .map(|d| d.consumer.tag)
        .collect();
    assert_eq!(tags, vec!["a", "b", "a", "b"]);
}

#[test]
fn closing_a_channel_requeues_its_messages_as_redelivered_in_order() {
    let mut q = Queue::default();
    for id in 1..=3 {
        enqueue(&mut q, id, None);
    }
    q.add_consumer(key(1, 1, "a"), 0, false, false, &mut Unlimited);
    assert!(q
        .channel_closed(1, 1, RequeueTo::Head, &mut Unlimited)
        .is_empty());
    assert_eq!(q.n_consumers(), 0);
    let redelivered = q.add_consumer(key(2, 1, "b"), 0, false, false, &mut Unlimited);
    let seen: Vec<(u64, bool, u32)> = redelivered
        .iter()
        .map(|d| (d.msg_id, d.redelivered, d.delivery_count))
        .collect();
    assert_eq!(seen, vec![(1, true, 1), (2, true, 1), (3, true, 1)]);
}

#[test]
fn settle_from_another_channel_is_refused() {
    let mut q = Queue::default();
    q.add_consumer(key(1, 1, "a"), 0, false, false, &mut Unlimited);
    enqueue(&mut q, 7, None);
    assert!(!q.settle(7, 1, 2, &mut Unlimited).0);
    assert!(!q.settle(8, 1, 1, &mut Unlimited).0);
    assert!(q.settle(7, 1, 1, &mut Unlimited).0);
    assert!(
        !q.settle(7, 1, 1, &mut Unlimited).0,
        "a second settle of the same message must be refused"
    );
}

#[test]
fn no_ack_consumers_settle_on_delivery() {
    let mut q = Queue::default();
    q.add_consumer(key(1, 1, "a"), 1, true, false, &mut Unlimited);
    assert_eq!((1..=5).flat_map(|id| enqueue(&mut q, id, None)).count(), 5);
    assert_eq!((q.n_ready(), q.n_unacked()), (0, 0));
}

#[test]
fn get_takes_the_head_and_purge_drops_only_ready() {
    let mut q = Queue::default();
    for id in 1..=3 {
        enqueue(&mut q, id, None);
    }
    let got = q.get(key(1, 1, ""), false).map(|d| d.msg_id);
    assert_eq!(got, Some(1));
    assert_eq!(q.purge(), vec![2, 3]);
    assert_eq!(q.n_unacked(), 1);
    assert!(q.get(key(1, 1, ""), true).is_none());
}

#[test]
fn expired_heads_are_set_aside_on_touch_get_and_requeue() {
    let mut q = Queue::default();
    enqueue(&mut q, 1, Some(10));
    enqueue(&mut q, 2, Some(5));
    enqueue(&mut q, 3, None);
    q.touch(6);
    assert!(
        q.take_dying().is_empty(),
        "a live head shields what is behind it"
    );
    q.touch(10);
    let expired = vec![(1, DeathReason::Expired), (2, DeathReason::Expired)];
    assert_eq!(q.take_dying(), expired);
    assert_eq!(q.get(key(1, 1, ""), false).map(|d| d.msg_id), Some(3));
    enqueue(&mut q, 4, Some(12));
    q.add_consumer(key(1, 1, "a"), 0, false, false, &mut Unlimited);
    q.touch(20);
    assert!(q.take_dying().is_empty(), "unacked messages do not expire");
    q.requeue(&[4], 1, 1, RequeueTo::Head, &mut Unlimited);
    assert_eq!(
        q.take_dying(),
        vec![(4, DeathReason::Expired)],
        "a requeued message keeps its expiry"
    );
}

fn limited(max_length: Option<u64>, max_length_bytes: Option<u64>, overflow: Overflow) -> Queue {
    Queue::new(QueueLimits {
        max_length,
        max_length_bytes,
        overflow,
        delivery_limit: None,
    })
}

fn ready_ids(q: &Queue) -> Vec<u64> {
    q.ready.iter().map(|r| r.msg_id).collect()
}

#[test]
fn drop_head_makes_room_by_length_and_by_bytes() {
    let mut q = limited(Some(2), None, Overflow::DropHead);
    for id in 1..=3 {
        assert!(matches!(
            q.offer(id, None, 10, &mut Unlimited),
            Offer::Taken(_)
        ));
    }
    assert_eq!(ready_ids(&q), vec![2, 3]);
    assert_eq!(q.take_dying(), vec![(1, DeathReason::Maxlen)]);

    let mut q = limited(None, Some(10), Overflow::DropHead);
    q.offer(1, None, 4, &mut Unlimited);
    q.offer(2, None, 4, &mut Unlimited);
    q.offer(3, None, 5, &mut Unlimited);
    assert_eq!(ready_ids(&q), vec![2, 3], "9 bytes fit, 13 do not");
    assert_eq!(q.ready.n_bytes(), 9);
    q.offer(4, None, 11, &mut Unlimited);
    assert!(q.ready.is_empty(), "a body over the limit drops itself too");
    let dropped: Vec<u64> = q.take_dying().iter().map(|(id, _)| *id).collect();
    assert_eq!(dropped, vec![1, 2, 3, 4]);
}

#[test]
fn checked_out_messages_take_no_room() {
    let mut q = limited(Some(1), None, Overflow::RejectPublish);
    q.add_consumer(key(1, 1, "a"), 2, false, false, &mut Unlimited);
    for id in 1..=3 {
        q.offer(id, None, 1, &mut Unlimited);
    }
    assert_eq!((q.n_unacked(), q.n_ready()), (2, 1));
    assert_eq!(
        q.offer(4, None, 1, &mut Unlimited),
        Offer::Refused { dead_letter: false }
    );
    assert!(q.take_dying().is_empty());
}

#[test]
fn reject_publish_refuses_and_reject_publish_dlx_sets_aside() {
    let mut q = limited(Some(1), None, Overflow::RejectPublish);
    assert!(matches!(
        q.offer(1, None, 1, &mut Unlimited),
        Offer::Taken(_)
    ));
    assert_eq!(
        q.offer(2, None, 1, &mut Unlimited),
        Offer::Refused { dead_letter: false }
    );
    assert_eq!(ready_ids(&q), vec![1]);
    assert!(q.all_msg_ids() == vec![1], "a refused message is not held");

    let mut q = limited(None, Some(3), Overflow::RejectPublishDlx);
    assert!(matches!(
        q.offer(1, None, 3, &mut Unlimited),
        Offer::Taken(_)
    ));
    assert_eq!(
        q.offer(2, None, 1, &mut Unlimited),
        Offer::Refused { dead_letter: true }
    );
    assert_eq!(q.all_msg_ids(), vec![1, 2], "held until dead-lettered");
    assert_eq!(q.take_dying(), vec![(2, DeathReason::Maxlen)]);
}

#[test]
fn a_requeue_past_the_delivery_limit_dies_instead() {
    let mut q = Queue::new(QueueLimits {
        delivery_limit: Some(1),
        ..QueueLimits::default()
    });
    enqueue(&mut q, 1, None);
    q.add_consumer(key(1, 1, "a"), 1, false, false, &mut Unlimited);
    let again = q.requeue(&[1], 1, 1, RequeueTo::Head, &mut Unlimited);
    assert_eq!(again.len(), 1, "count 1 is within a limit of 1");
    assert_eq!(again[0].delivery_count, 1);
    assert!(q
        .channel_closed(1, 1, RequeueTo::Head, &mut Unlimited)
        .is_empty());
    assert_eq!(q.take_dying(), vec![(1, DeathReason::DeliveryLimit)]);
    assert_eq!((q.n_ready(), q.n_unacked()), (0, 0));
}

#[test]
fn reject_sets_the_message_aside_and_frees_credit() {
    let mut q = Queue::default();
    q.add_consumer(key(1, 1, "a"), 1, false, false, &mut Unlimited);
    enqueue(&mut q, 1, None);
    enqueue(&mut q, 2, None);
    assert!(
        !q.reject(1, 1, 2, &mut Unlimited).0,
        "only the holding channel rejects"
    );
    let (ok, next) = q.reject(1, 1, 1, &mut Unlimited);
    assert!(ok);
    assert_eq!(next.iter().map(|d| d.msg_id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(q.take_dying(), vec![(1, DeathReason::Rejected)]);
}

#[test]
fn an_exclusive_consumer_keeps_the_queue_to_itself() {
    let mut q = Queue::default();
    assert!(!q.in_exclusive_use(true));
    q.add_consumer(key(1, 1, "a"), 0, false, false, &mut Unlimited);
    assert!(
        q.in_exclusive_use(true),
        "an exclusive consumer needs an idle queue"
    );
    assert!(!q.in_exclusive_use(false));
    q.cancel_consumer(&key(1, 1, "a"));
    q.add_consumer(key(1, 1, "b"), 0, false, true, &mut Unlimited);
    assert!(
        q.in_exclusive_use(false),
        "nobody joins an exclusive consumer"
    );
    q.channel_closed(1, 1, RequeueTo::Head, &mut Unlimited);
    assert!(!q.in_exclusive_use(true));
}

/// Messages requeued one at a time, in any order, go back to their places ahead of later
/// messages (RabbitMQ; machine version 3); version 2 put each at the head.
#[test]
fn requeues_return_messages_to_their_places() {
    let order_after = |to: RequeueTo| {
        let mut q = Queue::default();
        q.add_consumer(key(1, 1, "a"), 4, false, false, &mut Unlimited);
        for id in 1..=5 {
            enqueue(&mut q, id, None);
        }
        q.cancel_consumer(&key(1, 1, "a"));
        for id in [2, 4, 3, 1] {
            q.requeue(&[id], 1, 1, to, &mut Unlimited);
        }
        q.ready.iter().map(|r| r.msg_id).collect::<Vec<_>>()
    };
    assert_eq!(order_after(RequeueTo::Place), vec![1, 2, 3, 4, 5]);
    assert_eq!(order_after(RequeueTo::Head), vec![1, 3, 4, 2, 5]);
}
