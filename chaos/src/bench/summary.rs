//! What a run reports: the progress line printed each second and the final summary, as text
//! for a person and as JSON for scripts.
//!
//! `Summary` is serialized: its field names are a compatibility boundary for the scripts
//! that read it (chaos/bench/*.sh). Add fields; never rename or remove one.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::args::BenchArgs;
use super::rss::PeakRss;
use super::stats::{Counts, Stats};

/// Latency percentiles in milliseconds, from an HDR histogram of microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Latency {
    pub fn from_histogram(histogram: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1_000.0;
        if histogram.is_empty() {
            return Latency::default();
        }
        Latency {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// The final report of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub config: BenchArgs,
    /// Seconds producers published (the drain afterwards is not counted).
    pub duration_s: f64,
    pub sent: u64,
    pub confirmed: u64,
    pub nacks: u64,
    pub returns: u64,
    pub received: u64,
    pub errors: u64,
    /// Rates over `duration_s`, from the counts when producers stopped.
    pub sent_per_s: f64,
    pub confirmed_per_s: f64,
    pub received_per_s: f64,
    pub confirm_latency_ms: Latency,
    pub e2e_latency_ms: Latency,
    pub error_samples: Vec<String>,
    /// Longest pause between two confirms (the outage in a failover run), in seconds.
    #[serde(default)]
    pub confirm_gap_max_s: f64,
    /// When that pause started and ended (last confirm before, first after), Unix ms.
    #[serde(default)]
    pub confirm_gap_start_unix_ms: u64,
    #[serde(default)]
    pub confirm_gap_end_unix_ms: u64,
    /// Every pause of 10 ms or more between confirms, as [start, end] Unix ms.
    #[serde(default)]
    pub confirm_gaps_unix_ms: Vec<(u64, u64)>,
    /// The last confirm of the run, Unix ms (0: none).
    #[serde(default)]
    pub last_confirm_unix_ms: u64,
    /// Peak RSS of each `--rss-pid` process during the run.
    #[serde(default)]
    pub peak_rss: Vec<PeakRss>,
}

impl Summary {
    /// Builds the summary from the counts at the producers' stop and the final stats.
    pub fn new(
        args: &BenchArgs,
        stats: &Stats,
        at_stop: Counts,
        duration: Duration,
        peak_rss: Vec<PeakRss>,
    ) -> Summary {
        let counts = stats.counts();
        let (gap, gap_start_unix_ms, gap_end_unix_ms) = stats.longest_confirm_gap();
        let (confirm_gaps_unix_ms, last_confirm) = stats.confirm_gaps_unix_ms();
        let (confirm, e2e) = stats.totals();
        let duration_s = duration.as_secs_f64().max(1e-9);
        let rate = |n: u64| n as f64 / duration_s;
        Summary {
            config: args.clone(),
            duration_s,
            sent: counts.sent,
            confirmed: counts.confirmed,
            nacks: counts.nacks,
            returns: counts.returns,
            received: counts.received,
            errors: counts.errors,
            sent_per_s: rate(at_stop.sent),
            confirmed_per_s: rate(at_stop.confirmed),
            received_per_s: rate(at_stop.received),
            confirm_latency_ms: Latency::from_histogram(&confirm),
            e2e_latency_ms: Latency::from_histogram(&e2e),
            error_samples: stats.error_samples(),
            confirm_gap_max_s: gap.length_ns() as f64 / 1e9,
            confirm_gap_start_unix_ms: gap_start_unix_ms,
            confirm_gap_end_unix_ms: gap_end_unix_ms,
            confirm_gaps_unix_ms,
            last_confirm_unix_ms: last_confirm.unwrap_or(0),
            peak_rss,
        }
    }

    /// The summary for a person, a few lines.
    pub fn text(&self) -> String {
        let latency = |name: &str, l: &Latency| {
            format!(
                "{name} latency ms (n={}): p50 {:.2}  p95 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n",
                l.count, l.p50, l.p95, l.p99, l.p99_9, l.max
            )
        };
        let mut text = format!(
            "summary: {:.1} s  sent {} ({:.0}/s)  confirmed {} ({:.0}/s)  received {} ({:.0}/s)\n",
            self.duration_s,
            self.sent,
            self.sent_per_s,
            self.confirmed,
            self.confirmed_per_s,
            self.received,
            self.received_per_s
        );
        text += &format!(
            "nacks {}  returns {}  errors {}\n",
            self.nacks, self.returns, self.errors
        );
        text += &latency("confirm", &self.confirm_latency_ms);
        text += &latency("end-to-end", &self.e2e_latency_ms);
        text += &format!("longest confirm gap {:.3} s\n", self.confirm_gap_max_s);
        for peak in &self.peak_rss {
            text += &format!("peak RSS pid {}: {:.1} MiB\n", peak.pid, peak.peak_mib);
        }
        for sample in &self.error_samples {
            text += &format!("error: {sample}\n");
        }
        text
    }
}

/// Prints one line per second from the change in the counters since the last line.
pub struct Progress {
    last: Counts,
    last_at: Duration,
}

impl Progress {
    pub fn new(stats: &Stats) -> Progress {
        Progress {
            last: stats.counts(),
            last_at: stats.elapsed(),
        }
    }

    /// Whether a second has passed since the last line.
    pub fn due(&self, stats: &Stats) -> bool {
        stats.elapsed().saturating_sub(self.last_at) >= Duration::from_secs(1)
    }

    /// The line for the time since the last one; starts the next interval.
    pub fn line(&mut self, stats: &Stats) -> String {
        let now = stats.elapsed();
        let counts = stats.counts();
        let (confirm, e2e) = stats.take_interval();
        let seconds = now.saturating_sub(self.last_at).as_secs_f64().max(1e-9);
        let rate = |now: u64, last: u64| now.saturating_sub(last) as f64 / seconds;
        let p = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
        let line = format!(
            "time {:6.1} s  sent {:7.0}/s  confirmed {:7.0}/s  received {:7.0}/s  \
             confirm p50/p99 {:.2}/{:.2} ms  e2e p50/p99 {:.2}/{:.2} ms",
            now.as_secs_f64(),
            rate(counts.sent, self.last.sent),
            rate(counts.confirmed, self.last.confirmed),
            rate(counts.received, self.last.received),
            p(&confirm, 0.5),
            p(&confirm, 0.99),
            p(&e2e, 0.5),
            p(&e2e, 0.99),
        );
        self.last = counts;
        self.last_at = now;
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::new_histogram;

    #[test]
    fn latency_percentiles_are_in_milliseconds() {
        let mut histogram = new_histogram();
        for us in 1..=1_000u64 {
            histogram.record(us * 10).expect("in range");
        }
        let latency = Latency::from_histogram(&histogram);
        assert_eq!(latency.count, 1_000);
        assert!((latency.p50 - 5.0).abs() < 0.01, "{latency:?}");
        assert!((latency.p99 - 9.9).abs() < 0.01, "{latency:?}");
        assert!(latency.p99_9 <= latency.max);
        assert_eq!(
            Latency::from_histogram(&new_histogram()),
            Latency::default()
        );
    }
}
