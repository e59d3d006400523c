//! SIGSTOP/SIGCONT of the leader. Every tokio worker stops at once, so the node neither sends
//! heartbeats nor notices time passing: on SIGCONT it acts on a stale view of the cluster.
//! Half the pauses are drawn around the election timeout (300-600 ms in src/raft/node.rs: ½×
//! to 2× of its maximum, as openraft's fuzzer does), half as long as any other fault.

use std::time::Duration;

use super::target;
use super::{secs, Ctx, Outcome};

const PAUSE_SHORT_MS: (u64, u64) = (300, 1200);

pub async fn pause_leader(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let (idx, note) = target::leader_or_any(ctx).await;
    let pause = if ctx.rng.chance(0.5) {
        ctx.rng.duration_ms(PAUSE_SHORT_MS.0, PAUSE_SHORT_MS.1)
    } else {
        hold
    };
    let node = &ctx.cluster.nodes[idx];
    node.mark(&format!("SIGSTOP at t={}", target::t_s(ctx)));
    node.signal(libc::SIGSTOP)?;
    target::sleep(pause).await;
    node.signal(libc::SIGCONT)?;
    node.mark(&format!("SIGCONT at t={}", target::t_s(ctx)));
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("{note}: SIGSTOP for {}, SIGCONT", secs(pause)),
    })
}
