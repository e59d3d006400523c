//! Power cuts (one node, or every node for the positive control) and EIO on a live node.

use std::time::Duration;

use super::super::disk;
use super::target::{self, power_cut as cut, restart};
use super::{secs, Ctx, Outcome};

/// How long a node whose disk returns EIO has to stop on its own.
const EIO_EXIT_WAIT: Duration = Duration::from_secs(10);

pub async fn power_cut(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let idx = target::any_disk(ctx);
    cut(ctx, idx, "power-cut").await?;
    target::sleep(hold).await;
    restart(ctx, idx)?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!(
            "xfs shutdown, kill -9, remount; down {}, restarted",
            secs(hold)
        ),
    })
}

/// Every node loses power at once: only what each fsync'd survives. Under `eatmydata` (fsync a
/// no-op) confirmed messages must vanish, or the harness cannot see a lost write.
pub async fn power_cut_all(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let all: Vec<usize> = (0..ctx.cluster.nodes.len()).collect();
    // Shut every filesystem down first, so no node writes after another lost power.
    for &idx in &all {
        ctx.cluster.set_down(idx, true);
        disk::shutdown(&ctx.cluster.nodes[idx]).await?;
    }
    for &idx in &all {
        let node = &ctx.cluster.nodes[idx];
        node.mark(&format!("power-cut-all at t={}", target::t_s(ctx)));
        node.kill9().await?;
        disk::remount(node).await?;
    }
    target::sleep(hold).await;
    for &idx in &all {
        restart(ctx, idx)?;
    }
    Ok(Outcome {
        targets: ctx.cluster.names(&all),
        detail: format!(
            "every node: xfs shutdown, kill -9, remount; down {}",
            secs(hold)
        ),
    })
}

/// The live node's disk starts failing every write and fsync. It must fail-stop (never retry
/// an fsync and carry on); the others keep serving. Then it is restored like a power cut.
pub async fn eio(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let idx = target::any_disk(ctx);
    let node = &ctx.cluster.nodes[idx];
    ctx.cluster.set_down(idx, true);
    node.mark(&format!(
        "eio (xfs shutdown, process left running) at t={}",
        target::t_s(ctx)
    ));
    disk::shutdown(node).await?;
    let wait = hold.max(EIO_EXIT_WAIT);
    let stopped = node.wait_exit(wait).await.is_ok();
    let verdict = if stopped {
        format!("fail-stopped within {}", secs(wait))
    } else {
        ctx.cluster.finding(format!(
            "{} process still running {} after its disk started returning EIO (it did not exit; \
             its log says whether Raft stopped: {})",
            node.name,
            secs(wait),
            node.log.display()
        ));
        node.kill9().await?;
        format!("still running after {}: killed", secs(wait))
    };
    disk::remount(node).await?;
    restart(ctx, idx)?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("xfs shutdown of a live node: {verdict}; remounted, restarted"),
    })
}
