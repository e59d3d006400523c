//! Peak resident set size of given processes (the broker nodes), sampled from /proc.
//!
//! The kernel's own high-water mark (VmHWM) covers the process's whole life, including
//! earlier scenarios; sampling VmRSS during the run gives the peak of this run only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often every pid is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// The largest RSS seen for one process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeakRss {
    pub pid: u32,
    pub peak_mib: f64,
    /// Samples that found the process (0: it never existed or /proc is not readable).
    pub samples: u64,
}

/// VmRSS of `pid` in KiB, or `None` if the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss_kib(&status)
}

/// The `VmRSS:   1234 kB` line of a /proc/PID/status text.
fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples every pid until `stop` is set; the peaks are readable at any time.
pub async fn sample(pids: Vec<u32>, peaks: Arc<Mutex<Vec<PeakRss>>>, stop: Arc<AtomicBool>) {
    *peaks.lock().expect("rss lock") = pids
        .iter()
        .map(|&pid| PeakRss {
            pid,
            ..PeakRss::default()
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        for peak in peaks.lock().expect("rss lock").iter_mut() {
            if let Some(kib) = rss_kib(peak.pid) {
                peak.samples += 1;
                peak.peak_mib = peak.peak_mib.max(kib as f64 / 1024.0);
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_status_text() {
        let status = "Name:\tx\nVmHWM:\t  900 kB\nVmRSS:\t  812 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss_kib(status), Some(812));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
