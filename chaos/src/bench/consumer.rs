//! A consumer: one connection, one channel, one `basic.consume` on one queue, recording the
//! end-to-end latency of every delivery from the send time stamped in its body.
//!
//! Settling follows PerfTest: no ack at all with `-a`, else one ack per `-A` deliveries
//! (with `multiple` when `-A` > 1). Deliveries still unsettled when the run ends are settled
//! before the connection closes, so a clean run leaves no message to be requeued.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use super::args::BenchArgs;
use super::body::Header;
use super::producer::close;
use super::setup::connect;
use super::stats::Stats;

/// How often an idle consumer looks whether it should stop.
const DONE_POLL: Duration = Duration::from_millis(100);

/// A connected, subscribed consumer.
pub struct Consumer {
    id: u64,
    connection: Connection,
    channel: Channel,
    deliveries: lapin::Consumer,
}

impl Consumer {
    /// Connects consumer `id` to `uri`, sets its prefetch and subscribes.
    pub async fn connect(args: &BenchArgs, id: u64, uri: &str) -> anyhow::Result<Consumer> {
        let queue = args.queue_name(id as usize % args.queues);
        let connection = connect(uri, &format!("warren-bench consumer {id}")).await?;
        let channel = connection
            .create_channel()
            .await
            .context("open consumer channel")?;
        if args.prefetch > 0 {
            channel
                .basic_qos(args.prefetch, BasicQosOptions::default())
                .await
                .context("basic.qos")?;
        }
        let options = BasicConsumeOptions {
            no_ack: args.auto_ack,
            ..BasicConsumeOptions::default()
        };
        let deliveries = channel
            .basic_consume(
                &queue,
                &format!("warren-bench-{id}"),
                options,
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("basic.consume on {queue}"))?;
        Ok(Consumer {
            id,
            connection,
            channel,
            deliveries,
        })
    }

    /// Receives until `done` is set, then settles what is left and closes.
    pub async fn run(mut self, args: Arc<BenchArgs>, stats: Arc<Stats>, done: Arc<AtomicBool>) {
        let what = format!("consumer {}", self.id);
        if let Err(error) = self.receive_loop(&args, &stats, &done).await {
            stats.add_error(&what, format!("{error:#}"));
        }
        close(&self.connection, &stats, &what).await;
    }

    async fn receive_loop(
        &mut self,
        args: &BenchArgs,
        stats: &Stats,
        done: &AtomicBool,
    ) -> anyhow::Result<()> {
        let multiple = args.multi_ack_every > 1;
        let mut n_unsettled: u32 = 0;
        let mut tag_last = 0;
        while !done.load(Ordering::Relaxed) {
            let delivery = match tokio::time::timeout(DONE_POLL, self.deliveries.next()).await {
                Err(_) => continue,
                Ok(None) => anyhow::bail!("the broker cancelled the consumer"),
                Ok(Some(delivery)) => delivery.context("receive a delivery")?,
            };
            stats.add_received(Header::read(&delivery.data).map(|h| h.sent_ns));
            if args.auto_ack {
                continue;
            }
            n_unsettled += 1;
            tag_last = delivery.delivery_tag;
            if n_unsettled >= args.multi_ack_every {
                self.settle(tag_last, multiple).await?;
                n_unsettled = 0;
            }
        }
        if n_unsettled > 0 {
            self.settle(tag_last, true).await?;
        }
        Ok(())
    }

    async fn settle(&self, delivery_tag: u64, multiple: bool) -> anyhow::Result<()> {
        self.channel
            .basic_ack(delivery_tag, BasicAckOptions { multiple })
            .await
            .context("basic.ack")
    }
}
