//! A chaos producer: one logical stream of messages (`mid`s) to one queue, published with
//! confirms through whichever node it can reach, republishing what was not confirmed.
//!
//! Each attempt gets a fresh `seq` and is recorded as `publish_invoke` before it is sent, so
//! its invoke time precedes any delivery of it. Every attempt gets exactly one outcome line:
//! `publish_ok`, `publish_nack`, `publish_returned` (then `publish_ok`, as the broker acks a
//! returned message) or `publish_unknown`. A session (one connection and channel) ends on the
//! first lost channel or confirm timeout; its outstanding attempts then get a short grace to
//! resolve (acks already received still count) and the rest are recorded unknown and queued
//! for republish on the next session.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::ShortString;
use lapin::BasicProperties;
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::{encode, BodyIds};
use super::conn::{bounded, pause, stopped, until_stopped, Link, Rotation};
use super::{queue_name, Ledger, WorkloadConfig};
use crate::history::{Event, History, UnknownWhy};

/// How long outstanding confirms may still resolve once a session is lost.
const LOSS_GRACE: Duration = Duration::from_millis(300);

/// What one producer did.
#[derive(Clone, Debug, Default)]
pub struct ProducerTotals {
    pub attempts: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    pub unknown: u64,
    pub reconnects: u64,
    /// History writes that failed: the history has a hole and cannot be checked.
    pub history_errors: u64,
}

/// An attempt's confirm, resolved: `Err(())` when it timed out.
type Outcome = (u64, u64, Result<lapin::Result<Confirmation>, ()>);
type Pending = FuturesUnordered<Pin<Box<dyn Future<Output = Outcome> + Send>>>;

/// Why a session ended.
enum SessionEnd {
    Stopped,
    Lost(UnknownWhy),
}

pub struct Producer {
    cfg: Arc<WorkloadConfig>,
    pid: u64,
    queue: String,
    history: History,
    ledger: Arc<Ledger>,
    stop: watch::Receiver<bool>,
    next_seq: u64,
    next_mid: u64,
    /// Mids whose last attempt was nacked or unknown, to publish again.
    retry: VecDeque<u64>,
    /// No publish before this: after a nack the broker refuses writes (a disk fault), so
    /// republishing at once would only flood the history with nacks.
    not_before: Instant,
    /// Attempts of the current session awaiting their outcome: `seq` -> `mid`.
    outstanding: BTreeMap<u64, u64>,
    totals: ProducerTotals,
}

impl Producer {
    pub fn new(
        cfg: &Arc<WorkloadConfig>,
        pid: usize,
        history: &History,
        ledger: &Arc<Ledger>,
        stop: &watch::Receiver<bool>,
    ) -> Producer {
        Producer {
            cfg: cfg.clone(),
            pid: pid as u64,
            queue: queue_name(pid % cfg.queues),
            history: history.clone(),
            ledger: ledger.clone(),
            stop: stop.clone(),
            next_seq: 0,
            next_mid: 0,
            retry: VecDeque::new(),
            not_before: Instant::now(),
            outstanding: BTreeMap::new(),
            totals: ProducerTotals::default(),
        }
    }

    /// Publishes until stopped, reconnecting round-robin after every lost session.
    pub async fn run(mut self) -> ProducerTotals {
        let name = format!("chaos producer {}", self.pid);
        let mut stop = self.stop.clone();
        let mut rotation = Rotation::new(&self.cfg.uris, self.pid as usize);
        while !stopped(&stop) {
            let Some(link) = rotation
                .open(&name, self.cfg.reconnect_delay, &mut stop)
                .await
            else {
                break;
            };
            let select = link.channel.confirm_select(ConfirmSelectOptions::default());
            if let Err(error) = bounded("confirm.select", select).await {
                tracing::debug!(pid = self.pid, error = %format!("{error:#}"), "confirm.select failed");
            } else {
                match self.session(&link).await {
                    SessionEnd::Stopped => {
                        link.close().await;
                        break;
                    }
                    SessionEnd::Lost(why) => {
                        tracing::info!(pid = self.pid, ?why, node = %link.node, "producer session lost");
                    }
                }
            }
            link.close().await;
            self.totals.reconnects += 1;
            pause(self.cfg.reconnect_delay, &mut stop).await;
        }
        self.totals
    }

    /// Publishes on one channel until it is lost or the run stops.
    async fn session(&mut self, link: &Link) -> SessionEnd {
        let mut pending: Pending = FuturesUnordered::new();
        let mut stop = self.stop.clone();
        let mut next_at = Instant::now();
        let mut stopping = stopped(&stop);
        while !stopping {
            let room = pending.len() < self.cfg.confirm_window;
            tokio::select! {
                biased;
                _ = until_stopped(&mut stop) => stopping = true,
                Some(outcome) = pending.next(), if !pending.is_empty() => {
                    if let Some(why) = self.settle(outcome, link) {
                        return self.lose(pending, why, link).await;
                    }
                }
                _ = tokio::time::sleep_until(next_at.max(self.not_before)), if room => {
                    if let Err(why) = self.publish(link, &mut pending).await {
                        return self.lose(pending, why, link).await;
                    }
                    next_at = self.next_publish_at(next_at);
                }
            }
        }
        // Stopping: every outstanding attempt resolves within its own confirm timeout.
        while let Some(outcome) = pending.next().await {
            if let Some(why) = self.settle(outcome, link) {
                return self.lose(pending, why, link).await;
            }
        }
        SessionEnd::Stopped
    }

    fn next_publish_at(&self, last: Instant) -> Instant {
        match self.cfg.rate_per_producer {
            0 => last,
            rate => last.max(Instant::now()) + Duration::from_secs(1) / rate,
        }
    }

    /// Records and sends one attempt: a republish of a retried mid, else a new mid.
    async fn publish(&mut self, link: &Link, pending: &mut Pending) -> Result<(), UnknownWhy> {
        let mid = self.retry.pop_front().unwrap_or_else(|| {
            self.next_mid += 1;
            self.next_mid - 1
        });
        let seq = self.next_seq;
        self.next_seq += 1;
        self.record(Event::PublishInvoke {
            client: format!("p{}", self.pid),
            conn: link.conn,
            ch: link.ch,
            pid: self.pid,
            seq,
            mid,
            queue: self.queue.clone(),
            node: link.node.clone(),
        });
        self.totals.attempts += 1;
        let body = encode(
            BodyIds {
                pid: self.pid,
                seq,
                mid,
            },
            self.cfg.body_size,
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(format!("p{}-m{mid}", self.pid)));
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let publish = link
            .channel
            .basic_publish("", &self.queue, options, &body, properties);
        match tokio::time::timeout(self.cfg.confirm_timeout, publish).await {
            Ok(Ok(confirm)) => {
                self.outstanding.insert(seq, mid);
                let timeout = self.cfg.confirm_timeout;
                pending.push(Box::pin(async move {
                    let result = tokio::time::timeout(timeout, confirm).await;
                    (seq, mid, result.map_err(|_| ()))
                }));
                Ok(())
            }
            Ok(Err(_)) => {
                let why = loss_why(link);
                self.unknown(seq, mid, why);
                Err(why)
            }
            Err(_) => {
                self.unknown(seq, mid, UnknownWhy::Timeout);
                Err(UnknownWhy::Timeout)
            }
        }
    }

    /// Records one attempt's outcome; `Some(why)` when it shows the session is lost.
    fn settle(&mut self, (seq, mid, result): Outcome, link: &Link) -> Option<UnknownWhy> {
        let pid = self.pid;
        self.outstanding.remove(&seq);
        match result {
            Ok(Ok(Confirmation::Ack(returned))) => {
                if let Some(message) = returned {
                    self.totals.returned += 1;
                    self.record(Event::PublishReturned {
                        pid,
                        seq,
                        reply_code: message.reply_code,
                    });
                } else {
                    self.totals.confirmed += 1;
                    self.ledger.confirmed(&self.queue, (pid, mid));
                }
                self.record(Event::PublishOk { pid, seq });
                None
            }
            Ok(Ok(Confirmation::Nack(_))) => {
                self.totals.nacked += 1;
                self.record(Event::PublishNack { pid, seq });
                self.retry.push_back(mid);
                self.not_before = Instant::now() + self.cfg.reconnect_delay;
                None
            }
            // Confirm mode was not on: nothing can be known about this channel.
            Ok(Ok(Confirmation::NotRequested)) => {
                self.unknown(seq, mid, UnknownWhy::ChannelClosed);
                Some(UnknownWhy::ChannelClosed)
            }
            Ok(Err(_)) => {
                let why = loss_why(link);
                self.unknown(seq, mid, why);
                Some(why)
            }
            Err(()) => {
                self.unknown(seq, mid, UnknownWhy::Timeout);
                Some(UnknownWhy::Timeout)
            }
        }
    }

    /// Ends a lost session: confirms already received still count, the rest are unknown.
    async fn lose(&mut self, mut pending: Pending, why: UnknownWhy, link: &Link) -> SessionEnd {
        let deadline = Instant::now() + LOSS_GRACE;
        while let Ok(Some(outcome)) = tokio::time::timeout_at(deadline, pending.next()).await {
            let _ = self.settle(outcome, link);
        }
        // What did not resolve within the grace is unknown.
        drop(pending);
        for (seq, mid) in std::mem::take(&mut self.outstanding) {
            self.unknown(seq, mid, why);
        }
        SessionEnd::Lost(why)
    }

    fn unknown(&mut self, seq: u64, mid: u64, why: UnknownWhy) {
        self.totals.unknown += 1;
        self.record(Event::PublishUnknown {
            pid: self.pid,
            seq,
            why,
        });
        if !stopped(&self.stop) {
            self.retry.push_back(mid);
        }
    }

    fn record(&mut self, event: Event) {
        if let Err(error) = self.history.record(event) {
            self.totals.history_errors += 1;
            tracing::error!(pid = self.pid, error = %format!("{error:#}"), "history write failed");
        }
    }
}

/// Whether the connection or only the channel is gone.
fn loss_why(link: &Link) -> UnknownWhy {
    if link.connection_lost() {
        UnknownWhy::ConnLost
    } else {
        UnknownWhy::ChannelClosed
    }
}
