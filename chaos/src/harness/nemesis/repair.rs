//! A node started on a damaged log, and its repair from its peers.
//!
//! A flipped bit is a crc mismatch, and a log shorter than its tail mark has lost records: both
//! are damage to records the node may have acknowledged, never a torn write, so the node must
//! refuse to start (it neither votes nor serves on a log it cannot trust). The repair is the
//! one docs/operations.md gives an operator: demote it from a live node (so its empty log never
//! counts towards a quorum), wipe its data directory, start it (it catches up from the
//! leader's snapshot as a learner), promote it: `promote` itself waits until the node holds
//! the leader's log, and refuses while it lags. That is also the harness's membership change
//! under load.

use std::time::Duration;

use anyhow::Context;
use warren::config::NodeConfig;
use warren::raft::protocol::MembershipChange;

use super::super::status;
use super::target;
use super::{secs, Ctx};

/// How long a node with a corrupt log may take to refuse (exit) after its start.
const REFUSE_WAIT: Duration = Duration::from_secs(20);
/// How long a membership change may take (an election may be under way).
const CHANGE_WAIT: Duration = Duration::from_secs(30);
/// How long the promotion is asked for again while the leader refuses it because the node
/// still lags (each ask waits up to `PROMOTE_CATCH_UP_S_MAX` first). Promoting a node that
/// lags would make every commit wait for it once another voter is lost (issue 20); leaving
/// it a learner for good would leave two voters, and a RAM node's restart then could never
/// be swapped in. So the repair waits, and a node that never catches up is a finding.
const PROMOTE_WAIT: Duration = Duration::from_secs(300);

/// What a node did when started on a damaged log.
pub enum Started {
    /// It exited, and its log names the damage (the line).
    Refused(String),
    /// It answers its peers' transport: it opened its log and runs.
    Running,
    /// It exited without naming the damage, or did neither in time.
    Other(String),
}

/// Starts node `idx` after `marker`'s damage and waits until it refuses (exits naming a
/// corrupt log or lost records) or runs (answers a status request).
pub async fn start_damaged(ctx: &Ctx<'_>, idx: usize, marker: &str) -> anyhow::Result<Started> {
    let node = &ctx.cluster.nodes[idx];
    node.start()?;
    let start = tokio::time::Instant::now();
    while start.elapsed() < REFUSE_WAIT {
        if !node.alive() {
            let log = node.log_after_mark(marker);
            let named = log
                .lines()
                .find(|l| l.contains("corrupt") || l.contains("lost acknowledged records"));
            return Ok(match named {
                Some(line) => Started::Refused(line.trim().chars().take(300).collect()),
                None => Started::Other("exited without naming the damage".into()),
            });
        }
        if status::view(ctx.cluster, idx).await.is_some() {
            return Ok(Started::Running);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Started::Other(format!(
        "neither refused nor ran in {}",
        secs(REFUSE_WAIT)
    )))
}

/// The repair from peers: demote, wipe, start, wait for catch-up, promote; returns what it
/// did. The node must be stopped.
pub async fn repair(ctx: &Ctx<'_>, idx: usize) -> anyhow::Result<String> {
    let node = &ctx.cluster.nodes[idx];
    let id = node.id;
    change(ctx, idx, MembershipChange::Demote { id }).await?;
    let data = node.data_dir();
    std::fs::remove_dir_all(&data).with_context(|| format!("wipe {}", data.display()))?;
    std::fs::create_dir_all(&data)?;
    node.mark(&format!(
        "repair: demoted, wiped, start at t={}",
        target::t_s(ctx)
    ));
    node.start()?;
    let started = tokio::time::Instant::now();
    let promote = MembershipChange::Promote { id };
    change_within(ctx, idx, promote, PROMOTE_WAIT).await?;
    ctx.cluster.set_down(idx, false);
    Ok(format!(
        "repaired from peers: demoted, wiped, restarted, promoted once caught up ({} after \
         its start)",
        secs(started.elapsed())
    ))
}

/// Asks the leader, through any other node, for a membership change; retries through
/// elections until `CHANGE_WAIT`.
async fn change(ctx: &Ctx<'_>, idx: usize, what: MembershipChange) -> anyhow::Result<()> {
    change_within(ctx, idx, what, CHANGE_WAIT).await
}

/// [`change`], retried until `limit`.
async fn change_within(
    ctx: &Ctx<'_>,
    idx: usize,
    what: MembershipChange,
    limit: Duration,
) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let via = (idx + 1) % ctx.cluster.nodes.len();
    let config = NodeConfig::load(&ctx.cluster.nodes[via].config)?;
    loop {
        match warren::cli::membership::ask_leader(&config, what.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > limit => {
                return Err(e.context(format!("{what:?} for {}", ctx.cluster.nodes[idx].name)))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
