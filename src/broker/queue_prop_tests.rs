//! Property test of the queue's bookkeeping: random workloads against a queue with random
//! limits (max-length, max-length-bytes, overflow, delivery-limit) and the features of
//! machine version 4 (a maximum priority, single active consumer, consumer priorities).

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::broker::args::Overflow;
use crate::broker::channel_limit::Unlimited;

fn key(conn: u64, channel: u16, tag: &str) -> ConsumerKey {
    ConsumerKey {
        conn,
        channel,
        tag: tag.to_string(),
    }
}

/// One step of a random workload against a queue.
#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        body_bytes: u64,
        priority: u8,
    },
    AddConsumer {
        conn: u64,
        prefetch: u32,
        no_ack: bool,
        exclusive: bool,
        priority: i32,
    },
    Cancel {
        index: usize,
    },
    Settle {
        index: usize,
    },
    Reject {
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
    Credit {
        index: usize,
        n: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4u64, 0..4u8).prop_map(|(body_bytes, priority)| Op::Enqueue { body_bytes, priority }),
        1 => (0..3u64, 0..4u32, any::<bool>(), prop::bool::weighted(0.2), -1..2i32).prop_map(
            |(conn, prefetch, no_ack, exclusive, priority)| Op::AddConsumer { conn, prefetch, no_ack, exclusive, priority }
        ),
        1 => (0..8usize).prop_map(|index| Op::Cancel { index }),
        3 => (0..64usize).prop_map(|index| Op::Settle { index }),
        1 => (0..64usize).prop_map(|index| Op::Reject { index }),
        1 => (0..64usize).prop_map(|index| Op::Requeue { index }),
        1 => any::<bool>().prop_map(|no_ack| Op::Get { no_ack }),
        1 => (0..3u64).prop_map(|conn| Op::CloseChannel { conn }),
        1 => (0..3u64).prop_map(|conn| Op::CloseConnection { conn }),
        1 => (0..3u64).prop_map(|conn| Op::Recover { conn }),
        1 => (0..20u64).prop_map(|ttl_ms| Op::EnqueueWithTtl { ttl_ms }),
        1 => (0..10u64).prop_map(|advance_ms| Op::Touch { advance_ms }),
        1 => Just(Op::Purge),
        1 => (0..8usize, 0..3000u32).prop_map(|(index, n)| Op::Credit { index, n }),
    ]
}

/// Mostly no limit, sometimes a small one, so limits bite often.
fn limits() -> impl Strategy<Value = QueueLimits> {
    let overflow = prop_oneof![
        Just(Overflow::DropHead),
        Just(Overflow::RejectPublish),
        Just(Overflow::RejectPublishDlx),
    ];
    let small = |max: u64| prop::option::weighted(0.4, 0..max);
    (small(4), small(8), overflow, small(3)).prop_map(
        |(max_length, max_length_bytes, overflow, delivery_limit)| QueueLimits {
            max_length,
            max_length_bytes,
            overflow,
            delivery_limit,
        },
    )
}

/// What a workload did so far, beside the queue.
#[derive(Clone, Debug, Default)]
struct Model {
    /// Ids used so far are `1..=published`.
    published: u64,
    n_consumers_made: u64,
    /// Every id the queue let die, each at most once.
    dead: BTreeSet<u64>,
}

fn offer(
    q: &mut Queue,
    model: &mut Model,
    expires_at_ms: Option<u64>,
    body_bytes: u64,
    priority: u8,
) {
    model.published += 1;
    let id = model.published;
    let offer = q.offer_with_priority(id, expires_at_ms, body_bytes, priority, &mut Unlimited);
    if let Offer::Refused { .. } = offer {
        assert!(q.limits.overflow != Overflow::DropHead, "drop-head refused");
    }
}

fn step(q: &mut Queue, op: &Op, model: &mut Model) {
    match op {
        Op::Enqueue {
            body_bytes,
            priority,
        } => offer(q, model, None, *body_bytes, *priority),
        Op::AddConsumer {
            conn,
            prefetch,
            no_ack,
            exclusive,
            priority,
        } => {
            model.n_consumers_made += 1;
            let tag = format!("c{}", model.n_consumers_made);
            if !q.in_exclusive_use(*exclusive) {
                q.add_consumer_with_priority(
                    key(*conn, 1, &tag),
                    *prefetch,
                    *no_ack,
                    *exclusive,
                    *priority,
                    &mut Unlimited,
                );
            }
        }
        Op::Cancel { index } => {
            if let Some(c) = q.consumers.get(*index).map(|c| c.key.clone()) {
                assert!(q.cancel_consumer(&c));
                // As the state does for a single-active-consumer queue (the next takes over).
                if q.single_active() {
                    q.assign(&mut Unlimited);
                }
            }
        }
        Op::Settle { index } | Op::Reject { index } | Op::Requeue { index } => {
            let Some((&id, u)) = q.unacked.iter().nth(*index) else {
                return;
            };
            let (conn, channel) = (u.consumer.conn, u.consumer.channel);
            match op {
                Op::Settle { .. } => assert!(q.settle(id, conn, channel, &mut Unlimited).0),
                Op::Reject { .. } => assert!(q.reject(id, conn, channel, &mut Unlimited).0),
                _ => {
                    q.requeue(&[id], conn, channel, RequeueTo::Place, &mut Unlimited);
                }
            }
        }
        Op::Get { no_ack } => {
            q.get(key(9, 1, ""), *no_ack);
        }
        Op::CloseChannel { conn } => {
            q.channel_closed(*conn, 1, RequeueTo::Place, &mut Unlimited);
        }
        Op::CloseConnection { conn } => {
            q.connection_closed(*conn, RequeueTo::Place, &mut Unlimited);
        }
        Op::EnqueueWithTtl { ttl_ms } => offer(q, model, Some(q.now_ms + ttl_ms), 1, 0),
        Op::Touch { advance_ms } => {
            q.touch(q.now_ms + advance_ms);
            assert!(
                !q.ready.front().is_some_and(|r| q.is_expired(r)),
                "touch left an expired head"
            );
        }
        Op::Recover { conn } => {
            q.recover(*conn, 1, RequeueTo::Place, &mut Unlimited);
        }
        Op::Purge => {
            q.purge();
        }
        Op::Credit { index, n } => {
            if let Some(c) = q.consumers.get(*index).map(|c| c.key.clone()) {
                q.add_credit(&c, *n, &mut Unlimited);
            }
        }
    }
    for (id, _) in q.take_dying() {
        assert!(model.dead.insert(id), "message {id} died twice");
    }
}

fn check_invariants(q: &Queue, model: &Model) {
    let ready: BTreeSet<u64> = q.ready.iter().map(|r| r.msg_id).collect();
    assert_eq!(ready.len(), q.ready.len(), "a message is ready twice");
    // Requeues put messages back in place: the ready list stays in (priority, publish)
    // order, which without a maximum priority is publish (id) order.
    let places: Vec<(std::cmp::Reverse<u8>, u64)> = q
        .ready
        .iter()
        .map(|r| (std::cmp::Reverse(r.priority), r.msg_id))
        .collect();
    assert!(
        places.windows(2).all(|w| w[0] < w[1]),
        "ready messages out of priority and publish order"
    );
    let max = q.max_priority.unwrap_or(0);
    let mut priorities = q.ready.iter().map(|r| r.priority);
    assert!(
        priorities.all(|p| p <= max) && q.unacked.values().all(|u| u.priority <= max),
        "a priority past the queue's maximum"
    );
    assert!(
        ready.iter().all(|id| !q.unacked.contains_key(id)),
        "ready and unacked at once"
    );
    let mut live = ready.iter().chain(q.unacked.keys());
    assert!(
        live.all(|id| !model.dead.contains(id)),
        "a dead message is back"
    );
    let bytes: u64 = q.ready.iter().map(|r| r.body_bytes).sum();
    assert_eq!(bytes, q.ready.n_bytes(), "ready bytes out of step");
    if q.limits.overflow == Overflow::DropHead {
        assert!(!q.is_over_limit(), "a drop-head queue over its limits");
    }
    if let Some(limit) = q.limits.delivery_limit {
        let counts = q.ready.iter().map(|r| r.delivery_count);
        let mut counts = counts.chain(q.unacked.values().map(|u| u.delivery_count));
        assert!(
            counts.all(|n| u64::from(n) <= limit),
            "past the delivery limit"
        );
    }
    if q.consumers.iter().any(|c| c.exclusive) {
        assert_eq!(
            q.consumers.len(),
            1,
            "an exclusive consumer shares its queue"
        );
    }
    for c in &q.consumers {
        let held = q.unacked.values().filter(|u| u.consumer == c.key).count() as u32;
        assert_eq!(held, c.n_unacked, "credit out of step for {:?}", c.key);
        assert!(
            c.no_ack || c.prefetch == 0 || c.n_unacked <= c.prefetch,
            "prefetch exceeded"
        );
        assert!(
            c.n_credit <= crate::limits::CONSUMER_CREDIT_WINDOW,
            "credit past the window"
        );
    }
    // A single-active-consumer queue serves its first consumer only: no other ever got a
    // delivery (each becomes first only once every earlier one went).
    let n_serving = match q.single_active {
        true => q.consumers.len().min(1),
        false => q.consumers.len(),
    };
    for c in &q.consumers[n_serving..] {
        assert_eq!(c.n_unacked, 0, "a waiting consumer was served: {:?}", c.key);
    }
    if q.consumers[..n_serving].iter().any(has_credit) {
        assert!(
            q.ready.is_empty(),
            "a consumer has credit while messages wait"
        );
    }
}

/// The queue a snapshot carries: its state section (postcard, which leaves out what
/// machine version 4 added) with its extras put back, as `state_extras.rs` does.
fn through_snapshot(q: &Queue) -> Queue {
    let bytes = postcard::to_stdvec(q).expect("encode snapshot");
    let mut restored: Queue = postcard::from_bytes(&bytes).expect("decode snapshot");
    for (id, priority) in q.consumer_priorities() {
        assert!(restored.set_consumer_priority(id, priority));
    }
    restored.restore_max_priority(q.max_priority());
    restored.set_single_active(q.single_active());
    let by_id = q.message_priorities().into_iter().collect();
    restored
        .restore_message_priorities(&by_id)
        .expect("restore priorities");
    restored
}

proptest! {
    /// Invariants hold after every step, and a snapshot (postcard round-trip) taken midway then
    /// replayed equals straight replay: what a restarted node rebuilds is what it had.
    #[test]
    fn random_workloads_keep_invariants_and_snapshot_replay_equals_replay(
        limits in limits(),
        max_priority in prop::option::weighted(0.3, 0..3u8),
        single_active in prop::bool::weighted(0.2),
        ops in proptest::collection::vec(op(), 0..200),
        cut in 0usize..200,
    ) {
        let cut = cut.min(ops.len());
        let (mut q, mut model) = (Queue::new(limits), Model::default());
        q.set_max_priority(max_priority);
        q.set_single_active(single_active);
        let mut snapshot = None;
        for (i, op) in ops.iter().enumerate() {
            if i == cut {
                snapshot = Some((through_snapshot(&q), model.clone()));
            }
            step(&mut q, op, &mut model);
            check_invariants(&q, &model);
        }
        if let Some((mut q2, mut model2)) = snapshot {
            for op in &ops[cut..] {
                step(&mut q2, op, &mut model2);
            }
            prop_assert_eq!(q2, q);
        }
    }
}
