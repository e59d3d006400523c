//! Unit and property tests of the queue's bookkeeping.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

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
    assert!(q.add_consumer(key(1, 1, "a"), 2, false).is_empty());
    let first: Vec<u64> = (1..=3)
        .flat_map(|id| q.enqueue(id, None))
        .map(|d| d.msg_id)
        .collect();
    assert_eq!(first, vec![1, 2]);
    assert_eq!((q.n_ready(), q.n_unacked()), (1, 2));
    let (settled, next) = q.settle(1, 1, 1);
    assert!(settled);
    assert_eq!(next.iter().map(|d| d.msg_id).collect::<Vec<_>>(), vec![3]);
}

#[test]
fn consumers_are_served_round_robin() {
    let mut q = Queue::default();
    q.add_consumer(key(1, 1, "a"), 0, false);
    q.add_consumer(key(2, 1, "b"), 0, false);
    let tags: Vec<String> = (1..=4)
        .flat_map(|id| q.enqueue(id, None))
        .map(|d| d.consumer.tag)
        .collect();
    assert_eq!(tags, vec!["a", "b", "a", "b"]);
}

#[test]
fn closing_a_channel_requeues_its_messages_as_redelivered_in_order() {
    let mut q = Queue::default();
    for id in 1..=3 {
        q.enqueue(id, None);
    }
    q.add_consumer(key(1, 1, "a"), 0, false);
    assert!(q.channel_closed(1, 1).is_empty());
    assert_eq!(q.n_consumers(), 0);
    let redelivered = q.add_consumer(key(2, 1, "b"), 0, false);
    let seen: Vec<(u64, bool, u32)> = redelivered
        .iter()
        .map(|d| (d.msg_id, d.redelivered, d.delivery_count))
        .collect();
    assert_eq!(seen, vec![(1, true, 1), (2, true, 1), (3, true, 1)]);
}

#[test]
fn settle_from_another_channel_is_refused() {
    let mut q = Queue::default();
    q.add_consumer(key(1, 1, "a"), 0, false);
    q.enqueue(7, None);
    assert!(!q.settle(7, 1, 2).0);
    assert!(!q.settle(8, 1, 1).0);
    assert!(q.settle(7, 1, 1).0);
    assert!(
        !q.settle(7, 1, 1).0,
        "a second settle of the same message must be refused"
    );
}

#[test]
fn no_ack_consumers_settle_on_delivery() {
    let mut q = Queue::default();
    q.add_consumer(key(1, 1, "a"), 1, true);
    assert_eq!((1..=5).flat_map(|id| q.enqueue(id, None)).count(), 5);
    assert_eq!((q.n_ready(), q.n_unacked()), (0, 0));
}

#[test]
fn get_takes_the_head_and_purge_drops_only_ready() {
    let mut q = Queue::default();
    for id in 1..=3 {
        q.enqueue(id, None);
    }
    let got = q.get(key(1, 1, ""), false).map(|d| d.msg_id);
    assert_eq!(got, Some(1));
    assert_eq!(q.purge(), vec![2, 3]);
    assert_eq!(q.n_unacked(), 1);
    assert!(q.get(key(1, 1, ""), true).is_none());
}

/// One step of a random workload against a queue.
#[derive(Clone, Debug)]
enum Op {
    Enqueue,
    AddConsumer {
        conn: u64,
        prefetch: u32,
        no_ack: bool,
    },
    Cancel {
        index: usize,
    },
    Settle {
        index: usize,
    },
    Requeue {
        index: usize,
    },
    Get {
        no_ack: bool,
    },
    CloseChannel {
        conn: u64,
    },
    CloseConnection {
        conn: u64,
    },
    Recover {
        conn: u64,
    },
    EnqueueWithTtl {
        ttl_ms: u64,
    },
    Touch {
        advance_ms: u64,
    },
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Enqueue),
        1 => (0..3u64, 0..4u32, any::<bool>())
            .prop_map(|(conn, prefetch, no_ack)| Op::AddConsumer { conn, prefetch, no_ack }),
        1 => (0..8usize).prop_map(|index| Op::Cancel { index }),
        3 => (0..64usize).prop_map(|index| Op::Settle { index }),
        1 => (0..64usize).prop_map(|index| Op::Requeue { index }),
        1 => any::<bool>().prop_map(|no_ack| Op::Get { no_ack }),
        1 => (0..3u64).prop_map(|conn| Op::CloseChannel { conn }),
        1 => (0..3u64).prop_map(|conn| Op::CloseConnection { conn }),
        1 => (0..3u64).prop_map(|conn| Op::Recover { conn }),
        1 => (0..20u64).prop_map(|ttl_ms| Op::EnqueueWithTtl { ttl_ms }),
        1 => (0..10u64).prop_map(|advance_ms| Op::Touch { advance_ms }),
        1 => Just(Op::Purge),
    ]
}

/// Applies `op`; ids of messages published so far are `1..=*published`.
fn step(q: &mut Queue, op: &Op, published: &mut u64, n_consumers_made: &mut u64) {
    match op {
        Op::Enqueue => {
            *published += 1;
            q.enqueue(*published, None);
        }
        Op::AddConsumer {
            conn,
            prefetch,
            no_ack,
        } => {
            *n_consumers_made += 1;
            q.add_consumer(
                key(*conn, 1, &format!("c{n_consumers_made}")),
                *prefetch,
                *no_ack,
            );
        }
        Op::Cancel { index } => {
            if let Some(c) = q.consumers.get(*index).map(|c| c.key.clone()) {
                assert!(q.cancel_consumer(&c));
            }
        }
        Op::Settle { index } | Op::Requeue { index } => {
            let Some((&id, u)) = q.unacked.iter().nth(*index) else {
                return;
            };
            let (conn, channel) = (u.consumer.conn, u.consumer.channel);
            if matches!(op, Op::Settle { .. }) {
                assert!(q.settle(id, conn, channel).0);
            } else {
                q.requeue(&[id], conn, channel);
            }
        }
        Op::Get { no_ack } => {
            q.get(key(9, 1, ""), *no_ack);
        }
        Op::CloseChannel { conn } => {
            q.channel_closed(*conn, 1);
        }
        Op::CloseConnection { conn } => {
            q.connection_closed(*conn);
        }
        Op::EnqueueWithTtl { ttl_ms } => {
            *published += 1;
            q.enqueue(*published, Some(q.now_ms + ttl_ms));
        }
        Op::Touch { advance_ms } => {
            q.touch(q.now_ms + advance_ms);
            q.take_expired();
            assert!(
                !q.ready.front().is_some_and(|r| q.is_expired(r)),
                "touch left an expired head"
            );
        }
        Op::Recover { conn } => {
            q.recover(*conn, 1);
        }
        Op::Purge => {
            q.purge();
        }
    }
}

fn check_invariants(q: &Queue) {
    let ready: BTreeSet<u64> = q.ready.iter().map(|r| r.msg_id).collect();
    assert_eq!(ready.len(), q.ready.len(), "a message is ready twice");
    assert!(
        ready.iter().all(|id| !q.unacked.contains_key(id)),
        "ready and unacked at once"
    );
    for c in &q.consumers {
        let held = q.unacked.values().filter(|u| u.consumer == c.key).count() as u32;
        assert_eq!(held, c.n_unacked, "credit out of step for {:?}", c.key);
        assert!(
            c.no_ack || c.prefetch == 0 || c.n_unacked <= c.prefetch,
            "prefetch exceeded"
        );
    }
    if q.consumers.iter().any(has_credit) {
        assert!(
            q.ready.is_empty(),
            "a consumer has credit while messages wait"
        );
    }
}

proptest! {
    /// Invariants hold after every step, and a snapshot (postcard round-trip) taken midway then
    /// replayed equals straight replay: what a restarted node rebuilds is what it had.
    #[test]
    fn random_workloads_keep_invariants_and_snapshot_replay_equals_replay(
        ops in proptest::collection::vec(op(), 0..200),
        cut in 0usize..200,
    ) {
        let cut = cut.min(ops.len());
        let (mut q, mut published, mut made) = (Queue::default(), 0, 0);
        let mut snapshot = None;
        for (i, op) in ops.iter().enumerate() {
            if i == cut {
                let bytes = postcard::to_stdvec(&q).expect("encode snapshot");
                snapshot = Some((bytes, published, made));
            }
            step(&mut q, op, &mut published, &mut made);
            check_invariants(&q);
        }
        if let Some((bytes, mut published2, mut made2)) = snapshot {
            let mut q2: Queue = postcard::from_bytes(&bytes).expect("decode snapshot");
            for op in &ops[cut..] {
                step(&mut q2, op, &mut published2, &mut made2);
            }
            prop_assert_eq!(q2, q);
        }
    }
}

#[test]
fn expired_heads_are_set_aside_on_touch_get_and_requeue() {
    let mut q = Queue::default();
    q.enqueue(1, Some(10));
    q.enqueue(2, Some(5));
    q.enqueue(3, None);
    q.touch(6);
    assert!(
        q.take_expired().is_empty(),
        "a live head shields what is behind it"
    );
    q.touch(10);
    assert_eq!(q.take_expired(), vec![1, 2]);
    assert_eq!(q.get(key(1, 1, ""), false).map(|d| d.msg_id), Some(3));
    q.enqueue(4, Some(12));
    q.add_consumer(key(1, 1, "a"), 0, false);
    q.touch(20);
    assert!(
        q.take_expired().is_empty(),
        "unacked messages do not expire"
    );
    q.requeue(&[4], 1, 1);
    assert_eq!(
        q.take_expired(),
        vec![4],
        "a requeued message keeps its expiry"
    );
}
