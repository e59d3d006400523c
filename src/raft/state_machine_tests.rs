//! A disk node's stored messages live in its message store: the digest does not see where, a
//! snapshot carries them (to a restart or to a RAM node) byte-exact, and a snapshot built
//! while applies go on is the state at its own index.

use std::collections::BTreeMap;

use bytes::Bytes;
use openraft::vote::RaftLeaderIdExt;

use super::*;
use crate::broker::command::{Content, Reply};
use crate::broker::exchange::ExchangeKind;
use crate::broker::queue::ConsumerKey;
use crate::broker::test_support::{arg, exchange_declare, str_value, QueueDecl};

pub(super) fn log_id(index: u64) -> LogIdOf<TypeConfig> {
    crate::raft::types::LogId::new(
        <openraft::alias::LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(1, 1),
        index,
    )
}

/// Applies `commands` as entry `index` (no proposer session), as openraft's apply would.
pub(super) fn apply(sm: &BrokerStateMachine, index: u64, commands: Vec<Command>) -> Vec<Reply> {
    let request = Batch {
        time_ms: 1_000,
        commands,
        origin: None,
    }
    .to_request();
    let mut inner = sm.lock();
    inner.body.last_applied = Some(log_id(index));
    let response = inner.apply_batch(&log_id(index), &request).expect("apply");
    response
        .replies
        .into_iter()
        .map(|r| r.expect("command refused"))
        .collect()
}

/// A body that says which message it is, `len` bytes long.
pub(super) fn body(n: u64, len: usize) -> Bytes {
    let tag = format!("<{n}>");
    Bytes::from(
        tag.bytes()
            .cycle()
            .take(len.max(tag.len()))
            .collect::<Vec<u8>>(),
    )
}

pub(super) fn publish(queue: &str, body: Bytes) -> Command {
    publish_via("", queue, body)
}

fn publish_via(exchange: &str, routing_key: &str, body: Bytes) -> Command {
    Command::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory: false,
        headers: Vec::new(),
        content: Content {
            properties: Bytes::from_static(b"\x00\x00"),
            body,
        },
        expiration_ms: None,
    }
}

pub(super) fn holder() -> ConsumerKey {
    ConsumerKey {
        conn: 1,
        channel: 1,
        tag: String::new(),
    }
}

/// Consumer "c" on channel (1, 1) of queue "q": manual acks, no prefetch of its own.
pub(super) fn consume_q() -> Command {
    Command::Consume {
        queue: "q".into(),
        consumer: ConsumerKey {
            conn: 1,
            channel: 1,
            tag: "c".into(),
        },
        prefetch: 0,
        no_ack: false,
        exclusive: false,
    }
}

/// Queue `work` dead-letters into `dead`; 40 messages are published to `work`, one is taken
/// with basic.get (no_ack), three are rejected into `dead`, one is taken and kept unacked.
pub(super) fn workload(sm: &BrokerStateMachine, first_index: u64) -> u64 {
    let dlx = vec![
        arg("x-dead-letter-exchange", str_value("")),
        arg("x-dead-letter-routing-key", str_value("dead")),
    ];
    let work = QueueDecl {
        arguments: dlx,
        ..QueueDecl::new("work")
    };
    let mut index = first_index;
    apply(
        sm,
        index,
        vec![work.command(), QueueDecl::new("dead").command()],
    );
    for n in 0..40u64 {
        index += 1;
        apply(
            sm,
            index,
            vec![publish("work", body(n, (n as usize) * 997))],
        );
    }
    let get = |no_ack| Command::Get {
        queue: "work".into(),
        holder: holder(),
        no_ack,
    };
    index += 1;
    let replies = apply(
        sm,
        index,
        vec![get(true), get(false), get(false), get(false)],
    );
    let Reply::Got {
        content, msg_id, ..
    } = &replies[0]
    else {
        panic!("get: {:?}", replies[0]);
    };
    assert_eq!(
        content.body,
        body(0, 0),
        "basic.get gets the body back, byte-exact"
    );
    let rejected: Vec<u64> = replies[1..]
        .iter()
        .map(|r| match r {
            Reply::Got { msg_id, .. } => *msg_id,
            other => panic!("get: {other:?}"),
        })
        .collect();
    assert_eq!(*msg_id, 1);
    index += 1;
    let reject = Command::Reject {
        queue: "work".into(),
        msg_ids: rejected,
        conn: 1,
        channel: 1,
    };
    apply(sm, index, vec![reject, get(false)]);
    index
}

fn more(sm: &BrokerStateMachine, first_index: u64) {
    for n in 0..5u64 {
        apply(
            sm,
            first_index + n,
            vec![publish("work", body(100 + n, 5_000))],
        );
    }
    let get_dead = Command::Get {
        queue: "dead".into(),
        holder: holder(),
        no_ack: true,
    };
    let replies = apply(sm, first_index + 5, vec![get_dead]);
    let Reply::Got { content, .. } = &replies[0] else {
        panic!("get from dead: {:?}", replies[0]);
    };
    assert_eq!(
        content.body,
        body(1, 997),
        "a dead-lettered copy keeps its body"
    );
}

/// A disk state machine in `dir` that moves every message to its store after the entry
/// that stored it (no budget in memory), for tests of what the store holds.
fn open_moving_all(dir: &std::path::Path) -> io::Result<BrokerStateMachine> {
    let sm = BrokerStateMachine::open(dir)?;
    sm.set_hot_bytes_max(0);
    Ok(sm)
}

#[test]
fn disk_and_ram_nodes_agree_and_a_snapshot_carries_the_bodies_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = open_moving_all(dir.path()).expect("open");
    let ram = BrokerStateMachine::in_memory();
    let last = workload(&disk, 1);
    assert_eq!(workload(&ram, 1), last);
    let n_messages = disk.with_broker(|b| b.messages.len());
    assert_eq!(
        n_messages, 39,
        "40 published, 1 got no_ack; 3 copies, 3 originals gone"
    );
    assert_eq!(disk.n_stored_messages(), Some(n_messages));
    assert_eq!(
        disk.with_broker(|b| (b.messages.n_hot(), b.messages.n_shared())),
        (0, 0),
        "a disk node keeps no stored message in memory"
    );
    let at_snapshot = disk.digest();
    let disk_at_snapshot = disk.messages_with_bodies().expect("read the store");
    assert_eq!(ram.digest(), at_snapshot, "disk and RAM node digests");
    assert_eq!(
        disk.with_broker(|b| b.clone()),
        ram.with_broker(|b| b.clone()),
        "disk and RAM node states compare equal, wherever their bodies are"
    );

    tracing::info!("--- snapshot the disk node, apply more, restart it from the snapshot");
    let snap = disk.build_and_write().expect("build snapshot");
    assert_eq!(snap.meta.last_log_id, Some(log_id(last)));
    let bytes = disk
        .read_current()
        .expect("read")
        .expect("a snapshot")
        .snapshot;
    more(&disk, last + 1);
    more(&ram, last + 1);
    let after = ram.digest();
    assert_eq!(disk.digest(), after);
    drop(disk);
    let disk = open_moving_all(dir.path()).expect("reopen");
    assert_eq!(
        disk.digest(),
        at_snapshot,
        "the snapshot restores the state at its index"
    );
    assert_eq!(disk.n_stored_messages(), Some(n_messages));
    more(&disk, last + 1);
    assert_eq!(disk.digest(), after, "replay after the snapshot");

    tracing::info!("--- a RAM node installs the disk node's snapshot");
    let fresh = BrokerStateMachine::in_memory();
    let meta = snap.meta.clone();
    fresh.install_received(&meta, bytes).expect("install");
    assert_eq!(fresh.digest(), at_snapshot);
    let in_memory = fresh.with_broker(|b| b.messages.n_hot() == b.messages.len());
    assert!(in_memory, "a RAM node holds its messages in memory");
    assert_eq!(
        fresh.messages_with_bodies().expect("in memory"),
        disk_at_snapshot,
        "every message byte-exact"
    );
}

#[test]
fn a_snapshot_built_while_applies_go_on_is_the_state_at_its_index() {
    snapshot_built_while_applies_go_on(0);
}

/// As above with the default budget: messages in memory when the build copies the state,
/// moved to the store by the applies during the build, are written once.
#[test]
fn a_snapshot_built_while_messages_move_to_the_store_holds_each_once() {
    snapshot_built_while_applies_go_on(HOT_MESSAGES_BYTES_MAX);
}

fn snapshot_built_while_applies_go_on(hot_bytes_max: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = open_moving_all(dir.path()).expect("open");
    sm.set_hot_bytes_max(hot_bytes_max);
    let n_messages = 400u64;
    apply(&sm, 1, vec![QueueDecl::new("q").command()]);
    for n in 0..n_messages {
        apply(&sm, 2 + n, vec![publish("q", body(n, 32 * 1024))]);
    }
    let consume = consume_q();
    let mut index = 2 + n_messages;
    apply(&sm, index, vec![consume]);
    let mut digests = BTreeMap::new();
    digests.insert(index, sm.digest().1);

    tracing::info!("--- copy the state for a build, settle every message, then write");
    // The two halves of `build_and_write`, with applies in between: deterministic.
    let copy = sm.copy_for_build();
    for msg_id in 1..=n_messages {
        index += 1;
        let settle = Command::Settle {
            queue: "q".into(),
            msg_ids: vec![msg_id],
            conn: 1,
            channel: 1,
        };
        apply(
            &sm,
            index,
            vec![settle, publish("q", body(1_000 + msg_id, 1_000))],
        );
        if msg_id % 50 == 0 {
            digests.insert(index, sm.digest().1);
        }
    }
    let snap = sm.write_copy(copy).expect("write the snapshot");
    let at = snap.meta.last_log_id.expect("index").index;
    let (n_messages, n_hot) = sm.with_broker(|b| (b.messages.len(), b.messages.n_hot()));
    assert_eq!(
        sm.n_stored_messages().map(|n| n + n_hot),
        Some(n_messages),
        "deletions held during the build happen after it"
    );

    tracing::info!("--- the snapshot file restores the digest of its index");
    let copy = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        dir.path().join(SNAPSHOT_FILE),
        copy.path().join(SNAPSHOT_FILE),
    )
    .expect("copy snapshot");
    let restored = open_moving_all(copy.path()).expect("open copy");
    assert_eq!(restored.digest(), (Some(at), digests[&at].clone()));
}

#[test]
fn a_message_two_queues_hold_keeps_its_count_across_a_snapshot_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = open_moving_all(dir.path()).expect("open");
    let ram = BrokerStateMachine::in_memory();
    let bind = |queue: &str| Command::QueueBind {
        queue: queue.into(),
        exchange: "fan".into(),
        routing_key: String::new(),
        arguments: Vec::new(),
        conn: 1,
    };
    let setup = vec![
        exchange_declare("fan", ExchangeKind::Fanout),
        QueueDecl::new("a").command(),
        QueueDecl::new("b").command(),
        bind("a"),
        bind("b"),
    ];
    let get = |queue: &str| Command::Get {
        queue: queue.into(),
        holder: holder(),
        no_ack: true,
    };
    let counts = |sm: &BrokerStateMachine| {
        let in_memory = sm.with_broker(|b| (b.messages.len(), b.messages.n_shared()));
        (in_memory, sm.n_stored_messages())
    };
    for sm in [&disk, &ram] {
        apply(sm, 1, setup.clone());
        apply(sm, 2, vec![publish_via("fan", "", body(1, 3_000))]);
    }
    assert_eq!(
        counts(&disk),
        ((1, 1), Some(1)),
        "one record, its count in memory"
    );
    assert_eq!(disk.digest(), ram.digest());

    tracing::info!("--- snapshot, restart: the count comes back from the snapshot");
    disk.build_and_write().expect("build snapshot");
    drop(disk);
    let disk = open_moving_all(dir.path()).expect("reopen");
    assert_eq!(counts(&disk), ((1, 1), Some(1)));
    assert_eq!(disk.digest(), ram.digest());

    tracing::info!("--- each queue takes it; the record goes with the last");
    for (index, queue) in [(3, "a"), (4, "b")] {
        for sm in [&disk, &ram] {
            let replies = apply(sm, index, vec![get(queue)]);
            let Reply::Got { content, .. } = &replies[0] else {
                panic!("get from {queue}: {:?}", replies[0]);
            };
            assert_eq!(
                content.body,
                body(1, 3_000),
                "read from the store, byte-exact"
            );
        }
        assert_eq!(disk.digest(), ram.digest(), "after the get from {queue}");
    }
    assert_eq!(counts(&disk), ((0, 0), Some(0)));
}

#[test]
fn a_failed_read_of_the_message_store_fails_the_entry() {
    let sm = BrokerStateMachine::in_memory();
    let (cold, cold_state) = crate::broker::test_support::MemCold::state();
    sm.lock().body.broker = cold_state;
    apply(
        &sm,
        1,
        vec![QueueDecl::new("q").command(), publish("q", body(1, 10))],
    );
    cold.after_entry(&mut sm.lock().body.broker.messages, false);

    tracing::info!("--- the store fails: a basic.get must not answer get-empty");
    cold.fail_reads
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let get = Command::Get {
        queue: "q".into(),
        holder: holder(),
        no_ack: false,
    };
    let request = Batch {
        time_ms: 1_000,
        commands: vec![get],
        origin: None,
    }
    .to_request();
    let error = sm
        .lock()
        .apply_batch(&log_id(2), &request)
        .expect_err("the entry fails");
    assert!(
        error.to_string().contains("read a stored message"),
        "{error}"
    );
}

/// A channel limit (basic.qos global=true) travels in a log entry and in the snapshot file:
/// a node reopened from the snapshot holds the same limit and count, and goes on the same.
#[test]
fn a_channel_limit_goes_through_the_log_and_the_snapshot_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = BrokerStateMachine::open(dir.path()).expect("open");
    apply(&sm, 1, vec![QueueDecl::new("q").command()]);
    for n in 0..5 {
        apply(&sm, 2 + n, vec![publish("q", body(n, 16))]);
    }
    let qos = Command::ChannelQos {
        conn: 1,
        channel: 1,
        prefetch: 2,
    };
    let consume = consume_q();
    apply(&sm, 7, vec![qos, consume]);
    let limit = sm.with_broker(|b| b.channel_limits.get((1, 1)).cloned());
    assert_eq!(
        limit.as_ref().map(|l| (l.prefetch, l.n_unacked)),
        Some((2, 2))
    );

    tracing::info!("--- snapshot, reopen from it: the same limit, the same digest");
    sm.build_and_write().expect("build snapshot");
    let at_snapshot = sm.digest();
    drop(sm);
    let sm = BrokerStateMachine::open(dir.path()).expect("reopen");
    assert_eq!(sm.digest(), at_snapshot);
    assert_eq!(
        sm.with_broker(|b| b.channel_limits.get((1, 1)).cloned()),
        limit
    );

    tracing::info!("--- a settle after the restart releases one more, as before it");
    let settle = Command::Settle {
        queue: "q".into(),
        msg_ids: vec![1],
        conn: 1,
        channel: 1,
    };
    apply(&sm, 8, vec![settle]);
    let queue = sm.with_broker(|b| {
        let q = &b.vhosts["/"].queues["q"].queue;
        (q.n_unacked(), q.n_ready())
    });
    assert_eq!(
        queue,
        (2, 2),
        "one settled, one more checked out, two ready"
    );
}

/// A node-down decision applies only in an entry of the term of the leader that made it: a
/// deposed leader's decision that reaches the log under a later leader (its proposer handed
/// it on) leaves the named connections' consumers and deliveries alone (chaos seed 51: a
/// leader cut off for 14 s took the others for down, and after the heal their live
/// consumers lost their deliveries to the stale decision).
#[test]
fn a_node_down_decision_applies_only_in_its_own_term() {
    let sm = BrokerStateMachine::in_memory();
    apply(&sm, 1, vec![QueueDecl::new("q").command(), consume_q()]);
    apply(&sm, 2, vec![publish("q", body(1, 100))]);
    let counts = || {
        sm.with_broker(|b| {
            let q = &b.vhosts["/"].queues["q"].queue;
            (q.n_consumers(), q.n_unacked(), q.n_ready())
        })
    };
    assert_eq!(counts(), (1, 1, 0), "delivered to conn 1's consumer");

    let in_term = |term: u64, index: u64, decided_in: u64| {
        let log_id = crate::raft::types::LogId::new(
            <openraft::alias::LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(term, 1),
            index,
        );
        let down = Command::NodeDown {
            conns: vec![1],
            term: decided_in,
        };
        let request = Batch {
            time_ms: 2_000,
            commands: vec![down],
            origin: None,
        }
        .to_request();
        let replies = sm
            .lock()
            .apply_batch(&log_id, &request)
            .expect("apply")
            .replies;
        assert_eq!(replies, vec![Ok(Reply::Done)]);
    };
    in_term(3, 3, 2);
    assert_eq!(
        counts(),
        (1, 1, 0),
        "a term-2 decision in a term-3 entry changes nothing"
    );
    in_term(3, 4, 3);
    assert_eq!(
        counts(),
        (0, 0, 1),
        "in its own term it closes conn 1: the message is back"
    );
}

/// Users, permissions and a second vhost with its queue survive a snapshot file and a
/// reopen; the file is format 5 while the cluster runs machine version 1 (members of the
/// old build can install it) and format 6 once it moved to version 2.
#[test]
fn users_vhosts_and_permissions_survive_a_snapshot_file() {
    use crate::broker::access::{PasswordHash, Permission};
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = BrokerStateMachine::open(dir.path()).expect("open");
    let format = || std::fs::read(dir.path().join(SNAPSHOT_FILE)).expect("snapshot")[0];
    apply(&sm, 1, vec![QueueDecl::new("q").command()]);
    sm.build_and_write().expect("build snapshot");
    assert_eq!(format(), 5, "machine version 1 writes the old format");

    apply(&sm, 2, vec![Command::SetMachineVersion { version: 2 }]);
    let in_v = Command::InVhost {
        vhost: "v".into(),
        command: Box::new(QueueDecl::new("q2").command()),
    };
    let access = vec![
        Command::AddVhost { name: "v".into() },
        Command::PutUser {
            name: "app".into(),
            password: PasswordHash::new([9, 8, 7, 6], b"pw"),
            tags: vec!["monitoring".into()],
            create_only: true,
        },
        Command::SetPermissions {
            user: "app".into(),
            vhost: "v".into(),
            permission: Permission::all(),
        },
        in_v,
    ];
    apply(&sm, 3, access);
    sm.build_and_write().expect("build snapshot");
    assert_eq!(format(), 6);
    let (before, digest) = (sm.with_broker(|b| b.access.clone()), sm.digest());
    drop(sm);

    let sm = BrokerStateMachine::open(dir.path()).expect("reopen");
    assert_eq!(sm.digest(), digest);
    assert_eq!(sm.with_broker(|b| b.access.clone()), before);
    assert!(before.users["app"].password.verify(b"pw"));
    assert!(sm.with_broker(|b| b.queue("v", "q2").is_some()));
    assert!(
        sm.with_broker(|b| b.queue("/", "q2").is_none()),
        "q2 is v's only"
    );
}

/// With the default budget, a disk node keeps its newest messages in memory: one published
/// and acked soon after never reaches the message store (no sled write or delete for it),
/// and those still in memory at a snapshot come back from the snapshot file at a restart.
#[test]
fn messages_acked_within_the_budget_never_reach_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = BrokerStateMachine::open(dir.path()).expect("open");
    let ram = BrokerStateMachine::in_memory();
    let n = 50u64;
    for sm in [&disk, &ram] {
        apply(sm, 1, vec![QueueDecl::new("q").command(), consume_q()]);
        for msg_id in 1..=n {
            let settle = Command::Settle {
                queue: "q".into(),
                msg_ids: vec![msg_id],
                conn: 1,
                channel: 1,
            };
            apply(sm, 2 * msg_id, vec![publish("q", body(msg_id, 1_000))]);
            apply(sm, 2 * msg_id + 1, vec![settle]);
        }
    }
    assert_eq!(disk.n_stored_messages(), Some(0), "nothing was written");
    assert_eq!(disk.digest(), ram.digest());

    tracing::info!("--- ten left unacked, in memory at the snapshot; a restart restores them");
    let index = 2 * n + 1;
    for sm in [&disk, &ram] {
        for k in 1..=10 {
            apply(sm, index + k, vec![publish("q", body(1_000 + k, 2_000))]);
        }
    }
    assert_eq!(disk.with_broker(|b| b.messages.n_hot()), 10);
    disk.build_and_write().expect("build snapshot");
    let at_snapshot = disk.digest();
    assert_eq!(at_snapshot, ram.digest());
    drop(disk);
    let disk = BrokerStateMachine::open(dir.path()).expect("reopen");
    assert_eq!(
        disk.digest(),
        at_snapshot,
        "the snapshot held the hot messages"
    );
    assert_eq!(
        disk.messages_with_bodies().expect("read"),
        ram.messages_with_bodies().expect("read"),
        "every message byte-exact"
    );
}
