//! NATS-style combined sequences (jepsen-io/nats `nemesis.clj`, CHAOS-HARNESS.md): crasher n2,
//! part1 {n1}, part2 {n3}. After the crash the quorum must be formed by nodes that were on
//! different sides, so a crasher that lost what it acknowledged would lose confirmed data.

use std::time::Duration;

use super::super::net;
use super::target::{self, power_cut, restart};
use super::{secs, Ctx, Outcome};

const PART1: usize = 0;
const CRASHER: usize = 1;
const PART2: usize = 2;

/// isolate n1 · hold · power-cut n2 · heal · isolate n3 · restart n2 · hold · heal.
pub async fn part_kill(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    net::isolate(ctx.cluster, PART1).await?;
    target::sleep(hold).await;
    power_cut(ctx, CRASHER, "part-kill").await?;
    net::heal(ctx.cluster).await?;
    net::isolate(ctx.cluster, PART2).await?;
    restart(ctx, CRASHER)?;
    target::sleep(hold).await;
    net::heal(ctx.cluster).await?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[PART1, CRASHER, PART2]),
        detail: format!(
            "isolate n1, {h}, power-cut n2, heal, isolate n3, restart n2, {h}, heal",
            h = secs(hold)
        ),
    })
}

/// The same with SIGSTOP instead of the partitions.
pub async fn pause_kill(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let (part1, part2) = (&ctx.cluster.nodes[PART1], &ctx.cluster.nodes[PART2]);
    part1.signal(libc::SIGSTOP)?;
    target::sleep(hold).await;
    power_cut(ctx, CRASHER, "pause-kill").await?;
    part1.signal(libc::SIGCONT)?;
    part2.signal(libc::SIGSTOP)?;
    restart(ctx, CRASHER)?;
    target::sleep(hold).await;
    part2.signal(libc::SIGCONT)?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[PART1, CRASHER, PART2]),
        detail: format!(
            "SIGSTOP n1, {h}, power-cut n2, SIGCONT n1, SIGSTOP n3, restart n2, {h}, SIGCONT n3",
            h = secs(hold)
        ),
    })
}
