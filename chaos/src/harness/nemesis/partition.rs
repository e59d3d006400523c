//! Network partitions between nodes (iptables inside their namespaces, src/harness/net.rs):
//! isolate the leader or a follower, a bridge, and flapping.

use std::time::Duration;

use super::super::net;
use super::target;
use super::{secs, Ctx, Outcome};

/// Flapping's on and off periods (CHAOS-HARNESS.md: 1-2 s).
const FLAP_MS: (u64, u64) = (1000, 2000);

pub async fn isolate_leader(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let (idx, note) = target::leader_or_any(ctx).await;
    isolate_for(ctx, idx, note, hold).await
}

pub async fn isolate_follower(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let idx = target::follower(ctx).await;
    isolate_for(ctx, idx, "follower", hold).await
}

async fn isolate_for(
    ctx: &mut Ctx<'_>,
    idx: usize,
    note: &str,
    hold: Duration,
) -> anyhow::Result<Outcome> {
    net::isolate(ctx.cluster, idx).await?;
    target::sleep(hold).await;
    net::heal(ctx.cluster).await?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("{note}: cut from its peers for {}", secs(hold)),
    })
}

/// One node (the bridge) sees everyone; the others split into two sides that cannot see
/// each other. On three nodes: n1 | n2 | n3 with only n2 linked to both. A deposed node keeps
/// calling elections unless pre-vote stops it.
pub async fn bridge(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let mut order: Vec<usize> = (0..ctx.cluster.nodes.len()).collect();
    ctx.rng.shuffle(&mut order);
    let (bridge, rest) = (order[0], &order[1..]);
    let (left, right) = rest.split_at(rest.len() / 2);
    net::cut(ctx.cluster, left, right).await?;
    target::sleep(hold).await;
    net::heal(ctx.cluster).await?;
    Ok(Outcome {
        targets: ctx.cluster.names(&order),
        detail: format!(
            "bridge {} between {:?} and {:?} for {}",
            ctx.cluster.nodes[bridge].name,
            ctx.cluster.names(left),
            ctx.cluster.names(right),
            secs(hold)
        ),
    })
}

/// A random node cut off and healed every 1-2 s for the whole hold.
pub async fn flapping(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let start = tokio::time::Instant::now();
    let mut cut = Vec::new();
    while start.elapsed() < hold {
        let idx = target::any(ctx);
        net::isolate(ctx.cluster, idx).await?;
        cut.push(idx);
        target::sleep(ctx.rng.duration_ms(FLAP_MS.0, FLAP_MS.1)).await;
        net::heal(ctx.cluster).await?;
        target::sleep(ctx.rng.duration_ms(FLAP_MS.0, FLAP_MS.1)).await;
    }
    let mut targets = cut.clone();
    targets.sort_unstable();
    targets.dedup();
    Ok(Outcome {
        targets: ctx.cluster.names(&targets),
        detail: format!(
            "{} flaps over {}: isolated in turn {:?}",
            cut.len(),
            secs(hold),
            ctx.cluster.names(&cut)
        ),
    })
}
