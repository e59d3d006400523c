//! Priority queues (`x-max-priority`, machine version 4): higher priority first, FIFO
//! within a priority, a requeued message back at its place within its priority, and a
//! priority above the queue's maximum held at it.

use super::*;
use crate::broker::channel_limit::Unlimited;
use crate::broker::ready::RequeueTo;

fn enqueue(q: &mut Queue, msg_id: u64, priority: u8) -> Vec<Delivery> {
    match q.offer_with_priority(msg_id, None, 1, priority, &mut Unlimited) {
        Offer::Taken(deliveries) => deliveries,
        refused => panic!("message {msg_id} refused: {refused:?}"),
    }
}

fn holder() -> ConsumerKey {
    ConsumerKey {
        conn: 1,
        channel: 1,
        tag: String::new(),
    }
}

/// basic.get until empty: the ids in the order they come.
fn get_all(q: &mut Queue) -> Vec<u64> {
    std::iter::from_fn(|| q.get(holder(), true).map(|d| d.msg_id)).collect()
}

fn priority_queue(max: u8) -> Queue {
    let mut q = Queue::default();
    q.set_max_priority(Some(max));
    q
}

#[test]
fn higher_priorities_come_first_and_equal_ones_in_publish_order() {
    let mut q = priority_queue(10);
    for (id, priority) in [(1, 0), (2, 5), (3, 1), (4, 5), (5, 0), (6, 10)] {
        assert!(enqueue(&mut q, id, priority).is_empty());
    }
    assert_eq!(get_all(&mut q), [6, 2, 4, 3, 1, 5]);
}

#[test]
fn a_priority_above_the_maximum_counts_as_the_maximum() {
    let mut q = priority_queue(3);
    for (id, priority) in [(1, 3), (2, 200), (3, 2), (4, 4)] {
        enqueue(&mut q, id, priority);
    }
    assert_eq!(get_all(&mut q), [1, 2, 4, 3]);
    assert_eq!(q.message_priorities(), Vec::new(), "none left");
}

#[test]
fn a_queue_without_a_maximum_ignores_priorities() {
    let mut q = Queue::default();
    for (id, priority) in [(1, 0), (2, 9), (3, 4)] {
        enqueue(&mut q, id, priority);
    }
    assert_eq!(q.message_priorities(), Vec::new());
    assert_eq!(get_all(&mut q), [1, 2, 3]);
}

#[test]
fn a_requeued_message_goes_back_to_its_place_within_its_priority() {
    let mut q = priority_queue(5);
    for (id, priority) in [(1, 1), (2, 5), (3, 1), (4, 5), (5, 1)] {
        enqueue(&mut q, id, priority);
    }
    let taken: Vec<u64> = (0..3)
        .map(|_| q.get(holder(), false).expect("a message").msg_id)
        .collect();
    assert_eq!(taken, [2, 4, 1]);
    enqueue(&mut q, 6, 5);
    // Returned one at a time, last first: each goes back to its own place.
    for id in [1, 4, 2] {
        q.requeue(&[id], 1, 1, RequeueTo::Place, &mut Unlimited);
    }
    assert_eq!(q.message_priorities().len(), 6);
    assert_eq!(get_all(&mut q), [2, 4, 6, 1, 3, 5]);
}

#[test]
fn priorities_are_listed_and_restored_by_message_id() {
    let mut q = priority_queue(9);
    for (id, priority) in [(1, 0), (2, 7), (3, 9)] {
        enqueue(&mut q, id, priority);
    }
    let taken = q.get(holder(), false).expect("a message");
    assert_eq!(taken.msg_id, 3);
    let listed = q.message_priorities();
    assert_eq!(listed, vec![(2, 7), (3, 9)]);

    // The queue as a snapshot's state section carries it: without its priorities.
    let bytes = postcard::to_stdvec(&q).expect("encode");
    let mut copy: Queue = postcard::from_bytes(&bytes).expect("decode");
    assert_ne!(copy, q);
    copy.restore_max_priority(Some(9));
    copy.restore_message_priorities(&listed.iter().copied().collect())
        .expect("restore");
    assert_eq!(copy, q);
    let unknown = [(42, 1)].into_iter().collect();
    assert!(copy.restore_message_priorities(&unknown).is_err());
}
