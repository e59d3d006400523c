//! Property test of the whole state machine: random command sequences over a small universe
//! of queues, exchanges, connections, channels and consumer tags. `apply` must never panic,
//! must be deterministic, must survive a postcard snapshot mid-sequence, must never keep a
//! message no queue holds, and must keep channel limits (basic.qos global=true) exact and
//! never leave a delivery they allow unmade.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

const QUEUES: [&str; 3] = ["q1", "q2", "q3"];
const EXCHANGES: [&str; 2] = ["", "amq.direct"];
const TAGS: [&str; 2] = ["t1", "t2"];

/// One abstract step; turned into a `Command` against the current state, so that settle,
/// requeue and reject can name ids the state really holds.
#[derive(Clone, Debug)]
enum Op {
    Declare {
        queue: usize,
        ttl: Option<i64>,
        dlx: Option<usize>,
        max_length: Option<i64>,
        conn: u64,
    },
    Bind {
        queue: usize,
        key: usize,
    },
    Publish {
        exchange: usize,
        key: usize,
        body_len: usize,
        expiration_ms: Option<u64>,
        mandatory: bool,
    },
    Consume {
        queue: usize,
        conn: u64,
        channel: u16,
        tag: usize,
        prefetch: u32,
        no_ack: bool,
    },
    Cancel {
        queue: usize,
        conn: u64,
        channel: u16,
        tag: usize,
    },
    Get {
        queue: usize,
        conn: u64,
        channel: u16,
        no_ack: bool,
    },
    /// kind 0 settle, 1 requeue, 2 reject; `pick` indexes the queue's held ids (with
    /// `own`, those checked out to the channel, when it has some), or is used as a raw id
    /// when the queue holds none.
    Ack {
        kind: u8,
        queue: usize,
        pick: usize,
        n: usize,
        conn: u64,
        channel: u16,
        own: bool,
    },
    ChannelClosed {
        conn: u64,
        channel: u16,
    },
    ConnectionClosed {
        conn: u64,
    },
    Recover {
        conn: u64,
        channel: u16,
    },
    Purge {
        queue: usize,
    },
    Delete {
        queue: usize,
        if_unused: bool,
        if_empty: bool,
    },
    Tick,
    /// basic.qos(global=true).
    ChannelQos {
        conn: u64,
        channel: u16,
        prefetch: u32,
    },
    /// A connection hands a consumer credit back (often one that is not there).
    Credit {
        queue: usize,
        conn: u64,
        channel: u16,
        tag: usize,
        n: u32,
    },
}

fn conn() -> impl Strategy<Value = u64> {
    1u64..=2
}

fn channel() -> impl Strategy<Value = u16> {
    1u16..=2
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (
            0..QUEUES.len(),
            proptest::option::of(0i64..300),
            proptest::option::of(0..EXCHANGES.len()),
            proptest::option::of(0i64..3),
            conn(),
        )
            .prop_map(|(queue, ttl, dlx, max_length, conn)| Op::Declare {
                queue,
                ttl,
                dlx,
                max_length,
                conn,
            }),
        2 => (0..QUEUES.len(), 0..QUEUES.len()).prop_map(|(queue, key)| Op::Bind { queue, key }),
        6 => (
            0..EXCHANGES.len(),
            0..QUEUES.len(),
            0usize..4,
            proptest::option::of(0u64..300),
            any::<bool>(),
        )
            .prop_map(|(exchange, key, body_len, expiration_ms, mandatory)| Op::Publish {
                exchange,
                key,
                body_len,
                expiration_ms,
                mandatory,
            }),
        3 => (
            0..QUEUES.len(),
            conn(),
            channel(),
            0..TAGS.len(),
            0u32..=3,
            proptest::bool::weighted(0.25),
        )
            .prop_map(|(queue, conn, channel, tag, prefetch, no_ack)| Op::Consume {
                queue,
                conn,
                channel,
                tag,
                prefetch,
                no_ack,
            }),
        1 => (0..QUEUES.len(), conn(), channel(), 0..TAGS.len()).prop_map(
            |(queue, conn, channel, tag)| Op::Cancel {
                queue,
                conn,
                channel,
                tag,
            }
        ),
        2 => (0..QUEUES.len(), conn(), channel(), any::<bool>()).prop_map(
            |(queue, conn, channel, no_ack)| Op::Get {
                queue,
                conn,
                channel,
                no_ack,
            }
        ),
        4 => (
            0u8..3,
            0..QUEUES.len(),
            0usize..8,
            1usize..=2,
            conn(),
            channel(),
            any::<bool>(),
        )
            .prop_map(|(kind, queue, pick, n, conn, channel, own)| Op::Ack {
                kind,
                queue,
                pick,
                n,
                conn,
                channel,
                own,
            }),
        1 => (conn(), channel()).prop_map(|(conn, channel)| Op::ChannelClosed { conn, channel }),
        1 => conn().prop_map(|conn| Op::ConnectionClosed { conn }),
        1 => (conn(), channel()).prop_map(|(conn, channel)| Op::Recover { conn, channel }),
        1 => (0..QUEUES.len()).prop_map(|queue| Op::Purge { queue }),
        1 => (0..QUEUES.len(), any::<bool>(), any::<bool>()).prop_map(
            |(queue, if_unused, if_empty)| Op::Delete {
                queue,
                if_unused,
                if_empty,
            }
        ),
        1 => Just(Op::Tick),
        2 => (conn(), channel(), 0u32..=3).prop_map(|(conn, channel, prefetch)| Op::ChannelQos {
            conn,
            channel,
            prefetch,
        }),
        1 => (0..QUEUES.len(), conn(), channel(), 0..TAGS.len(), 0u32..3000).prop_map(
            |(queue, conn, channel, tag, n)| Op::Credit {
                queue,
                conn,
                channel,
                tag,
                n,
            }
        ),
    ]
}

fn key(conn: u64, channel: u16, tag: usize) -> ConsumerKey {
    ConsumerKey {
        conn,
        channel,
        tag: TAGS[tag].to_string(),
    }
}

/// The concrete command for `op` in state `s`.
fn command(s: &BrokerState, op: &Op) -> Command {
    match op.clone() {
        Op::Declare {
            queue,
            ttl,
            dlx,
            max_length,
            conn,
        } => {
            let mut arguments = Vec::new();
            if let Some(ttl) = ttl {
                arguments.push(("x-message-ttl".to_string(), HeaderValue::Int(ttl)));
            }
            if let Some(dlx) = dlx {
                let name = HeaderValue::Str(EXCHANGES[dlx].to_string());
                arguments.push(("x-dead-letter-exchange".to_string(), name));
            }
            if let Some(max) = max_length {
                arguments.push(("x-max-length".to_string(), HeaderValue::Int(max)));
            }
            Command::QueueDeclare {
                name: QUEUES[queue].to_string(),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments,
                conn,
            }
        }
        Op::Bind { queue, key } => Command::QueueBind {
            queue: QUEUES[queue].to_string(),
            exchange: "amq.direct".to_string(),
            routing_key: QUEUES[key].to_string(),
            arguments: Vec::new(),
            conn: 1,
        },
        Op::Publish {
            exchange,
            key,
            body_len,
            expiration_ms,
            mandatory,
        } => Command::Publish {
            exchange: EXCHANGES[exchange].to_string(),
            routing_key: QUEUES[key].to_string(),
            mandatory,
            headers: Vec::new(),
            content: Content {
                properties: Bytes::new(),
                body: Bytes::from(vec![b'x'; body_len]),
            },
            expiration_ms,
        },
        Op::Consume {
            queue,
            conn,
            channel,
            tag,
            prefetch,
            no_ack,
        } => {
            // A reused key is generated too: apply refuses it (530), as the front end does.
            let consumer = key(conn, channel, tag);
            Command::Consume {
                queue: QUEUES[queue].to_string(),
                consumer,
                prefetch,
                no_ack,
                exclusive: false,
            }
        }
        Op::Cancel {
            queue,
            conn,
            channel,
            tag,
        } => Command::Cancel {
            queue: QUEUES[queue].to_string(),
            consumer: key(conn, channel, tag),
        },
        Op::Get {
            queue,
            conn,
            channel,
            no_ack,
        } => Command::Get {
            queue: QUEUES[queue].to_string(),
            holder: ConsumerKey {
                conn,
                channel,
                tag: String::new(),
            },
            no_ack,
        },
        Op::Ack {
            kind,
            queue,
            pick,
            n,
            conn,
            channel,
            own,
        } => {
            let name = QUEUES[queue].to_string();
            let entry = s.vhosts["/"].queues.get(&name);
            let mine = entry.map(|e| e.queue.checked_out_to(conn, channel));
            let held = match mine {
                Some(mine) if own && !mine.is_empty() => mine,
                _ => entry.map(|e| e.queue.all_msg_ids()).unwrap_or_default(),
            };
            let msg_ids: Vec<u64> = if held.is_empty() {
                (0..n as u64).map(|i| pick as u64 + i).collect()
            } else {
                (0..n).map(|i| held[(pick + i) % held.len()]).collect()
            };
            match kind {
                0 => Command::Settle {
                    queue: name,
                    msg_ids,
                    conn,
                    channel,
                },
                1 => Command::Requeue {
                    queue: name,
                    msg_ids,
                    conn,
                    channel,
                },
                _ => Command::Reject {
                    queue: name,
                    msg_ids,
                    conn,
                    channel,
                },
            }
        }
        Op::ChannelClosed { conn, channel } => Command::ChannelClosed { conn, channel },
        Op::ConnectionClosed { conn } => Command::ConnectionClosed { conn },
        Op::Recover { conn, channel } => Command::Recover { conn, channel },
        Op::Purge { queue } => Command::QueuePurge {
            name: QUEUES[queue].to_string(),
            conn: 1,
        },
        Op::Delete {
            queue,
            if_unused,
            if_empty,
        } => Command::QueueDelete {
            name: QUEUES[queue].to_string(),
            if_unused,
            if_empty,
            conn: 1,
        },
        Op::Tick => Command::Tick,
        Op::ChannelQos {
            conn,
            channel,
            prefetch,
        } => Command::ChannelQos {
            conn,
            channel,
            prefetch,
        },
        Op::Credit {
            queue,
            conn,
            channel,
            tag,
            n,
        } => Command::Credit {
            queue: QUEUES[queue].to_string(),
            consumer: key(conn, channel, tag),
            n,
        },
    }
}

/// What the state machine's published connection set relies on (`raft/state_machine/
/// published.rs`): a publish or a credit never changes the connections the state names; a
/// settle, requeue, reject or recover by a connection may only drop that connection; and
/// `names_conn` agrees with `connections`.
fn check_connections(
    before: &std::collections::BTreeSet<u64>,
    s: &BrokerState,
    cmd: &Command,
) -> Result<(), TestCaseError> {
    let after = s.connections();
    match cmd {
        Command::Publish { .. } | Command::Credit { .. } => {
            prop_assert_eq!(&after, before, "{:?} changed the connections", cmd);
        }
        Command::Settle { conn, .. }
        | Command::Requeue { conn, .. }
        | Command::Reject { conn, .. }
        | Command::Recover { conn, .. } => {
            let mut expected = before.clone();
            if !after.contains(conn) {
                expected.remove(conn);
            }
            prop_assert_eq!(&after, &expected, "{:?} changed other connections", cmd);
        }
        _ => {}
    }
    for conn in 0..=3 {
        prop_assert_eq!(
            s.names_conn(conn),
            after.contains(&conn),
            "names_conn({})",
            conn
        );
    }
    Ok(())
}

/// Every stored message is held by as many queues as its holder count says, and every id a
/// queue holds is a stored message.
fn check_holders(s: &BrokerState) -> Result<(), TestCaseError> {
    let mut held: BTreeMap<u64, u32> = BTreeMap::new();
    for entry in s.vhosts["/"].queues.values() {
        for id in entry.queue.all_msg_ids() {
            *held.entry(id).or_default() += 1;
        }
    }
    let mut n_stored = 0;
    for item in s.messages.iter() {
        let (id, m) = item.map_err(|e| TestCaseError::fail(e.to_string()))?;
        n_stored += 1;
        prop_assert!(m.n_holders > 0, "message {id} stored with n_holders 0");
        let n_held = held.get(&id).copied().unwrap_or(0);
        prop_assert_eq!(m.n_holders, n_held, "holders of message {}", id);
    }
    prop_assert_eq!(n_stored, held.len(), "held ids that are not stored");
    prop_assert_eq!(n_stored, s.messages.len());
    Ok(())
}

/// Each channel limit counts exactly its channel's consumer deliveries; a channel with credit
/// has no queue waiting for it; and no queue could deliver more (so every delivery the
/// limits allow was made when the command was applied).
fn check_channel_limits(s: &BrokerState) -> Result<(), TestCaseError> {
    for (&(conn, channel), limit) in s.channel_limits.iter() {
        let held = s.vhosts["/"]
            .queues
            .values()
            .flat_map(|e| e.queue.consumer_checkouts())
            .filter(|k| k.conn == conn && k.channel == channel)
            .count();
        prop_assert_eq!(
            limit.n_unacked as usize,
            held,
            "count of channel {:?}",
            (conn, channel)
        );
        prop_assert!(limit.prefetch > 0);
        let has_credit = limit.n_unacked < limit.prefetch;
        prop_assert!(
            !has_credit || limit.waiting.is_empty(),
            "channel {:?} has credit and queues waiting: {:?}",
            (conn, channel),
            limit
        );
    }
    for (name, entry) in &s.vhosts["/"].queues {
        let (mut queue, mut limits) = (entry.queue.clone(), s.channel_limits.clone());
        let missed = queue.assign(&mut limits.gate(name));
        prop_assert!(
            missed.is_empty(),
            "queue {} could still deliver {:?}",
            name,
            missed
        );
    }
    Ok(())
}

/// The (time, command) pairs applied, their outcomes, and the states (index k: after k).
type Run = (Vec<(u64, Command)>, Vec<Outcome>, Vec<BrokerState>);

/// Runs `ops` from a fresh state: the (time, command) pairs applied, their outcomes, and
/// the state after each step (index k is after k steps).
fn run(ops: &[(u64, Op)]) -> Result<Run, TestCaseError> {
    let mut s = BrokerState::default();
    let mut now = 0;
    let mut commands = Vec::new();
    let mut outcomes = Vec::new();
    let mut states = vec![s.clone()];
    for (dt, op) in ops {
        now += dt;
        let cmd = command(&s, op);
        commands.push((now, cmd.clone()));
        let conns_before = s.connections();
        outcomes.push(s.apply(now, cmd.clone()));
        check_connections(&conns_before, &s, &cmd)?;
        check_holders(&s)?;
        check_channel_limits(&s)?;
        states.push(s.clone());
    }
    Ok((commands, outcomes, states))
}

/// Runs `ops` and checks: (1) no panic and (4) the invariants after every step (in `run`);
/// (2) determinism; (3) a snapshot at step `split` plus replay equals straight replay.
fn check_replay(ops: &[(u64, Op)], split: prop::sample::Index) -> Result<(), TestCaseError> {
    let (commands, outcomes, states) = run(ops)?;

    // (2) determinism: a second fresh run gives the same commands, outcomes, states.
    let (commands2, outcomes2, states2) = run(ops)?;
    prop_assert_eq!(&commands, &commands2);
    prop_assert_eq!(&outcomes, &outcomes2);
    prop_assert_eq!(states.last(), states2.last());

    // (3) snapshot at step k, replay the rest on the decoded copy.
    let k = split.index(commands.len() + 1);
    let bytes = postcard::to_stdvec(&states[k]).expect("encode state");
    let mut copy: BrokerState = postcard::from_bytes(&bytes).expect("decode state");
    prop_assert_eq!(&copy, &states[k]);
    for (i, (now, cmd)) in commands.iter().enumerate().skip(k) {
        let out = copy.apply(*now, cmd.clone());
        prop_assert_eq!(
            &out,
            &outcomes[i],
            "outcome of step {} after snapshot at {}",
            i,
            k
        );
        prop_assert_eq!(
            &copy,
            &states[i + 1],
            "state after step {} (snapshot at {})",
            i,
            k
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn apply_is_total_deterministic_and_snapshot_safe(
        ops in proptest::collection::vec((0u64..=200, op()), 0..60),
        split in any::<prop::sample::Index>(),
    ) {
        check_replay(&ops, split)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A disk node applies the same commands with its stored messages moved to a cold store
    /// after every entry: same replies and deliveries, equal states, and a snapshot build's
    /// view taken between two entries (deletions held from then on) is the state there.
    #[test]
    fn a_disk_node_with_cold_messages_agrees_with_a_ram_node(
        ops in proptest::collection::vec((0u64..=200, op()), 0..60),
        entry_len in 1usize..4,
        view_at in any::<prop::sample::Index>(),
    ) {
        let (commands, outcomes, states) = run(&ops)?;
        let (cold, mut s) = crate::broker::test_support::MemCold::state();
        let n_entries = commands.len().div_ceil(entry_len);
        let view_at = view_at.index(n_entries + 1);
        let mut view = None;
        for (e, entry) in commands.chunks(entry_len).enumerate() {
            if e == view_at {
                view = Some((s.copy_for_build(), e * entry_len));
            }
            for (j, (now, cmd)) in entry.iter().enumerate() {
                let i = e * entry_len + j;
                let out = s.apply(*now, cmd.clone());
                prop_assert!(s.messages.take_fault().is_none());
                let ram = &outcomes[i];
                prop_assert_eq!(&out.reply, &ram.reply, "reply of step {}", i);
                prop_assert_eq!(&out.deliveries, &ram.deliveries, "deliveries of step {}", i);
                prop_assert_eq!(&out.cancelled, &ram.cancelled);
                for released in &out.released {
                    prop_assert!(ram.released.contains(released), "released at step {}", i);
                }
            }
            cold.after_entry(&mut s.messages, view.is_some());
            prop_assert_eq!(s.messages.n_hot(), 0);
            check_holders(&s)?;
            let n_done = ((e + 1) * entry_len).min(commands.len());
            prop_assert_eq!(&s, &states[n_done], "state after entry {}", e);
        }
        if view_at == n_entries {
            view = Some((s.copy_for_build(), commands.len()));
        }
        let (copy, at) = view.expect("a view is taken");
        prop_assert_eq!(&copy, &states[at], "the build's view (taken after step {})", at);
        cold.after_entry(&mut s.messages, false);
        prop_assert_eq!(cold.len(), s.messages.len(), "held deletions done");
    }
}

#[path = "state_qos_prop_tests.rs"]
mod qos;
