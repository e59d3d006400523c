//! Machine version 3 (`Command::COMPAT_MACHINE_VERSION`) changes what the same commands do:
//! requeues go back to their places and unbinding what is not there is unbind-ok. A cluster
//! still at version 2 (a rolling upgrade) keeps the old rules on every member; all switch at
//! the `SetMachineVersion` entry.

use super::tests::{apply, body, holder, log_id, publish};
use super::*;
use crate::broker::command::{Refusal, Reply};
use crate::broker::test_support::QueueDecl;

/// The reply of `command` applied alone as entry `index`.
fn reply_of(sm: &BrokerStateMachine, index: u64, command: Command) -> Result<Reply, Refusal> {
    let request = Batch {
        time_ms: 1_000,
        commands: vec![command],
        origin: None,
    }
    .to_request();
    let mut inner = sm.lock();
    inner.body.last_applied = Some(log_id(index));
    let response = inner.apply_batch(&log_id(index), &request).expect("apply");
    response.replies.into_iter().next().expect("one reply")
}

fn get(no_ack: bool) -> Command {
    Command::Get {
        queue: "q".into(),
        holder: holder(),
        no_ack,
    }
}

fn requeue(msg_id: u64) -> Command {
    Command::Requeue {
        queue: "q".into(),
        msg_ids: vec![msg_id],
        conn: 1,
        channel: 1,
    }
}

/// From entry `index` on: four messages published to "q" (ids from `first_id`), three
/// taken by basic.get, the second then the third requeued one at a time; the ids basic.get
/// then finds, in order. Uses 6 entries.
fn order_after_requeues(sm: &BrokerStateMachine, index: u64, first_id: u64) -> Vec<u64> {
    let publishes = (0..4)
        .map(|n| publish("q", body(first_id + n, 8)))
        .collect();
    apply(sm, index, publishes);
    apply(sm, index + 1, vec![get(false), get(false), get(false)]);
    apply(sm, index + 2, vec![requeue(first_id + 1)]);
    apply(sm, index + 3, vec![requeue(first_id + 2)]);
    let replies = apply(sm, index + 4, vec![get(true), get(true), get(true)]);
    apply(
        sm,
        index + 5,
        vec![Command::Settle {
            queue: "q".into(),
            msg_ids: vec![first_id],
            conn: 1,
            channel: 1,
        }],
    );
    let got = replies.into_iter().map(|reply| match reply {
        Reply::Got { msg_id, .. } => msg_id,
        other => panic!("expected a message, got {other:?}"),
    });
    got.collect()
}

fn unbind_missing() -> Command {
    Command::QueueUnbind {
        queue: "gone".into(),
        exchange: "amq.direct".into(),
        routing_key: "k".into(),
        arguments: Vec::new(),
        conn: 1,
    }
}

#[test]
fn version_2_keeps_its_rules_until_the_cluster_moves_to_3() {
    let sm = BrokerStateMachine::in_memory();
    apply(&sm, 1, vec![Command::SetMachineVersion { version: 2 }]);
    apply(&sm, 2, vec![QueueDecl::new("q").command()]);
    let at_2 = order_after_requeues(&sm, 3, 1);
    assert_eq!(
        at_2,
        vec![3, 2, 4],
        "version 2: each requeue goes to the head"
    );
    let refused = reply_of(&sm, 9, unbind_missing()).expect_err("version 2 refuses");
    assert_eq!(refused.reply_code, 404);

    apply(&sm, 10, vec![Command::SetMachineVersion { version: 3 }]);
    let at_3 = order_after_requeues(&sm, 11, 5);
    assert_eq!(
        at_3,
        vec![6, 7, 8],
        "version 3: each requeue goes back to its place"
    );
    assert_eq!(reply_of(&sm, 17, unbind_missing()), Ok(Reply::Done));
}

fn consume(tag: &str, channel: u16, priority: Option<i32>) -> Command {
    let consumer = crate::broker::queue::ConsumerKey {
        conn: 1,
        channel,
        tag: tag.into(),
    };
    match priority {
        None => Command::Consume {
            queue: "q".into(),
            consumer,
            prefetch: 1,
            no_ack: false,
            exclusive: false,
        },
        Some(priority) => Command::ConsumeWithPriority {
            queue: "q".into(),
            consumer,
            prefetch: 1,
            no_ack: false,
            exclusive: false,
            priority,
        },
    }
}

/// Machine version 4 brings consumer priorities: a cluster at 3 cannot apply their command
/// (its members may not read it) and writes snapshot format 6; at 4 a consumer's priority
/// decides who is served, and survives a snapshot file (format 7) and a reopen.
#[test]
fn consumer_priorities_need_version_4_and_survive_a_snapshot_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = BrokerStateMachine::open(dir.path()).expect("open");
    let format = || std::fs::read(dir.path().join(SNAPSHOT_FILE)).expect("snapshot")[0];
    apply(&sm, 1, vec![Command::SetMachineVersion { version: 3 }]);
    apply(&sm, 2, vec![QueueDecl::new("q").command()]);
    let request = Batch {
        time_ms: 1_000,
        commands: vec![consume("high", 2, Some(5))],
        origin: None,
    }
    .to_request();
    let refused = sm.lock().apply_batch(&log_id(3), &request);
    assert!(refused.is_err(), "an entry of version 4 in a cluster at 3");
    sm.build_and_write().expect("build snapshot");
    assert_eq!(format(), 6, "machine version 3 writes format 6");

    apply(&sm, 3, vec![Command::SetMachineVersion { version: 4 }]);
    apply(
        &sm,
        4,
        vec![consume("low", 1, None), consume("high", 2, Some(5))],
    );
    apply(&sm, 5, vec![publish("q", body(1, 8))]);
    let held = |sm: &BrokerStateMachine, channel| {
        sm.with_broker(|b| {
            b.queue("/", "q")
                .expect("q")
                .queue
                .checked_out_to(1, channel)
        })
    };
    assert_eq!(
        (held(&sm, 2), held(&sm, 1)),
        (vec![1], vec![]),
        "high first"
    );
    sm.build_and_write().expect("build snapshot");
    assert_eq!(format(), 7);
    let digest = sm.digest();
    drop(sm);

    let sm = BrokerStateMachine::open(dir.path()).expect("reopen");
    assert_eq!(sm.digest(), digest);
    let priorities = sm.with_broker(|b| b.queue("/", "q").expect("q").queue.consumer_priorities());
    assert_eq!(priorities, vec![(1, 5)]);
    // "high" is full (prefetch 1): the next goes to "low"; once "high" settles, it is first.
    apply(&sm, 6, vec![publish("q", body(2, 8))]);
    assert_eq!(held(&sm, 1), vec![2]);
    let settle = Command::Settle {
        queue: "q".into(),
        msg_ids: vec![1],
        conn: 1,
        channel: 2,
    };
    apply(&sm, 7, vec![settle, publish("q", body(3, 8))]);
    assert_eq!((held(&sm, 2), held(&sm, 1)), (vec![3], vec![2]));
}

/// A publish to "q" of a message with `priority` (properties: only the priority flag).
fn publish_priority(n: u64, priority: u8) -> Command {
    match publish("q", body(n, 8)) {
        Command::Publish {
            exchange,
            routing_key,
            mandatory,
            headers,
            content,
            expiration_ms,
        } => Command::Publish {
            exchange,
            routing_key,
            mandatory,
            headers,
            content: crate::broker::command::Content {
                properties: bytes::Bytes::from(vec![0x08, 0x00, priority]),
                body: content.body,
            },
            expiration_ms,
        },
        other => other,
    }
}

fn declare_max_priority(name: &str, max: i64) -> Command {
    use crate::broker::exchange::HeaderValue;
    QueueDecl {
        arguments: vec![("x-max-priority".into(), HeaderValue::Int(max))],
        ..QueueDecl::new(name)
    }
    .command()
}

/// The ids basic.get (no_ack) finds in "q", `n` of them.
/// Deletes queue `q` and moves the cluster to version 4 in one entry at `index`, so the
/// test can declare `q` again under version 4's rules.
fn delete_q_and_move_to_4(sm: &BrokerStateMachine, index: u64) {
    let delete = Command::QueueDelete {
        name: "q".into(),
        if_unused: false,
        if_empty: false,
        conn: 1,
    };
    let upgrade = Command::SetMachineVersion { version: 4 };
    apply(sm, index, vec![delete, upgrade]);
}

fn get_ids(sm: &BrokerStateMachine, index: u64, n: usize) -> Vec<u64> {
    let replies = apply(sm, index, (0..n).map(|_| get(true)).collect());
    let got = replies.into_iter().map(|reply| match reply {
        Reply::Got { msg_id, .. } => msg_id,
        other => panic!("expected a message, got {other:?}"),
    });
    got.collect()
}

/// Machine version 4 makes a queue declared with x-max-priority a priority queue, and
/// checks the argument; at 3 the same declare made a plain queue and took any value. The
/// priorities of queue and messages (one checked out) survive a snapshot file (format 7)
/// and a reopen.
#[test]
fn priority_queues_come_with_version_4_and_survive_a_snapshot_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = BrokerStateMachine::open(dir.path()).expect("open");
    let format = || std::fs::read(dir.path().join(SNAPSHOT_FILE)).expect("snapshot")[0];
    apply(&sm, 1, vec![Command::SetMachineVersion { version: 3 }]);
    apply(&sm, 2, vec![declare_max_priority("q", 300)]);
    apply(&sm, 3, vec![publish_priority(1, 0), publish_priority(2, 9)]);
    assert_eq!(get_ids(&sm, 4, 2), [1, 2], "version 3: first in, first out");
    delete_q_and_move_to_4(&sm, 5);

    let refused = reply_of(&sm, 6, declare_max_priority("q", 300)).expect_err("refused");
    assert_eq!(refused.reply_code, 406);
    apply(&sm, 7, vec![declare_max_priority("q", 5)]);
    let publishes = [(3, 1), (4, 5), (5, 0), (6, 9), (7, 1)];
    apply(
        &sm,
        8,
        publishes.map(|(n, p)| publish_priority(n, p)).to_vec(),
    );
    // One checked out: its priority must survive too, for its requeue.
    let taken = reply_of(&sm, 9, get(false)).expect("basic.get");
    assert!(matches!(taken, Reply::Got { msg_id: 4, .. }), "{taken:?}");
    sm.build_and_write().expect("build snapshot");
    assert_eq!(format(), 7);
    let digest = sm.digest();
    drop(sm);

    let sm = BrokerStateMachine::open(dir.path()).expect("reopen");
    assert_eq!(sm.digest(), digest);
    apply(&sm, 10, vec![requeue(4), publish_priority(8, 5)]);
    assert_eq!(get_ids(&sm, 11, 6), [4, 6, 8, 3, 7, 5]);
}

/// Machine version 4 makes a queue declared with x-single-active-consumer serve one
/// consumer at a time (at 3 the same declare made a plain queue); the flag survives a
/// snapshot file, and when the active consumer is cancelled the next takes over at once.
#[test]
fn single_active_consumer_comes_with_version_4_and_survives_a_snapshot_file() {
    use crate::broker::exchange::HeaderValue;
    let sac = || {
        QueueDecl {
            arguments: vec![("x-single-active-consumer".into(), HeaderValue::Bool(true))],
            ..QueueDecl::new("q")
        }
        .command()
    };
    let held = |sm: &BrokerStateMachine, channel| {
        sm.with_broker(|b| {
            b.queue("/", "q")
                .expect("q")
                .queue
                .checked_out_to(1, channel)
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = BrokerStateMachine::open(dir.path()).expect("open");
    apply(&sm, 1, vec![Command::SetMachineVersion { version: 3 }]);
    apply(
        &sm,
        2,
        vec![sac(), consume("a", 1, None), consume("b", 2, None)],
    );
    apply(
        &sm,
        3,
        vec![publish("q", body(1, 8)), publish("q", body(2, 8))],
    );
    assert_eq!(
        (held(&sm, 1), held(&sm, 2)),
        (vec![1], vec![2]),
        "version 3: both"
    );
    delete_q_and_move_to_4(&sm, 4);

    apply(
        &sm,
        5,
        vec![sac(), consume("a", 1, None), consume("b", 2, None)],
    );
    let publishes = (3..=5).map(|n| publish("q", body(n, 8))).collect();
    apply(&sm, 6, publishes);
    // Prefetch 1: "a" holds one, the rest wait for it; "b" gets none.
    assert_eq!((held(&sm, 1), held(&sm, 2)), (vec![3], vec![]));
    sm.build_and_write().expect("build snapshot");
    drop(sm);

    let sm = BrokerStateMachine::open(dir.path()).expect("reopen");
    let cancel = Command::Cancel {
        queue: "q".into(),
        consumer: crate::broker::queue::ConsumerKey {
            conn: 1,
            channel: 1,
            tag: "a".into(),
        },
    };
    apply(&sm, 7, vec![cancel]);
    assert_eq!(
        (held(&sm, 1), held(&sm, 2)),
        (vec![3], vec![4]),
        "b took over"
    );
}
