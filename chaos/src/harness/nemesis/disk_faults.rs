//! Faults on one node's files: a truncated log tail on a stopped node, and a full disk on a
//! live one.

use std::time::Duration;

use super::super::disk;
use super::target::{self, crash, restart};
use super::{secs, Ctx, Outcome};

/// The most bytes cut off a segment's end (a few to hundreds of records).
const TRUNCATE_BYTES_MAX: u64 = 16 * 1024;

/// Stops a node, cuts the end off its newest log segment, restarts it. Records the node may
/// have acknowledged can be gone: it must notice, and never vote or lead on a log it lost
/// (CHAOS-HARNESS.md), or a confirmed message can vanish.
pub async fn truncate_tail(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let idx = target::any_disk(ctx);
    crash(ctx, idx, "truncate-tail").await?;
    let node = &ctx.cluster.nodes[idx];
    let segment = disk::newest_segment(node)?;
    let want = ctx.rng.between(1, TRUNCATE_BYTES_MAX);
    let (len, cut) = disk::truncate_tail(&segment, want)?;
    let what = format!(
        "{}: cut {cut} bytes at offset {} (was {len} bytes)",
        segment.display(),
        len - cut
    );
    node.mark(&format!("truncate-tail {what}"));
    target::sleep(hold).await;
    restart(ctx, idx)?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("kill -9; {what}; down {}, restarted", secs(hold)),
    })
}

/// Fills a live node's disk to 1 MiB of free space. It must stop confirming (or stop), never
/// corrupt its log; then the space is freed and it must recover (restarted if it stopped).
pub async fn disk_full(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let idx = target::any_disk(ctx);
    let node = &ctx.cluster.nodes[idx];
    // A node may fail-stop on ENOSPC: that is allowed, so the watchdog must not report it.
    ctx.cluster.set_down(idx, true);
    node.mark(&format!("disk-full at t={}", target::t_s(ctx)));
    let bytes = disk::fill(node).await?;
    target::sleep(hold).await;
    let stopped = !node.alive();
    disk::unfill(node)?;
    node.mark(&format!("disk freed at t={}", target::t_s(ctx)));
    let after = if stopped {
        restart(ctx, idx)?;
        "it had stopped: restarted"
    } else {
        ctx.cluster.set_down(idx, false);
        "it kept running"
    };
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("fallocate {bytes} bytes for {}, freed; {after}", secs(hold)),
    })
}
