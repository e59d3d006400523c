//! Single active consumer (`x-single-active-consumer`, machine version 4): only the
//! earliest registered consumer still here is served; when it goes, the next one takes
//! over, and a message is never checked out to two at once.

use super::*;
use crate::broker::channel_limit::Unlimited;
use crate::broker::ready::RequeueTo;

fn enqueue(q: &mut Queue, msg_id: u64) -> Vec<Delivery> {
    match q.offer(msg_id, None, 1, &mut Unlimited) {
        Offer::Taken(deliveries) => deliveries,
        refused => panic!("message {msg_id} refused: {refused:?}"),
    }
}

fn key(channel: u16, tag: &str) -> ConsumerKey {
    ConsumerKey {
        conn: 1,
        channel,
        tag: tag.to_string(),
    }
}

fn single_active() -> Queue {
    let mut q = Queue::default();
    q.set_single_active(true);
    q
}

fn ids(deliveries: &[Delivery], tag: &str) -> Vec<u64> {
    let theirs = deliveries.iter().filter(|d| d.consumer.tag == tag);
    theirs.map(|d| d.msg_id).collect()
}

#[test]
fn only_the_first_consumer_is_served_even_when_it_is_full() {
    let mut q = single_active();
    q.add_consumer_with_priority(key(1, "first"), 2, false, false, 0, &mut Unlimited);
    // A higher priority does not make a later consumer the active one.
    q.add_consumer_with_priority(key(2, "second"), 10, false, false, 9, &mut Unlimited);
    let out: Vec<Delivery> = (1..=4).flat_map(|id| enqueue(&mut q, id)).collect();
    assert_eq!(ids(&out, "first"), [1, 2]);
    assert_eq!(ids(&out, "second"), Vec::<u64>::new());
    assert_eq!(q.n_ready(), 2, "the rest wait for the active one");
    let (_, next) = q.settle(1, 1, 1, &mut Unlimited);
    assert_eq!(ids(&next, "first"), [3]);
}

#[test]
fn the_next_consumer_takes_over_when_the_active_one_goes() {
    let mut q = single_active();
    q.add_consumer(key(1, "first"), 2, false, false, &mut Unlimited);
    q.add_consumer(key(2, "second"), 2, false, false, &mut Unlimited);
    q.add_consumer(key(3, "third"), 2, false, false, &mut Unlimited);
    for id in 1..=4 {
        enqueue(&mut q, id);
    }
    tracing::info!("--- the first one's channel closes: its two come back, to the second");
    let out = q.channel_closed(1, 1, RequeueTo::Place, &mut Unlimited);
    assert_eq!(ids(&out, "second"), [1, 2]);
    assert!(ids(&out, "third").is_empty());
    tracing::info!("--- the second cancels: it keeps its two; the third gets the rest");
    assert!(q.cancel_consumer(&key(2, "second")));
    let out = q.assign(&mut Unlimited);
    assert_eq!(ids(&out, "third"), [3, 4]);
    assert_eq!(q.n_unacked(), 4, "each message checked out once");
}
