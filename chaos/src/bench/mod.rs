//! `warren-bench`: a PerfTest-like load generator (issue 5).
//!
//! A run has four phases: declare the queues; connect every consumer, then every producer
//! (connections spread round-robin over the `--uri`s); publish until `-z` seconds pass or
//! every producer has sent its `-C` messages, printing a progress line each second; then stop
//! the producers, let consumers drain what was confirmed (up to `--drain` seconds) and close
//! everything. With `-D N` the run ends once consumers have received N messages (draining a
//! backlog). Setup failures end the run with an error; failures once it runs are counted
//! and reported in the summary, so a benchmark under faults still reports what it measured.

pub mod args;
pub mod body;
pub mod consumer;
pub mod gap;
pub mod producer;
pub mod rss;
pub mod setup;
pub mod stats;
pub mod summary;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

pub use args::BenchArgs;
pub use summary::Summary;

use consumer::Consumer;
use producer::Producer;
use stats::{Counts, Stats};
use summary::Progress;

/// How often the run loop looks at the clock and the producers.
const TICK: Duration = Duration::from_millis(50);

/// Runs a benchmark to the end and returns its summary.
pub async fn run(args: BenchArgs) -> anyhow::Result<Summary> {
    args.validate()?;
    let args = Arc::new(args);
    let stats = Arc::new(Stats::new(Instant::now()));
    setup::declare_queues(&args).await?;

    let consumers_done = Arc::new(AtomicBool::new(false));
    let producers_stop = Arc::new(AtomicBool::new(false));
    // Connect everything before the clock starts, consumers first so the first publish
    // already has someone to deliver to.
    let mut consumers = Vec::with_capacity(args.consumers);
    for id in 0..args.consumers {
        consumers.push(Consumer::connect(&args, id as u64, args.uri(id)).await?);
    }
    let mut producers = Vec::with_capacity(args.producers);
    for id in 0..args.producers {
        let uri_index = args.consumers + id;
        producers.push(Producer::connect(&args, id as u64, uri_index).await?);
    }

    let rss_peaks = Arc::new(Mutex::new(Vec::new()));
    let rss_stop = Arc::new(AtomicBool::new(false));
    let rss_task = tokio::spawn(rss::sample(
        args.rss_pids.clone(),
        rss_peaks.clone(),
        rss_stop.clone(),
    ));
    let consumer_tasks: Vec<JoinHandle<()>> = consumers
        .into_iter()
        .map(|c| tokio::spawn(c.run(args.clone(), stats.clone(), consumers_done.clone())))
        .collect();
    let started_at = stats.elapsed();
    let producer_tasks: Vec<JoinHandle<()>> = producers
        .into_iter()
        .map(|p| tokio::spawn(p.run(args.clone(), stats.clone(), producers_stop.clone())))
        .collect();

    let mut progress = Progress::new(&stats);
    let duration = args.duration_s.map(Duration::from_secs);
    loop {
        tokio::time::sleep(TICK).await;
        report(&args, &stats, &mut progress);
        let elapsed = stats.elapsed() - started_at;
        let timed_out = duration.is_some_and(|d| elapsed >= d);
        let all_sent = !producer_tasks.is_empty() && producer_tasks.iter().all(|t| t.is_finished());
        let all_received = args
            .consume_count
            .is_some_and(|n| stats.counts().received >= n);
        if timed_out || all_sent || all_received {
            break;
        }
    }

    producers_stop.store(true, Ordering::Relaxed);
    let published_for = stats.elapsed() - started_at;
    let at_stop = stats.counts();
    join_all(producer_tasks, &stats, "producer").await;
    drain(&args, &stats, &mut progress).await;
    consumers_done.store(true, Ordering::Relaxed);
    join_all(consumer_tasks, &stats, "consumer").await;
    rss_stop.store(true, Ordering::Relaxed);
    join_all(vec![rss_task], &stats, "rss sampler").await;
    let peaks = rss_peaks.lock().expect("rss lock").clone();
    Ok(Summary::new(&args, &stats, at_stop, published_for, peaks))
}

fn report(args: &BenchArgs, stats: &Stats, progress: &mut Progress) {
    if progress.due(stats) {
        let line = progress.line(stats);
        if !args.quiet {
            println!("{line}");
        }
    }
}

/// What consumers should have received once everything is drained.
fn drain_target(args: &BenchArgs, counts: &Counts) -> u64 {
    if args.confirm_window > 0 {
        counts.confirmed.saturating_sub(counts.returns)
    } else {
        counts.sent.saturating_sub(counts.returns)
    }
}

/// Waits, up to `--drain` seconds, until consumers have received every confirmed message.
async fn drain(args: &BenchArgs, stats: &Stats, progress: &mut Progress) {
    if args.consumers == 0 {
        return;
    }
    let deadline = Instant::now() + args.drain();
    loop {
        let counts = stats.counts();
        if counts.received >= drain_target(args, &counts) || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(TICK).await;
        report(args, stats, progress);
    }
}

async fn join_all(tasks: Vec<JoinHandle<()>>, stats: &Stats, what: &str) {
    for task in tasks {
        if let Err(error) = task.await {
            stats.add_error(&format!("{what} task"), error);
        }
    }
}
