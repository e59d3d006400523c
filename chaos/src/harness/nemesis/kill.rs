//! kill -9 of the leader or of a follower, then a restart with the same start line.

use std::time::Duration;

use super::target::{self, crash, restart};
use super::{secs, Ctx, Outcome};

pub async fn kill_leader(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let (idx, note) = target::leader_or_any(ctx).await;
    kill_restart(ctx, idx, note, hold).await
}

pub async fn kill_follower(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let idx = target::follower(ctx).await;
    kill_restart(ctx, idx, "follower", hold).await
}

async fn kill_restart(
    ctx: &mut Ctx<'_>,
    idx: usize,
    note: &str,
    hold: Duration,
) -> anyhow::Result<Outcome> {
    crash(ctx, idx, "kill").await?;
    target::sleep(hold).await;
    restart(ctx, idx)?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("{note}: kill -9, down {}, restarted", secs(hold)),
    })
}

/// kill -9 of a RAM node and a restart: it comes back empty as a new incarnation (a new Raft
/// id), joins as a learner and replaces its dead start as a voter (docs/operations.md).
pub async fn ram_restart(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let ram = ctx.cluster.of_kind(true);
    let idx = ctx
        .rng
        .pick(&ram)
        .ok_or_else(|| anyhow::anyhow!("ram-restart needs a RAM node (--ram-nodes)"))?;
    kill_restart(ctx, idx, "RAM node", hold).await
}
