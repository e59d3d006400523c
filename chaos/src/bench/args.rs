//! The command line of `warren-bench`: RabbitMQ PerfTest's flags where they apply, so a user
//! who knows PerfTest can read a Warren benchmark command without a manual.
//!
//! Owns parsing and validation only; it must never connect or start anything.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use super::body::HEADER_SIZE;

/// Default broker address: the one `warren` listens on with its embedded defaults.
pub const URI_DEFAULT: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The `x-queue-type` argument sent with `queue.declare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Quorum,
    Classic,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

/// A PerfTest-like load generator for AMQP 0-9-1 brokers.
#[derive(Clone, Debug, Parser, serde::Serialize, serde::Deserialize)]
#[command(name = "warren-bench", version)]
pub struct BenchArgs {
    /// Producers, each on its own connection.
    #[arg(short = 'x', long = "producers", default_value_t = 1)]
    pub producers: usize,
    /// Consumers, each on its own connection.
    #[arg(short = 'y', long = "consumers", default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (at least 24: the header every body carries).
    #[arg(short = 's', long = "size", default_value_t = 1000)]
    pub body_size_bytes: usize,
    /// Confirm window: unconfirmed publishes a producer keeps outstanding (0 = no confirms).
    #[arg(short = 'c', long = "confirm", default_value_t = 0)]
    pub confirm_window: usize,
    /// Consumer prefetch (basic.qos prefetch_count; 0 = unlimited).
    #[arg(short = 'q', long = "qos", default_value_t = 0)]
    pub prefetch: u16,
    /// Consume with no_ack (the broker settles on delivery).
    #[arg(short = 'a', long = "autoack")]
    pub auto_ack: bool,
    /// Settle every N deliveries with one multiple ack (1 = ack each).
    #[arg(short = 'A', long = "multi-ack-every", default_value_t = 1)]
    pub multi_ack_every: u32,
    /// Queue name; with --queues N the queues are named <name>-<i>.
    #[arg(short = 'u', long = "queue", default_value = "warren-bench")]
    pub queue: String,
    /// Number of queues; producers and consumers are spread over them round-robin.
    #[arg(long = "queues", default_value_t = 1)]
    pub queues: usize,
    /// Queue type, sent as the x-queue-type argument of a durable queue.
    #[arg(long = "queue-type", value_enum, default_value_t = QueueType::Quorum)]
    pub queue_type: QueueType,
    /// Run for this many seconds (publishing); then drain and stop.
    #[arg(short = 'z', long = "time")]
    pub duration_s: Option<u64>,
    /// Stop each producer after this many publishes.
    #[arg(short = 'C', long = "pmessages")]
    pub publish_count: Option<u64>,
    /// Stop when consumers have received this many messages in all (PerfTest's -D, but
    /// counted over every consumer): drains a backlog left by a publish-only run.
    #[arg(short = 'D', long = "cmessages")]
    pub consume_count: Option<u64>,
    /// Producers whose connection fails reconnect (to the next --uri) and go on publishing,
    /// so a failover run measures the gap in confirms instead of ending at the first error.
    #[arg(long = "reconnect")]
    #[serde(default)]
    pub reconnect: bool,
    /// Sample the resident set size of this process id (repeatable) and report its peak.
    #[arg(long = "rss-pid")]
    #[serde(default)]
    pub rss_pids: Vec<u32>,
    /// Broker URI; repeat it to spread connections round-robin over several nodes.
    #[arg(long = "uri", default_value = URI_DEFAULT)]
    pub uris: Vec<String>,
    /// Publish with delivery_mode 2 (persistent).
    #[arg(long = "persistent", default_value_t = true, action = clap::ArgAction::Set)]
    pub persistent: bool,
    /// Publish with the mandatory flag (unroutable messages come back as returns).
    #[arg(long = "mandatory")]
    pub mandatory: bool,
    /// Seconds consumers keep draining after producers stop.
    #[arg(long = "drain", default_value_t = 5)]
    pub drain_s: u64,
    /// Write the final summary as JSON to this file.
    #[arg(long = "json")]
    pub json: Option<PathBuf>,
    /// Print no progress line each second.
    #[arg(long = "quiet")]
    pub quiet: bool,
}

impl BenchArgs {
    /// Every problem with the arguments, reported together.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.producers == 0 && self.consumers == 0 {
            problems.push("-x and -y are both 0: nothing to run".to_string());
        }
        if self.queues == 0 {
            problems.push("--queues must be at least 1".to_string());
        }
        if self.duration_s.is_none() && self.publish_count.is_none() && self.consume_count.is_none()
        {
            problems.push("give -z SECONDS, -C COUNT or -D COUNT: a run must end".to_string());
        }
        if self.consume_count.is_some() && self.consumers == 0 {
            problems.push("-D needs at least one consumer".to_string());
        }
        if self.publish_count.is_some() && self.producers == 0 {
            problems.push("-C needs at least one producer".to_string());
        }
        if self.multi_ack_every == 0 {
            problems.push("-A must be at least 1".to_string());
        }
        // A consumer that waits for N deliveries before settling must be allowed N unsettled.
        if !self.auto_ack && self.prefetch != 0 && self.multi_ack_every > u32::from(self.prefetch) {
            problems.push(format!(
                "-A {} exceeds -q {}: consumers would stall",
                self.multi_ack_every, self.prefetch
            ));
        }
        if self.uris.is_empty() {
            problems.push("--uri must be given at least once".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invalid arguments:\n  {}", problems.join("\n  "))
        }
    }

    /// The body size actually sent: never smaller than the header.
    pub fn body_size_effective(&self) -> usize {
        self.body_size_bytes.max(HEADER_SIZE)
    }

    /// Name of queue `index` (0-based).
    pub fn queue_name(&self, index: usize) -> String {
        debug_assert!(index < self.queues);
        if self.queues == 1 {
            self.queue.clone()
        } else {
            format!("{}-{}", self.queue, index)
        }
    }

    /// URI for the `index`-th connection opened.
    pub fn uri(&self, index: usize) -> &str {
        &self.uris[index % self.uris.len()]
    }

    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> BenchArgs {
        BenchArgs::try_parse_from(std::iter::once("warren-bench").chain(args.iter().copied()))
            .expect("parses")
    }

    #[test]
    fn perftest_flags_parse() {
        let args = parse(&[
            "-x", "4", "-y", "3", "-s", "1000", "-c", "100", "-q", "200", "-A", "10", "-u", "q",
            "--queues", "4", "-z", "15", "--uri", "amqp://a", "--uri", "amqp://b",
        ]);
        args.validate().expect("valid");
        assert_eq!(
            (args.producers, args.consumers, args.confirm_window),
            (4, 3, 100)
        );
        assert_eq!(args.queue_name(2), "q-2");
        assert_eq!(args.uri(3), "amqp://b");
        assert!(args.persistent);
    }

    #[test]
    fn persistent_can_be_turned_off_and_small_bodies_grow_to_the_header() {
        let args = parse(&["--persistent", "false", "-s", "4", "-z", "1"]);
        assert!(!args.persistent);
        assert_eq!(args.body_size_effective(), HEADER_SIZE);
        assert_eq!(args.queue_name(0), "warren-bench");
    }

    #[test]
    fn validation_reports_every_problem() {
        let args = parse(&["--queues", "0", "-A", "300", "-q", "200"]);
        let message = args.validate().expect_err("invalid").to_string();
        assert!(message.contains("--queues"), "{message}");
        assert!(message.contains("-z SECONDS"), "{message}");
        let drain_only = parse(&["-x", "0", "-D", "10", "--rss-pid", "1", "--rss-pid", "2"]);
        drain_only.validate().expect("-D alone ends a run");
        assert_eq!(drain_only.rss_pids, vec![1, 2]);
        let no_consumer = parse(&["-y", "0", "-D", "10"]);
        assert!(no_consumer.validate().is_err());
        assert!(message.contains("-A 300"), "{message}");
    }
}
