//! The longest pause between two consecutive publisher confirms, from any producer.
//!
//! A failover benchmark asks "how long after the kill did confirms resume?". Under steady
//! load confirms arrive milliseconds apart, so the longest gap in the run is the outage; its
//! end, in Unix time, lets a script subtract the moment it sent the kill signal (the tool
//! cannot see the signal, and the gap's start is the last confirm before it, not the kill).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// No confirm seen yet.
const NONE: u64 = u64::MAX;
/// Gaps at least this long are kept in a list, so a script can find the one that holds the
/// moment it sent a signal (the longest gap of a run need not be that one).
pub const GAP_KEPT_MIN_NS: u64 = 10_000_000;
/// The list keeps at most this many (the first ones).
pub const GAPS_KEPT_MAX: usize = 1_000;

/// The longest gap so far, in nanoseconds of the run's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gap {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Gap {
    pub fn length_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// Tracks confirm times; cheap on the hot path (one swap, a lock only on a new longest).
pub struct GapTracker {
    last_ns: AtomicU64,
    longest: Mutex<Gap>,
    kept: Mutex<Vec<Gap>>,
    /// Unix time in milliseconds when the run's clock read 0.
    start_unix_ms: u64,
}

impl GapTracker {
    pub fn new() -> GapTracker {
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        GapTracker {
            last_ns: AtomicU64::new(NONE),
            longest: Mutex::new(Gap::default()),
            kept: Mutex::new(Vec::new()),
            start_unix_ms,
        }
    }

    /// A confirm arrived at `now_ns` on the run's clock.
    pub fn confirm_at(&self, now_ns: u64) {
        let last_ns = self.last_ns.swap(now_ns, Ordering::Relaxed);
        // Two producers race on the swap: a confirm may see a later one as "last"; the
        // saturating subtraction makes that a zero gap, which is never the longest.
        if last_ns == NONE || now_ns.saturating_sub(last_ns) == 0 {
            return;
        }
        let gap = Gap {
            start_ns: last_ns,
            end_ns: now_ns,
        };
        if gap.length_ns() >= GAP_KEPT_MIN_NS {
            let mut kept = self.kept.lock().expect("gap lock");
            if kept.len() < GAPS_KEPT_MAX {
                kept.push(gap);
            }
        }
        let mut longest = self.longest.lock().expect("gap lock");
        if gap.length_ns() > longest.length_ns() {
            *longest = gap;
        }
    }

    /// Every gap of at least `GAP_KEPT_MIN_NS`, in the order they ended.
    pub fn kept(&self) -> Vec<Gap> {
        self.kept.lock().expect("gap lock").clone()
    }

    /// Run-clock time of the last confirm, if any.
    pub fn last_ns(&self) -> Option<u64> {
        Some(self.last_ns.load(Ordering::Relaxed)).filter(|&ns| ns != NONE)
    }

    pub fn longest(&self) -> Gap {
        *self.longest.lock().expect("gap lock")
    }

    /// The run-clock time `ns` as Unix milliseconds.
    pub fn unix_ms(&self, ns: u64) -> u64 {
        self.start_unix_ms.saturating_add(ns / 1_000_000)
    }
}

impl Default for GapTracker {
    fn default() -> Self {
        GapTracker::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_is_kept_with_its_end() {
        let tracker = GapTracker::new();
        assert_eq!(tracker.last_ns(), None);
        let ms = 1_000_000;
        for ns in [5, 10, 30 * ms, 31 * ms, 80 * ms, 79 * ms] {
            tracker.confirm_at(ns);
        }
        let gap = tracker.longest();
        assert_eq!((gap.start_ns, gap.end_ns), (31 * ms, 80 * ms));
        let kept: Vec<u64> = tracker.kept().iter().map(|g| g.end_ns).collect();
        assert_eq!(kept, vec![30 * ms, 80 * ms]);
        assert_eq!(tracker.last_ns(), Some(79 * ms));
        assert_eq!(tracker.unix_ms(2_000_000), tracker.unix_ms(0) + 2);
    }
}
