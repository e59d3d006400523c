//! A producer: one connection, one channel, publishing stamped bodies to one queue as fast
//! as its confirm window allows.
//!
//! The confirm window is a semaphore of `c` permits: a publish takes one, and the confirm
//! collector gives it back when the broker confirms that publish. The collector awaits the
//! confirms in publish order, always waiting on the oldest, so the latency it records is the
//! time the confirm reached this process, not the time the producer got round to looking.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::args::BenchArgs;
use super::body::{new_body, Header};
use super::setup::connect;
use super::stats::Stats;

/// How often a producer blocked on a full window looks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Time allowed to close a connection politely.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A publish waiting for its confirm; dropping it frees its place in the window.
struct Pending {
    confirm: PublisherConfirm,
    published_at: Instant,
    _permit: OwnedSemaphorePermit,
}

/// A connected producer, ready to publish.
pub struct Producer {
    id: u64,
    queue: String,
    connection: Connection,
    channel: Channel,
}

impl Producer {
    /// Connects producer `id` to `uri` and puts its channel in confirm mode if `-c` > 0.
    pub async fn connect(args: &BenchArgs, id: u64, uri: &str) -> anyhow::Result<Producer> {
        let queue = args.queue_name(id as usize % args.queues);
        let connection = connect(uri, &format!("warren-bench producer {id}")).await?;
        let channel = connection
            .create_channel()
            .await
            .context("open producer channel")?;
        if args.confirm_window > 0 {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .context("confirm.select")?;
        }
        Ok(Producer {
            id,
            queue,
            connection,
            channel,
        })
    }

    /// Publishes until `stop` is set or `-C` publishes are done, waits (up to the drain
    /// time) for the outstanding confirms, then closes. Errors are counted in `stats`.
    pub async fn run(self, args: Arc<BenchArgs>, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
        let window = args.confirm_window.max(1);
        let (pending_tx, pending_rx) = mpsc::channel::<Pending>(window);
        let collector = tokio::spawn(collect_confirms(pending_rx, stats.clone()));
        let what = format!("producer {}", self.id);
        if let Err(error) = self.publish_loop(&args, &stats, &stop, pending_tx).await {
            stats.add_error(&what, format!("{error:#}"));
        }
        // The loop dropped its sender: the collector ends once the last confirm is in.
        match tokio::time::timeout(args.drain(), collector).await {
            Ok(Ok(())) => {}
            Ok(Err(join)) => stats.add_error(&what, join),
            Err(_) => stats.add_error(&what, "confirms still outstanding after the drain"),
        }
        close(&self.connection, &stats, &what).await;
    }

    async fn publish_loop(
        &self,
        args: &BenchArgs,
        stats: &Stats,
        stop: &AtomicBool,
        pending_tx: mpsc::Sender<Pending>,
    ) -> anyhow::Result<()> {
        let window = Arc::new(Semaphore::new(args.confirm_window.max(1)));
        let mut body = new_body(args.body_size_effective());
        let delivery_mode = if args.persistent { 2 } else { 1 };
        let properties = BasicProperties::default().with_delivery_mode(delivery_mode);
        let options = BasicPublishOptions {
            mandatory: args.mandatory,
            ..BasicPublishOptions::default()
        };
        let publish_count = args.publish_count.unwrap_or(u64::MAX);
        for seq in 0..publish_count {
            let permit = loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let acquire = window.clone().acquire_owned();
                if let Ok(permit) = tokio::time::timeout(STOP_POLL, acquire).await {
                    break permit.context("confirm window closed")?;
                }
            };
            let header = Header {
                producer_id: self.id,
                seq,
                sent_ns: stats.now_ns(),
            };
            header.write(&mut body);
            let published_at = Instant::now();
            let confirm = self
                .channel
                .basic_publish("", &self.queue, options, &body, properties.clone())
                .await
                .context("basic.publish")?;
            stats.add_sent();
            if args.confirm_window > 0 {
                let pending = Pending {
                    confirm,
                    published_at,
                    _permit: permit,
                };
                if pending_tx.send(pending).await.is_err() {
                    // The collector stopped on a failed confirm and has counted it.
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Awaits confirms in publish order; stops at the first failure (the channel is gone).
async fn collect_confirms(mut pending_rx: mpsc::Receiver<Pending>, stats: Arc<Stats>) {
    while let Some(pending) = pending_rx.recv().await {
        match pending.confirm.await {
            Ok(Confirmation::Ack(returned)) => {
                if returned.is_some() {
                    stats.add_return();
                }
                stats.add_confirmed(pending.published_at.elapsed());
            }
            Ok(Confirmation::Nack(returned)) => {
                if returned.is_some() {
                    stats.add_return();
                }
                stats.add_nack();
            }
            Ok(Confirmation::NotRequested) => {}
            Err(error) => {
                stats.add_error("publisher confirm", error);
                return;
            }
        }
    }
}

/// Closes a connection, bounded in time; a failure is counted, not fatal.
pub async fn close(connection: &Connection, stats: &Stats, what: &str) {
    match tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "bench done")).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => stats.add_error(&format!("{what}: close"), error),
        Err(_) => stats.add_error(&format!("{what}: close"), "timed out"),
    }
}
