//! CHECKER.md's drain: after the final heal and after the workload stopped, read every queue
//! until each confirmed message was seen or the queue stays empty, so "not delivered" can be
//! told from "not delivered yet". Before calling it, the harness waits (≤ 30 s) for one
//! leader and equal applied indexes, and stops the workload (`Workload::stop` closes the
//! consumers' connections, so their unacked messages return to the queues).
//!
//! Each queue is drained by its own task through any node (round-robin, reconnecting), with
//! manual acks, recording `deliver {phase: drain}` and `settle` like a workload consumer. A
//! queue is done when it reports no ready message, the drain is its only consumer (nobody
//! else holds unacked messages of it) and either every awaited message was seen or that
//! emptiness held for `EMPTY_FOR`. Running out of `bound` records `complete: false`, which the
//! checker turns into "unknown", never a pass.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use tokio::time::Instant;

use super::conn::{bounded, Link};
use super::delivery::{deliver_event, Receiver};
use super::{queue_name, ConfirmedIds, MsgKey};
use crate::history::{Event, History, Phase, SettleKind};

/// How long a queue must report empty before the drain believes it.
const EMPTY_FOR: Duration = Duration::from_secs(2);
/// Quiet time on the subscription before asking the queue how many messages it has.
const QUIET: Duration = Duration::from_millis(250);
/// Pause before trying the next node after a failed connect or a lost session.
const RETRY_DELAY: Duration = Duration::from_millis(250);
const DRAIN_PREFETCH: u16 = 100;
/// Drain consumers are numbered from here (queue index added), apart from workload consumers.
pub const DRAIN_CID_BASE: u64 = 1 << 32;

/// Where one queue's drain stands.
struct QueueDrain {
    index: usize,
    queue: String,
    awaiting: BTreeSet<MsgKey>,
    empty_since: Option<Instant>,
    ready_last: u64,
}

/// CHECKER.md's drain: records drain_start, then per queue consumes with manual ack through
/// any of `uris` until every confirmed id of that queue was seen or the queue reports
/// ready = unacked = 0 for 2 s, bounded by `bound`; records drain_end per queue.
pub async fn drain(
    uris: &[String],
    queues: usize,
    confirmed: &ConfirmedIds,
    history: &History,
    bound: Duration,
) -> anyhow::Result<()> {
    anyhow::ensure!(!uris.is_empty(), "drain: no URIs");
    history.record(Event::DrainStart)?;
    let deadline = Instant::now() + bound;
    let tasks = (0..queues).map(|index| {
        let queue = queue_name(index);
        let state = QueueDrain {
            index,
            awaiting: confirmed.of_queue(&queue),
            queue,
            empty_since: None,
            ready_last: 0,
        };
        drain_queue(uris, state, history, deadline)
    });
    let results = futures::future::join_all(tasks).await;
    history.flush()?;
    results.into_iter().collect()
}

/// Drains one queue, reconnecting as needed, and records its `drain_end`.
async fn drain_queue(
    uris: &[String],
    mut state: QueueDrain,
    history: &History,
    deadline: Instant,
) -> anyhow::Result<()> {
    let name = format!("chaos drain {}", state.queue);
    let mut attempt = state.index;
    let mut complete = false;
    while Instant::now() < deadline {
        let uri = &uris[attempt % uris.len()];
        attempt += 1;
        let Ok(link) = Link::open(uri, &name).await else {
            tokio::time::sleep(RETRY_DELAY).await;
            continue;
        };
        let result = session(&link, &mut state, history, deadline).await;
        link.close().await;
        match result {
            Ok(done) => {
                complete = done;
                break;
            }
            Err(error) => {
                tracing::info!(queue = %state.queue, node = %link.node, error = %format!("{error:#}"), "drain session lost");
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
    history.record(Event::DrainEnd {
        queue: state.queue.clone(),
        complete,
        ready: state.ready_last,
        // Every drained delivery is acked as it is recorded, and the queue only counts as
        // empty while the drain is its only consumer, so nobody holds unacked messages.
        unacked: 0,
    })?;
    Ok(())
}

/// Consumes on one connection; `Ok(true)` when the queue is drained, `Ok(false)` at the
/// deadline, `Err` when the session is lost.
async fn session(
    link: &Link,
    state: &mut QueueDrain,
    history: &History,
    deadline: Instant,
) -> anyhow::Result<bool> {
    let qos = link
        .channel
        .basic_qos(DRAIN_PREFETCH, BasicQosOptions::default());
    bounded("basic.qos", qos).await?;
    let probe = bounded("channel.open", link.connection.create_channel()).await?;
    let tag = format!("chaos-drain-{}-ch{}", state.queue, link.ch);
    let consume = link.channel.basic_consume(
        &state.queue,
        &tag,
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    let mut deliveries = bounded("basic.consume", consume).await?;
    while Instant::now() < deadline {
        match tokio::time::timeout(QUIET, deliveries.next()).await {
            Ok(None) => anyhow::bail!("the broker cancelled the drain consumer"),
            Ok(Some(delivery)) => receive(link, state, history, &delivery?).await?,
            Err(_quiet) => {
                if is_drained(&probe, state).await? {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// Records a drained delivery, acks it and records the settle.
async fn receive(
    link: &Link,
    state: &mut QueueDrain,
    history: &History,
    delivery: &Delivery,
) -> anyhow::Result<()> {
    let who = Receiver {
        cid: DRAIN_CID_BASE + state.index as u64,
        queue: &state.queue,
        phase: Phase::Drain,
    };
    let (event, key) = deliver_event(who, link, delivery);
    history.record(event)?;
    if let Some(key) = key {
        state.awaiting.remove(&key);
    }
    let ack = link
        .channel
        .basic_ack(delivery.delivery_tag, BasicAckOptions::default());
    bounded("basic.ack", ack).await?;
    history.record(Event::Settle {
        cid: who.cid,
        ch: link.ch,
        tag: delivery.delivery_tag,
        kind: SettleKind::Ack,
        requeue: false,
    })?;
    state.empty_since = None;
    Ok(())
}

/// Asks the queue (passive declare) whether it is empty with the drain as its only consumer,
/// and decides whether the drain is over.
async fn is_drained(probe: &Channel, state: &mut QueueDrain) -> anyhow::Result<bool> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declare = probe.queue_declare(&state.queue, options, FieldTable::default());
    let queue = bounded("queue.declare (passive)", declare).await?;
    state.ready_last = u64::from(queue.message_count());
    if queue.message_count() > 0 || queue.consumer_count() > 1 {
        state.empty_since = None;
        return Ok(false);
    }
    if state.awaiting.is_empty() {
        return Ok(true);
    }
    let since = *state.empty_since.get_or_insert_with(Instant::now);
    Ok(since.elapsed() >= EMPTY_FOR)
}
