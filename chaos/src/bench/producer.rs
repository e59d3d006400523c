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
/// Pause before a reconnect, so a dead node is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Longest a reconnect attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
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
    /// Which `--uri` it is connected to (`BenchArgs::uri` index); a reconnect takes the next.
    uri_index: usize,
    /// Sequence number of the next publish, kept across reconnects.
    seq_next: u64,
}

/// How a publishing session ended.
enum End {
    /// Stopped, or every `-C` publish done: nothing more to do.
    Done,
    /// The connection or channel failed (already counted in the stats).
    Failed,
}

impl Producer {
    /// Connects producer `id` to the `uri_index`-th `--uri` and puts its channel in confirm
    /// mode if `-c` > 0.
    pub async fn connect(args: &BenchArgs, id: u64, uri_index: usize) -> anyhow::Result<Producer> {
        let queue = args.queue_name(id as usize % args.queues);
        let uri = args.uri(uri_index);
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
            uri_index,
            seq_next: 0,
        })
    }

    /// Publishes until `stop` is set or `-C` publishes are done, waits (up to the drain
    /// time) for the outstanding confirms, then closes. Errors are counted in `stats`; with
    /// `--reconnect` a failed connection is replaced and publishing goes on.
    pub async fn run(mut self, args: Arc<BenchArgs>, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
        let what = format!("producer {}", self.id);
        while let End::Failed = self.session(&args, &stats, &stop, &what).await {
            if !args.reconnect || !self.reconnect(&args, &stats, &stop).await {
                break;
            }
        }
        close(&self.connection, &stats, &what).await;
    }

    /// One connection's worth of publishing, up to the last confirm or the first failure.
    async fn session(
        &mut self,
        args: &BenchArgs,
        stats: &Arc<Stats>,
        stop: &AtomicBool,
        what: &str,
    ) -> End {
        let window = args.confirm_window.max(1);
        let (pending_tx, pending_rx) = mpsc::channel::<Pending>(window);
        let collector = tokio::spawn(collect_confirms(pending_rx, stats.clone()));
        let end = match self.publish_loop(args, stats, stop, pending_tx).await {
            Ok(end) => end,
            Err(error) => {
                stats.add_error(what, format!("{error:#}"));
                End::Failed
            }
        };
        if let End::Failed = end {
            // Its confirms will never come: the channel is gone.
            collector.abort();
            return End::Failed;
        }
        // The loop dropped its sender: the collector ends once the last confirm is in.
        match tokio::time::timeout(args.drain(), collector).await {
            Ok(Ok(End::Done)) => End::Done,
            Ok(Ok(End::Failed)) => End::Failed,
            Ok(Err(join)) => {
                stats.add_error(what, join);
                End::Done
            }
            Err(_) => {
                stats.add_error(what, "confirms still outstanding after the drain");
                End::Done
            }
        }
    }

    /// Connects to the next `--uri` until that works or `stop` is set; false if stopped.
    async fn reconnect(&mut self, args: &BenchArgs, stats: &Stats, stop: &AtomicBool) -> bool {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            let uri_index = self.uri_index + 1;
            // A frozen (SIGSTOPped) node accepts TCP but never answers: bound the attempt.
            let attempt = Producer::connect(args, self.id, uri_index);
            match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                Ok(Ok(fresh)) => {
                    let seq_next = self.seq_next;
                    *self = Producer { seq_next, ..fresh };
                    return true;
                }
                Ok(Err(error)) => stats.add_error("producer reconnect", format!("{error:#}")),
                Err(_) => stats.add_error("producer reconnect", "timed out"),
            }
            self.uri_index = uri_index;
        }
        false
    }

    async fn publish_loop(
        &mut self,
        args: &BenchArgs,
        stats: &Stats,
        stop: &AtomicBool,
        pending_tx: mpsc::Sender<Pending>,
    ) -> anyhow::Result<End> {
        let window = Arc::new(Semaphore::new(args.confirm_window.max(1)));
        let mut body = new_body(args.body_size_effective());
        let delivery_mode = if args.persistent { 2 } else { 1 };
        let properties = BasicProperties::default().with_delivery_mode(delivery_mode);
        let options = BasicPublishOptions {
            mandatory: args.mandatory,
            ..BasicPublishOptions::default()
        };
        let publish_count = args.publish_count.unwrap_or(u64::MAX);
        while self.seq_next < publish_count {
            let permit = loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(End::Done);
                }
                let acquire = window.clone().acquire_owned();
                if let Ok(permit) = tokio::time::timeout(STOP_POLL, acquire).await {
                    break permit.context("confirm window closed")?;
                }
            };
            let header = Header {
                producer_id: self.id,
                seq: self.seq_next,
                sent_ns: stats.now_ns(),
            };
            header.write(&mut body);
            let published_at = Instant::now();
            let confirm = self
                .channel
                .basic_publish("", &self.queue, options, &body, properties.clone())
                .await
                .context("basic.publish")?;
            self.seq_next += 1;
            stats.add_sent();
            if args.confirm_window > 0 {
                let pending = Pending {
                    confirm,
                    published_at,
                    _permit: permit,
                };
                if pending_tx.send(pending).await.is_err() {
                    // The collector stopped on a failed confirm and has counted it.
                    return Ok(End::Failed);
                }
            }
        }
        Ok(End::Done)
    }
}

/// Awaits confirms in publish order; stops at the first failure (the channel is gone).
async fn collect_confirms(mut pending_rx: mpsc::Receiver<Pending>, stats: Arc<Stats>) -> End {
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
                return End::Failed;
            }
        }
    }
    End::Done
}

/// Closes a connection, bounded in time; a failure is counted, not fatal.
pub async fn close(connection: &Connection, stats: &Stats, what: &str) {
    match tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "bench done")).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => stats.add_error(&format!("{what}: close"), error),
        Err(_) => stats.add_error(&format!("{what}: close"), "timed out"),
    }
}
