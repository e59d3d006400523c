//! The memory alarm: when the node's resident memory passes the high watermark, publishing
//! connections stop being read and clients that asked for it get connection.blocked, as
//! RabbitMQ's memory alarm does; both end when memory falls back below the watermark.

use crate::limits::MEMORY_SAMPLE_EVERY;
use tokio::sync::watch;

/// Share of the machine's memory used when no watermark is configured (RabbitMQ's 0.4).
const DEFAULT_SHARE_PERCENT: u64 = 40;

/// Starts the sampler; the receiver reads `true` while the alarm is on.
pub fn start(configured_watermark: u64) -> watch::Receiver<bool> {
    let watermark = match configured_watermark {
        0 => total_memory().unwrap_or(u64::MAX / 100) / 100 * DEFAULT_SHARE_PERCENT,
        bytes => bytes,
    };
    let (alarm, receiver) = watch::channel(false);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(MEMORY_SAMPLE_EVERY);
        loop {
            ticks.tick().await;
            let on = resident_memory().is_some_and(|rss| rss > watermark);
            if *alarm.borrow() != on {
                tracing::warn!(on, watermark, "memory alarm");
                if alarm.send(on).is_err() {
                    return;
                }
            }
        }
    });
    receiver
}

/// This process's resident set size, from /proc/self/statm (pages).
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_size).ok()?)
}

/// The machine's memory, from /proc/meminfo.
fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory() {
        let rss = resident_memory().expect("statm");
        let total = total_memory().expect("meminfo");
        assert!(rss > 0 && rss < total, "rss {rss} total {total}");
    }
}
