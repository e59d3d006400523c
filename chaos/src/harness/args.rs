//! `warren-chaos` command line: `run` (inside chaos/run's hub namespace), `check` and
//! `corrupt`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::schedule::SpanMs;

#[derive(Parser)]
#[command(
    name = "warren-chaos",
    about = "Warren's chaos harness (docs/chaos.md)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs workload, nemeses, final heal, drain and checker against the cluster chaos/run
    /// set up (call chaos/run, not this, unless you set up the run directory yourself).
    Run(RunArgs),
    /// Checks a history file and prints the verdict table; exit 0 only if valid.
    Check {
        file: PathBuf,
        /// Warren's publish dedup was on (republish duplicates become violations).
        #[arg(long)]
        dedup: bool,
    },
    /// Flips bits of FILE in place, each byte with probability P, and lists every change.
    Corrupt {
        #[arg(long, value_name = "P")]
        bitflip: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        file: PathBuf,
    },
    /// Relays connections redirected to PORT to where they were going, each chunk held back
    /// by DELAY_MS (the `latency` nemesis runs it inside a node's namespace).
    DelayProxy {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        delay_ms: u64,
    },
}

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// The directory chaos/run prepared (node configs, pid files, start lines, images).
    #[arg(long)]
    pub run_dir: PathBuf,
    /// Where history.jsonl, verdict.txt and verdict.json go (node logs in nodes/).
    #[arg(long)]
    pub out: PathBuf,
    /// Seconds of workload under faults (the final heal and drain come after).
    #[arg(long, default_value_t = 180)]
    pub duration: u64,
    /// Faults: comma-separated names, `ci`, `all` or `none`.
    #[arg(long, default_value = "ci")]
    pub nemesis: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Nodes chaos/run started (checked against the run directory).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// RAM nodes among them (the last K).
    #[arg(long, default_value_t = 0)]
    pub ram_nodes: usize,
    /// The positive control the nodes run as (`eatmydata` or `early-confirm`, set up by
    /// chaos/run); recorded in the verdict.
    #[arg(long)]
    pub control: Option<String>,
    /// Quiet time between faults, seconds `LO-HI`.
    #[arg(long, default_value = "5-10")]
    pub quiet_s: SpanMs,
    /// How long a fault is held, seconds `LO-HI`.
    #[arg(long, default_value = "3-15")]
    pub fault_s: SpanMs,
    /// Upper bound of the drain, seconds.
    #[arg(long, default_value_t = 120)]
    pub drain_s: u64,
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    #[arg(long, default_value_t = 3)]
    pub queues: usize,
    /// Messages per second per producer.
    #[arg(long, default_value_t = 40)]
    pub rate: u32,
    /// Publishes awaiting a confirm, per producer.
    #[arg(long, default_value_t = 20)]
    pub confirm_window: usize,
    #[arg(long, default_value_t = 20)]
    pub prefetch: u16,
}
