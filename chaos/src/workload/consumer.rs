//! A chaos consumer: one subscription with manual acks and a prefetch on one queue, through
//! whichever node it can reach, resubscribing after every lost session.
//!
//! A delivery is recorded before it is acked and the ack is recorded (`settle`) once sent, so
//! a session lost between the two leaves a delivery without a settle: its redelivery is then a
//! plain redelivery, not a lost ack. Stopping closes the connection without acking anything
//! more; what is unacked returns to the queue for the drain.

use std::sync::Arc;

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::watch;

use super::conn::{bounded, pause, stopped, until_stopped, Link, Rotation};
use super::delivery::{deliver_event, Receiver};
use super::{queue_name, Ledger, WorkloadConfig};
use crate::history::{Event, History, Phase, SettleKind};

/// What one consumer did.
#[derive(Clone, Debug, Default)]
pub struct ConsumerTotals {
    pub delivered: u64,
    pub reconnects: u64,
    /// History writes that failed: the history has a hole and cannot be checked.
    pub history_errors: u64,
}

pub struct Consumer {
    cfg: Arc<WorkloadConfig>,
    cid: u64,
    queue: String,
    history: History,
    ledger: Arc<Ledger>,
    stop: watch::Receiver<bool>,
    totals: ConsumerTotals,
}

impl Consumer {
    pub fn new(
        cfg: &Arc<WorkloadConfig>,
        cid: usize,
        history: &History,
        ledger: &Arc<Ledger>,
        stop: &watch::Receiver<bool>,
    ) -> Consumer {
        Consumer {
            cfg: cfg.clone(),
            cid: cid as u64,
            queue: queue_name(cid % cfg.queues),
            history: history.clone(),
            ledger: ledger.clone(),
            stop: stop.clone(),
            totals: ConsumerTotals::default(),
        }
    }

    /// Consumes until stopped, reconnecting round-robin after every lost session.
    pub async fn run(mut self) -> ConsumerTotals {
        let name = format!("chaos consumer {}", self.cid);
        let mut stop = self.stop.clone();
        // Start one node further than the producer of the same index, so a producer and a
        // consumer of one queue usually sit on different nodes.
        let mut rotation = Rotation::new(&self.cfg.uris, self.cid as usize + 1);
        while !stopped(&stop) {
            let Some(link) = rotation
                .open(&name, self.cfg.reconnect_delay, &mut stop)
                .await
            else {
                break;
            };
            match self.session(&link).await {
                Ok(()) => {
                    link.close().await;
                    break;
                }
                Err(error) => {
                    tracing::info!(cid = self.cid, node = %link.node, error = %format!("{error:#}"), "consumer session lost");
                }
            }
            link.close().await;
            self.totals.reconnects += 1;
            pause(self.cfg.reconnect_delay, &mut stop).await;
        }
        self.totals
    }

    /// Subscribes and receives until stopped (`Ok`) or the session is lost (`Err`).
    async fn session(&mut self, link: &Link) -> anyhow::Result<()> {
        let qos = link
            .channel
            .basic_qos(self.cfg.prefetch, BasicQosOptions::default());
        bounded("basic.qos", qos).await?;
        let tag = format!("chaos-c{}-ch{}", self.cid, link.ch);
        let consume = link.channel.basic_consume(
            &self.queue,
            &tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        );
        let mut deliveries = bounded("basic.consume", consume).await?;
        let mut stop = self.stop.clone();
        loop {
            let delivery = tokio::select! {
                biased;
                _ = until_stopped(&mut stop) => return Ok(()),
                next = deliveries.next() => match next {
                    None => anyhow::bail!("the broker cancelled the consumer"),
                    Some(delivery) => delivery?,
                },
            };
            self.receive(link, &delivery).await?;
        }
    }

    /// Records a delivery, acks it and records the settle.
    async fn receive(
        &mut self,
        link: &Link,
        delivery: &lapin::message::Delivery,
    ) -> anyhow::Result<()> {
        let who = Receiver {
            cid: self.cid,
            queue: &self.queue,
            phase: Phase::Run,
        };
        let (event, key) = deliver_event(who, link, delivery);
        self.record(event);
        self.totals.delivered += 1;
        if let Some(key) = key {
            self.ledger.delivered(&self.queue, key);
        }
        let ack = link
            .channel
            .basic_ack(delivery.delivery_tag, BasicAckOptions::default());
        bounded("basic.ack", ack).await?;
        self.record(Event::Settle {
            cid: self.cid,
            ch: link.ch,
            tag: delivery.delivery_tag,
            kind: SettleKind::Ack,
            requeue: false,
        });
        Ok(())
    }

    fn record(&mut self, event: Event) {
        if let Err(error) = self.history.record(event) {
            self.totals.history_errors += 1;
            tracing::error!(cid = self.cid, error = %format!("{error:#}"), "history write failed");
        }
    }
}
