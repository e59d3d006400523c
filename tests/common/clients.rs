//! Clients for the cluster tests: connections that retry over the nodes, a publisher that
//! keeps a window of publishes awaiting confirms and republishes whatever it lost, and a
//! consumer that counts what it receives and checks its order. Bodies are the decimal
//! sequence number.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::watch;

/// How long a client keeps trying to (re)connect to the surviving nodes.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two reconnection attempts (a retry backoff, not a synchronisation).
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Publishes in flight (sent, confirm not yet received).
pub const CONFIRM_WINDOW: usize = 64;
pub const CONSUMER_PREFETCH: u16 = 256;

pub fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// A connection and a channel on the first of `addrs` that accepts, with `queue` declared
/// durable, retried until [`RECONNECT_TIMEOUT`]. The connection is returned so it lives as
/// long as the channel is used.
pub async fn open_channel(addrs: &[SocketAddr], queue: &str) -> (Connection, lapin::Channel) {
    let deadline = Instant::now() + RECONNECT_TIMEOUT;
    loop {
        for addr in addrs {
            let attempt = async {
                let conn = Connection::connect(&super::uri(*addr), ConnectionProperties::default())
                    .await?;
                let channel = conn.create_channel().await?;
                channel
                    .queue_declare(queue, durable(), FieldTable::default())
                    .await?;
                Ok::<_, lapin::Error>((conn, channel))
            };
            if let Ok(Ok(opened)) = tokio::time::timeout(super::EVENT_TIMEOUT, attempt).await {
                return opened;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no node of {addrs:?} took a connection within {RECONNECT_TIMEOUT:?}"
        );
        tokio::time::sleep(RECONNECT_BACKOFF).await;
    }
}

/// The sequence number a body carries.
/// Publishes `n` persistent messages (bodies "0".."n-1") to `queue` and awaits each confirm.
pub async fn publish_n(addr: SocketAddr, queue: &str, n: u32) {
    let (_conn, channel) = open_channel(&[addr], queue).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    for seq in 0..n {
        let properties = BasicProperties::default().with_delivery_mode(2);
        super::publish_to(&channel, "", queue, properties, seq.to_string().as_bytes()).await;
    }
}

/// Consumer `tag` on `addr` with room for `prefetch` unacked messages of `queue`, manual
/// acks; the connection is returned so it lives as long as the consumer.
pub async fn consumer_on(
    addr: SocketAddr,
    queue: &str,
    tag: &str,
    prefetch: u32,
) -> (lapin::Connection, lapin::Consumer) {
    let (conn, channel) = open_channel(&[addr], queue).await;
    channel
        .basic_qos(prefetch as u16, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let options = BasicConsumeOptions::default();
    let consumer = channel
        .basic_consume(queue, tag, options, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("basic.consume {tag}: {e}"));
    (conn, consumer)
}

pub fn seq_of(body: &[u8]) -> u32 {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a sequence number: {body:?}"))
}

/// What the publisher saw.
pub struct Published {
    pub confirmed: BTreeSet<u32>,
    pub n_nacks: usize,
    pub n_reconnects: usize,
}

/// Where a publisher stands, shown to its `keep_going` after every confirm.
pub struct Progress {
    /// Sequence numbers handed out so far (0..sent).
    pub sent: u32,
    pub confirmed: usize,
    pub in_flight: usize,
}

async fn confirm_channel(addrs: &[SocketAddr], queue: &str) -> (Connection, lapin::Channel) {
    loop {
        let (conn, channel) = open_channel(addrs, queue).await;
        let selected = channel
            .confirm_select(ConfirmSelectOptions::default())
            .await;
        if selected.is_ok() {
            return (conn, channel);
        }
    }
}

/// Publishes sequence numbers 0, 1, ... to `queue`, `CONFIRM_WINDOW` at a time, while
/// `keep_going` (asked after every confirm) says so; then until every one handed out is
/// confirmed. A nack, or an error on the channel, means "publish again" (on a new
/// connection for an error).
pub async fn publish_while(
    addrs: &[SocketAddr],
    queue: &str,
    mut keep_going: impl FnMut(&Progress) -> bool,
) -> Published {
    let mut sent = 0u32;
    let mut producing = true;
    let mut unsent: BTreeSet<u32> = BTreeSet::new();
    let mut confirmed = BTreeSet::new();
    let mut in_flight_seqs = HashSet::new();
    let mut in_flight = FuturesUnordered::new();
    let (mut n_nacks, mut n_reconnects) = (0, 0);
    let (mut _conn, mut channel) = confirm_channel(addrs, queue).await;
    while producing || !unsent.is_empty() || !in_flight.is_empty() {
        let mut broken = false;
        while in_flight.len() < CONFIRM_WINDOW {
            let seq = match unsent.pop_first() {
                Some(seq) => seq,
                None if producing => {
                    sent += 1;
                    sent - 1
                }
                None => break,
            };
            let properties = BasicProperties::default().with_delivery_mode(2);
            let body = seq.to_string();
            let options = BasicPublishOptions::default();
            match channel
                .basic_publish("", queue, options, body.as_bytes(), properties)
                .await
            {
                Ok(confirm) => {
                    in_flight_seqs.insert(seq);
                    in_flight.push(async move { (seq, confirm.await) });
                }
                Err(_) => {
                    unsent.insert(seq);
                    broken = true;
                    break;
                }
            }
        }
        if !broken && !in_flight.is_empty() {
            let next = super::within("a publisher confirm", in_flight.next()).await;
            let (seq, outcome) = next.expect("publishes in flight");
            in_flight_seqs.remove(&seq);
            match outcome {
                Ok(confirmation) if confirmation.is_ack() => {
                    confirmed.insert(seq);
                }
                Ok(_) => {
                    n_nacks += 1;
                    unsent.insert(seq);
                }
                Err(_) => {
                    unsent.insert(seq);
                    broken = true;
                }
            }
            producing = producing
                && keep_going(&Progress {
                    sent,
                    confirmed: confirmed.len(),
                    in_flight: in_flight.len(),
                });
        }
        if broken {
            // Outcome unknown for everything still in flight: publish it again.
            in_flight.clear();
            unsent.extend(in_flight_seqs.drain().filter(|s| !confirmed.contains(s)));
            (_conn, channel) = confirm_channel(addrs, queue).await;
            n_reconnects += 1;
        }
    }
    Published {
        confirmed,
        n_nacks,
        n_reconnects,
    }
}

/// What a consumer received.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// How often each sequence number was delivered (above 1: a duplicate).
    pub counts: BTreeMap<u32, u32>,
    /// First deliveries not marked redelivered that came after a higher sequence number's:
    /// (the higher, the lower). One publisher publishes in sequence order and republishes
    /// what it lost lowest first, so a queue that keeps each channel's order (chaos finding
    /// 1: proposer sessions) delivers these in increasing order.
    pub inversions: Vec<(u32, u32)>,
    highest_first: Option<u32>,
}

impl Seen {
    fn record(&mut self, seq: u32, redelivered: bool) {
        let count = self.counts.entry(seq).or_default();
        *count += 1;
        if *count > 1 || redelivered {
            return;
        }
        match self.highest_first {
            Some(highest) if highest > seq => self.inversions.push((highest, seq)),
            _ => self.highest_first = Some(seq),
        }
    }
}

/// Consumes `queue` with manual acks forever, reconnecting on any error; records every
/// sequence number received in `seen`.
pub async fn consume(addrs: Vec<SocketAddr>, queue: &'static str, seen: watch::Sender<Seen>) {
    loop {
        let (_conn, channel) = open_channel(&addrs, queue).await;
        let consumer = async {
            channel
                .basic_qos(CONSUMER_PREFETCH, BasicQosOptions::default())
                .await?;
            let options = BasicConsumeOptions::default();
            channel
                .basic_consume(queue, "", options, FieldTable::default())
                .await
        };
        let Ok(mut consumer) = consumer.await else {
            continue;
        };
        while let Some(Ok(delivery)) = consumer.next().await {
            let seq = seq_of(&delivery.data);
            seen.send_modify(|seen| seen.record(seq, delivery.redelivered));
            if delivery.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
    }
}

/// Waits (at most `bound`) until every confirmed sequence number has been seen; on failure,
/// panics naming the missing ones.
pub async fn wait_all_seen(
    confirmed: &BTreeSet<u32>,
    seen: &watch::Receiver<Seen>,
    bound: Duration,
) {
    let mut waiter = seen.clone();
    let all_seen = waiter.wait_for(|seen| confirmed.iter().all(|s| seen.counts.contains_key(s)));
    if tokio::time::timeout(bound, all_seen).await.is_err() {
        let seen = seen.borrow();
        let missing: Vec<&u32> = confirmed
            .iter()
            .filter(|s| !seen.counts.contains_key(s))
            .collect();
        panic!(
            "{} confirmed messages never delivered, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
    }
}
