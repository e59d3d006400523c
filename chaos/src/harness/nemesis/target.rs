//! Choosing a fault's target (the leader or a follower, from the nodes' own views) and the
//! process steps several faults share: crash, power cut, restart.

use std::time::Duration;

use super::super::disk;
use super::super::status;
use super::Ctx;

/// The current leader, or (when none answers as leader) a random node; the note says which.
pub async fn leader_or_any(ctx: &mut Ctx<'_>) -> (usize, &'static str) {
    let views = status::views(ctx.cluster).await;
    match status::leader(&views) {
        Some(idx) => (idx, "leader"),
        None => {
            let idx = ctx.rng.below(ctx.cluster.nodes.len() as u64) as usize;
            (idx, "no leader answered; random node")
        }
    }
}

/// A random node that is not the leader.
pub async fn follower(ctx: &mut Ctx<'_>) -> usize {
    let views = status::views(ctx.cluster).await;
    let leader = status::leader(&views);
    let others: Vec<usize> = (0..ctx.cluster.nodes.len())
        .filter(|&i| Some(i) != leader)
        .collect();
    ctx.rng.pick(&others).unwrap_or(0)
}

/// Any node.
pub fn any(ctx: &mut Ctx<'_>) -> usize {
    ctx.rng.below(ctx.cluster.nodes.len() as u64) as usize
}

/// Any disk node: the target of a disk fault (a RAM node keeps nothing on disk).
pub fn any_disk(ctx: &mut Ctx<'_>) -> usize {
    let disk = ctx.cluster.of_kind(false);
    ctx.rng.pick(&disk).unwrap_or(0)
}

/// kill -9, waiting for the process to be gone; the node stays down (for the watchdog).
pub async fn crash(ctx: &Ctx<'_>, idx: usize, why: &str) -> anyhow::Result<()> {
    let node = &ctx.cluster.nodes[idx];
    ctx.cluster.set_down(idx, true);
    node.mark(&format!("{why}: kill -9 at t={}", t_s(ctx)));
    node.kill9().await
}

/// Power cut: XFS shutdown (unsynced writes are lost), kill -9, umount and mount again.
pub async fn power_cut(ctx: &Ctx<'_>, idx: usize, why: &str) -> anyhow::Result<()> {
    let node = &ctx.cluster.nodes[idx];
    ctx.cluster.set_down(idx, true);
    node.mark(&format!(
        "{why}: power cut (xfs shutdown, kill -9) at t={}",
        t_s(ctx)
    ));
    disk::shutdown(node).await?;
    node.kill9().await?;
    disk::remount(node).await
}

/// Starts the node again with its start line.
pub fn restart(ctx: &Ctx<'_>, idx: usize) -> anyhow::Result<()> {
    let node = &ctx.cluster.nodes[idx];
    node.mark(&format!("restart at t={}", t_s(ctx)));
    node.start()?;
    ctx.cluster.set_down(idx, false);
    Ok(())
}

pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The history's clock in seconds, for log markers.
pub fn t_s(ctx: &Ctx<'_>) -> String {
    format!("{:.3}s", ctx.history.now_ns() as f64 / 1e9)
}
