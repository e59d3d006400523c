//! Counters and latency histograms shared by every producer, consumer and the reporter.
//!
//! Counts are atomics; latencies go into HDR histograms in microseconds, two of each kind:
//! one for the whole run and one the reporter empties every second. Nothing here does I/O
//! except writing an error's first occurrences to stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::gap::{Gap, GapTracker};

/// Largest latency a histogram holds; larger values are clamped to it (one minute).
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant decimal digits the histograms keep.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Error messages kept for the summary; the rest are only counted.
pub const ERROR_SAMPLES_MAX: usize = 10;

/// Totals at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub confirmed: u64,
    pub nacks: u64,
    pub returns: u64,
    pub received: u64,
    pub errors: u64,
}

/// The run's shared measurements.
pub struct Stats {
    start: Instant,
    sent: AtomicU64,
    confirmed: AtomicU64,
    nacks: AtomicU64,
    returns: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    confirm: Mutex<Pair>,
    e2e: Mutex<Pair>,
    error_samples: Mutex<Vec<String>>,
    gap: GapTracker,
}

/// A run-long histogram and the one for the current second.
struct Pair {
    total: Histogram<u64>,
    interval: Histogram<u64>,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .expect("histogram bounds are valid constants")
}

impl Pair {
    fn new() -> Pair {
        Pair {
            total: new_histogram(),
            interval: new_histogram(),
        }
    }

    fn record(&mut self, latency_us: u64) {
        let value = latency_us.clamp(1, LATENCY_US_MAX);
        self.total.saturating_record(value);
        self.interval.saturating_record(value);
    }
}

impl Stats {
    pub fn new(start: Instant) -> Stats {
        Stats {
            start,
            sent: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            nacks: AtomicU64::new(0),
            returns: AtomicU64::new(0),
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            confirm: Mutex::new(Pair::new()),
            e2e: Mutex::new(Pair::new()),
            error_samples: Mutex::new(Vec::new()),
            gap: GapTracker::new(),
        }
    }

    /// Nanoseconds since the tool started: the clock stamped into every body.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn add_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A publisher confirm (basic.ack) arrived `latency` after the publish.
    pub fn add_confirmed(&self, latency: Duration) {
        self.confirmed.fetch_add(1, Ordering::Relaxed);
        self.gap.confirm_at(self.now_ns());
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.confirm.lock().expect("stats lock").record(latency_us);
    }

    pub fn add_nack(&self) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_return(&self) {
        self.returns.fetch_add(1, Ordering::Relaxed);
    }

    /// A delivery stamped at `sent_ns` arrived now; `None` for a body without a header.
    pub fn add_received(&self, sent_ns: Option<u64>) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if let Some(sent_ns) = sent_ns {
            let latency_us = self.now_ns().saturating_sub(sent_ns) / 1_000;
            self.e2e.lock().expect("stats lock").record(latency_us);
        }
    }

    /// Counts an error; the first few are printed and kept for the summary.
    pub fn add_error(&self, what: &str, error: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.error_samples.lock().expect("stats lock");
        if samples.len() < ERROR_SAMPLES_MAX {
            let message = format!("{what}: {error}");
            eprintln!("warren-bench: error: {message}");
            samples.push(message);
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            sent: self.sent.load(Ordering::Relaxed),
            confirmed: self.confirmed.load(Ordering::Relaxed),
            nacks: self.nacks.load(Ordering::Relaxed),
            returns: self.returns.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// The last second's confirm and end-to-end histograms; starts the next second empty.
    pub fn take_interval(&self) -> (Histogram<u64>, Histogram<u64>) {
        let take = |pair: &Mutex<Pair>| {
            let mut pair = pair.lock().expect("stats lock");
            std::mem::replace(&mut pair.interval, new_histogram())
        };
        (take(&self.confirm), take(&self.e2e))
    }

    /// The run-long confirm and end-to-end histograms.
    pub fn totals(&self) -> (Histogram<u64>, Histogram<u64>) {
        let confirm = self.confirm.lock().expect("stats lock").total.clone();
        let e2e = self.e2e.lock().expect("stats lock").total.clone();
        (confirm, e2e)
    }

    /// The longest pause between confirms, and its start and end in Unix milliseconds.
    pub fn longest_confirm_gap(&self) -> (Gap, u64, u64) {
        let gap = self.gap.longest();
        let unix = |ns| self.gap.unix_ms(ns);
        (gap, unix(gap.start_ns), unix(gap.end_ns))
    }

    /// Every confirm gap of 10 ms or more as (start, end) in Unix ms, and the last confirm's
    /// Unix ms (a failover script looks for the gap holding its kill, or sees none came).
    pub fn confirm_gaps_unix_ms(&self) -> (Vec<(u64, u64)>, Option<u64>) {
        let unix = |ns| self.gap.unix_ms(ns);
        let gaps = self.gap.kept();
        let gaps = gaps.iter().map(|g| (unix(g.start_ns), unix(g.end_ns)));
        (gaps.collect(), self.gap.last_ns().map(unix))
    }

    pub fn error_samples(&self) -> Vec<String> {
        self.error_samples.lock().expect("stats lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_empties_and_total_keeps() {
        let stats = Stats::new(Instant::now());
        stats.add_confirmed(Duration::from_millis(5));
        stats.add_received(Some(0));
        let (confirm, e2e) = stats.take_interval();
        assert_eq!((confirm.len(), e2e.len()), (1, 1));
        assert_eq!(stats.take_interval().0.len(), 0);
        let (confirm_total, _) = stats.totals();
        assert_eq!(confirm_total.len(), 1);
        assert!((4_990..=5_010).contains(&confirm_total.value_at_quantile(0.5)));
        assert_eq!(stats.counts().confirmed, 1);
    }

    #[test]
    fn errors_are_all_counted_but_few_kept() {
        let stats = Stats::new(Instant::now());
        for i in 0..ERROR_SAMPLES_MAX + 5 {
            stats.add_error("test", i);
        }
        assert_eq!(stats.counts().errors, (ERROR_SAMPLES_MAX + 5) as u64);
        assert_eq!(stats.error_samples().len(), ERROR_SAMPLES_MAX);
    }
}
