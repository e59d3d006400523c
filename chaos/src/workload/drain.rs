//! The drain (skeleton).

use std::time::Duration;

use super::ConfirmedIds;
use crate::history::History;

/// CHECKER.md's drain: records drain_start, then per queue consumes with manual ack through
/// any of `uris` until every confirmed id of that queue was seen or the queue reports
/// ready = unacked = 0 for 2 s, bounded by `bound`; records drain_end per queue.
pub async fn drain(
    _uris: &[String],
    _queues: usize,
    _confirmed: &ConfirmedIds,
    _history: &History,
    _bound: Duration,
) -> anyhow::Result<()> {
    anyhow::bail!("drain: not built yet")
}
