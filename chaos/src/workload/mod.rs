//! The chaos workload (CHECKER.md, "History"): producers with publisher confirms that
//! reconnect and republish what was not confirmed, consumers with manual acks that reconnect,
//! and the drain that reads every queue empty after the final heal. Everything they do is
//! recorded into the run's `History`; the checker judges the history, not this code.
//!
//! The workload must never hide a fault: an outcome it cannot know is recorded as
//! `publish_unknown`, never guessed, and a delivery is recorded before it is acked, so a
//! crash between the two shows up as a duplicate, never as a loss.

pub mod body;
pub mod conn;
pub mod consumer;
pub mod delivery;
pub mod drain;
pub mod ledger;
pub mod producer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::history::History;

pub use drain::drain;
pub use ledger::{ConfirmedIds, Ledger, MsgKey};

/// What to run. Producer `i` publishes to queue `i % queues` and consumer `i` consumes from
/// it; both connect round-robin over `uris` (a consumer starts one URI further than the
/// producer of the same index). Put `?heartbeat=N` on the URIs under pause or partition
/// nemeses: a consumer only notices a silent node through missed heartbeats.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub uris: Vec<String>,
    pub producers: usize,
    pub consumers: usize,
    pub queues: usize,
    /// Publishes awaiting their confirm, per producer.
    pub confirm_window: usize,
    pub prefetch: u16,
    /// Messages per second per producer; 0 = as fast as the window allows.
    pub rate_per_producer: u32,
    pub body_size: usize,
    /// A publish with no confirm after this long is `publish_unknown {timeout}`.
    pub confirm_timeout: Duration,
    pub reconnect_delay: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            uris: vec!["amqp://guest:guest@127.0.0.1:5672/%2f".into()],
            producers: 2,
            consumers: 2,
            queues: 2,
            confirm_window: 16,
            prefetch: 16,
            rate_per_producer: 0,
            body_size: 64,
            confirm_timeout: Duration::from_secs(5),
            reconnect_delay: Duration::from_millis(500),
        }
    }
}

impl WorkloadConfig {
    /// Checks the numbers make a workload.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.uris.is_empty(), "no URIs");
        anyhow::ensure!(self.queues > 0, "queues must be > 0");
        anyhow::ensure!(self.confirm_window > 0, "confirm_window must be > 0");
        anyhow::ensure!(
            !self.confirm_timeout.is_zero(),
            "confirm_timeout must be > 0"
        );
        Ok(())
    }
}

/// The name of queue `index`.
pub fn queue_name(index: usize) -> String {
    format!("chaos-q{index}")
}

/// Counts over the whole run, and what the drain still has to find.
#[derive(Clone, Debug, Default)]
pub struct WorkloadTotals {
    pub attempts: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    pub unknown: u64,
    pub delivered: u64,
    pub reconnects: u64,
    /// Confirmed messages not yet delivered, per queue: the drain's target.
    pub awaiting: ConfirmedIds,
}

/// A running workload.
pub struct Workload {
    stop_tx: watch::Sender<bool>,
    producers: Vec<JoinHandle<producer::ProducerTotals>>,
    consumers: Vec<JoinHandle<consumer::ConsumerTotals>>,
    ledger: Arc<Ledger>,
    history: History,
}

impl Workload {
    /// Declares the queues (durable, names "chaos-q0".. ) and starts producers and consumers,
    /// recording into `history`.
    pub async fn start(cfg: WorkloadConfig, history: History) -> anyhow::Result<Workload> {
        cfg.validate()?;
        declare_queues(&cfg).await?;
        let cfg = Arc::new(cfg);
        let ledger = Arc::new(Ledger::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        // Consumers first, so the first publish already has someone to deliver to.
        let consumers = (0..cfg.consumers)
            .map(|cid| {
                let consumer = consumer::Consumer::new(&cfg, cid, &history, &ledger, &stop_rx);
                tokio::spawn(consumer.run())
            })
            .collect();
        let producers = (0..cfg.producers)
            .map(|pid| {
                let producer = producer::Producer::new(&cfg, pid, &history, &ledger, &stop_rx);
                tokio::spawn(producer.run())
            })
            .collect();
        Ok(Workload {
            stop_tx,
            producers,
            consumers,
            ledger,
            history,
        })
    }

    /// Messages confirmed so far (distinct, returns excluded): lets a harness or a test wait
    /// for progress instead of sleeping.
    pub fn confirmed_so_far(&self) -> usize {
        self.ledger.n_confirmed()
    }

    /// Stops producers (outstanding confirms are waited for up to confirm_timeout, then
    /// recorded publish_unknown) and cancels consumers, closing their connections (unacked
    /// messages return).
    pub async fn stop(self) -> anyhow::Result<WorkloadTotals> {
        let _ = self.stop_tx.send(true);
        let mut totals = WorkloadTotals::default();
        let mut history_errors = 0;
        for task in self.producers {
            let p = task.await.context("join a producer")?;
            totals.attempts += p.attempts;
            totals.confirmed += p.confirmed;
            totals.nacked += p.nacked;
            totals.returned += p.returned;
            totals.unknown += p.unknown;
            totals.reconnects += p.reconnects;
            history_errors += p.history_errors;
        }
        for task in self.consumers {
            let c = task.await.context("join a consumer")?;
            totals.delivered += c.delivered;
            totals.reconnects += c.reconnects;
            history_errors += c.history_errors;
        }
        anyhow::ensure!(
            history_errors == 0,
            "{history_errors} history writes failed: the history cannot be checked"
        );
        self.history.flush()?;
        totals.awaiting = self.ledger.awaiting();
        Ok(totals)
    }
}

/// Declares every queue from a short-lived connection, trying each URI in turn (the first
/// may be down when a harness restarts a run).
async fn declare_queues(cfg: &WorkloadConfig) -> anyhow::Result<()> {
    let mut last_error = None;
    for uri in &cfg.uris {
        match declare_on(uri, cfg.queues).await {
            Ok(()) => return Ok(()),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no URIs")))
}

async fn declare_on(uri: &str, queues: usize) -> anyhow::Result<()> {
    let link = conn::Link::open(uri, "chaos setup").await?;
    let result = declare_all(&link, queues).await;
    link.close().await;
    result
}

async fn declare_all(link: &conn::Link, queues: usize) -> anyhow::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for index in 0..queues {
        let name = queue_name(index);
        let declare = link
            .channel
            .queue_declare(&name, options, FieldTable::default());
        conn::bounded("queue.declare", declare)
            .await
            .with_context(|| format!("declare queue {name}"))?;
    }
    Ok(())
}
