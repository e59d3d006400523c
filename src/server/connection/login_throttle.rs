//! Failed logins are answered slowly, the more so the more often one address fails: a
//! client guessing passwords gets one answer per second at best, while a user who mistyped
//! waits a moment. Successes are not slowed and do not reset the count; it decays with time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The first refusal's delay; each later one within the window doubles it, up to the max.
const FAILED_LOGIN_DELAY_FIRST: Duration = Duration::from_millis(100);
const FAILED_LOGIN_DELAY_MAX: Duration = Duration::from_secs(1);
/// An address quiet this long starts over.
const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest are forgotten first past this).
const ADDRESSES_MAX: usize = 10_000;

struct Failures {
    count: u32,
    last: Instant,
}

/// One process is one node: the table is the node's.
static FAILURES: LazyLock<Mutex<HashMap<IpAddr, Failures>>> = LazyLock::new(Mutex::default);

/// Records a failed login from `peer` and waits as long as its recent failures call for.
pub async fn failed(peer: IpAddr) {
    let delay = note_failure(peer, Instant::now());
    tokio::time::sleep(delay).await;
}

fn note_failure(peer: IpAddr, now: Instant) -> Duration {
    let mut table = FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    if table.len() >= ADDRESSES_MAX {
        table.retain(|_, f| now.duration_since(f.last) < FAILED_LOGIN_WINDOW);
    }
    let entry = table.entry(peer).or_insert(Failures {
        count: 0,
        last: now,
    });
    if now.duration_since(entry.last) >= FAILED_LOGIN_WINDOW {
        entry.count = 0;
    }
    entry.count = entry.count.saturating_add(1);
    entry.last = now;
    delay_after(entry.count)
}

fn delay_after(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    (FAILED_LOGIN_DELAY_FIRST * 2u32.pow(doublings)).min(FAILED_LOGIN_DELAY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_wait_longer_up_to_the_max() {
        assert_eq!(delay_after(1), FAILED_LOGIN_DELAY_FIRST);
        assert_eq!(delay_after(2), FAILED_LOGIN_DELAY_FIRST * 2);
        assert_eq!(delay_after(100), FAILED_LOGIN_DELAY_MAX);
    }

    #[test]
    fn an_address_quiet_for_the_window_starts_over() {
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        note_failure(peer, t0);
        assert_eq!(note_failure(peer, t0), FAILED_LOGIN_DELAY_FIRST * 2);
        let later = t0 + FAILED_LOGIN_WINDOW;
        assert_eq!(note_failure(peer, later), FAILED_LOGIN_DELAY_FIRST);
    }
}
