//! Faults on one node's files: a truncated, torn or bit-flipped log on a stopped node (the
//! node must refuse to start on lost or corrupt acknowledged records, and is then repaired
//! from its peers: `repair`), and a full disk on a live one.

use std::time::Duration;

use super::super::disk;
use super::repair::{self, Started};
use super::target::{self, crash, restart};
use super::{secs, Ctx, Outcome};

/// The most bytes cut off a segment's end (a few to hundreds of records).
const TRUNCATE_BYTES_MAX: u64 = 16 * 1024;

/// Stops a node, cuts the end off its newest log segment, starts it. The cut takes records
/// the node acknowledged (the tail mark covers all it synced): it must refuse to start, and is
/// repaired from its peers. A cut that only takes an unacknowledged last batch (a kill -9
/// between its sync and its mark) may start.
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
    let after = start_and_judge(ctx, idx, "truncate-tail", Expect::RefuseOrRun).await?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("kill -9; {what}; down {}; {after}", secs(hold)),
    })
}

/// Stops a node and leaves a torn record at the end of its newest segment (a header announcing
/// more payload than follows: a crash in the middle of a write), starts it. That record was
/// never acknowledged: the node must cut it away and run on the records before it.
pub async fn torn_tail(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let idx = target::any_disk(ctx);
    crash(ctx, idx, "torn-tail").await?;
    let node = &ctx.cluster.nodes[idx];
    let segment = disk::newest_segment(node)?;
    let len = ctx.rng.between(64, 64 * 1024) as u32;
    let written = ctx.rng.below(u64::from(len)) as u32;
    let at = disk::append_torn_record(&segment, len, written)?;
    let what = format!(
        "{}: a torn record at offset {at} ({written} of {len} payload bytes)",
        segment.display()
    );
    node.mark(&format!("torn-tail {what}"));
    target::sleep(hold).await;
    let after = start_and_judge(ctx, idx, "torn-tail", Expect::Run).await?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("kill -9; {what}; down {}; {after}", secs(hold)),
    })
}

/// Stops a disk node, flips one bit of its largest log segment, starts it: it must refuse
/// (a crc mismatch is never a torn write), and is repaired from its peers.
pub async fn bitflip(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let idx = target::any_disk(ctx);
    crash(ctx, idx, "bitflip").await?;
    let node = &ctx.cluster.nodes[idx];
    let segment = disk::largest_segment(node)?;
    let len = std::fs::metadata(&segment)?.len();
    let (offset, bit) = (ctx.rng.below(len), ctx.rng.below(8) as u32);
    let (old, new) = disk::flip_bit(&segment, offset, bit)?;
    let what = format!(
        "{} byte {offset} bit {bit}: {old:#04x} -> {new:#04x}",
        segment.display()
    );
    node.mark(&format!("bitflip {what}"));
    target::sleep(hold).await;
    let after = start_and_judge(ctx, idx, "bitflip", Expect::Refuse).await?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!("kill -9; flipped {what}; down {}; {after}", secs(hold)),
    })
}

/// What a node started on a damaged log must do.
#[derive(Clone, Copy)]
enum Expect {
    /// Acknowledged records are damaged: refuse to start.
    Refuse,
    /// Only an unacknowledged record is damaged: cut it and run.
    Run,
    /// Either (a cut may or may not reach below the tail mark).
    RefuseOrRun,
}

/// Starts node `idx` after `fault`; a refusal is followed by the repair from its peers, and
/// anything `expect` rules out is a finding (then the node is repaired too).
async fn start_and_judge(
    ctx: &Ctx<'_>,
    idx: usize,
    fault: &str,
    expect: Expect,
) -> anyhow::Result<String> {
    use Expect::*;
    match (repair::start_damaged(ctx, idx, fault).await?, expect) {
        (Started::Refused(line), Refuse | RefuseOrRun) => {
            let repaired = repair::repair(ctx, idx).await?;
            Ok(format!("refused ({line}); {repaired}"))
        }
        (Started::Running, Run | RefuseOrRun) => {
            ctx.cluster.set_down(idx, false);
            Ok("started".to_string())
        }
        (Started::Refused(line), Run) => finding_then_repair(ctx, idx, fault, &line).await,
        (Started::Running, Refuse) => finding_then_repair(ctx, idx, fault, "it started").await,
        (Started::Other(what), _) => finding_then_repair(ctx, idx, fault, &what).await,
    }
}

/// A damaged log was not handled as it must be: report it, stop the node, repair it.
async fn finding_then_repair(
    ctx: &Ctx<'_>,
    idx: usize,
    fault: &str,
    what: &str,
) -> anyhow::Result<String> {
    let node = &ctx.cluster.nodes[idx];
    ctx.cluster.finding(format!(
        "{fault}: {} mishandled its damaged log: {what}",
        node.name
    ));
    if node.alive() {
        crash(ctx, idx, &format!("{fault} finding")).await?;
    }
    let repaired = repair::repair(ctx, idx).await?;
    Ok(format!("FINDING ({what}); {repaired}"))
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
