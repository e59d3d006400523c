//! The proposer's background tasks: fail-stop when Raft stops on its own, ticks that expire
//! messages, and the close of this node's earlier lives' connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::proposer::Proposer;
use crate::broker::command::Command;
use crate::limits::{EARLIER_LIVES_CHECK_EVERY, EXPIRY_TICK_EVERY};
use crate::raft::node::wall_clock_ms;

impl Proposer {
    /// Fail-stop: when openraft's core stops by itself (a log write or fsync failed: EIO,
    /// disk full), the node can no longer commit, vote or apply, and serving clients from a
    /// frozen state would only mislead them. The process exits (status 70) so a supervisor
    /// restarts it, which recovers from the log as it is on disk.
    pub fn start_fail_stop(self: &Arc<Self>) {
        let proposer = Arc::clone(self);
        tokio::spawn(async move {
            proposer.node.wait_stopped().await;
            if !proposer.stopping.load(Ordering::SeqCst) {
                tracing::error!("raft stopped on its own (storage failure?); exiting");
                std::process::exit(70);
            }
        });
    }

    /// Proposes a `Tick` whenever a queue's head message has expired, so expired messages
    /// leave queues without waiting for other traffic (the state machine has no clock).
    pub fn start_ticks(self: &Arc<Self>) {
        let proposer = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(EXPIRY_TICK_EVERY);
            loop {
                ticks.tick().await;
                let Some(proposer) = proposer.upgrade() else {
                    return;
                };
                if !proposer.node.is_leader() {
                    continue; // the leader ticks for everyone
                }
                let due = proposer
                    .node
                    .state_machine
                    .next_expiry_ms()
                    .is_some_and(|at| at <= wall_clock_ms());
                if due {
                    let _ = proposer.propose(Command::Tick).await;
                }
            }
        });
    }

    /// The state may name connections of this node's earlier lives (consumers, unacked
    /// deliveries, exclusive queues): they are gone, so close them. Not only at start: a
    /// node wiped and repaired from its peers (or any node still catching up) learns of its
    /// earlier connections only once the leader's snapshot and log reach it, and if it came
    /// back within `NODE_DOWN_AFTER` no leader took it for down (chaos seed 51: consumers of
    /// a wiped node's earlier life held their messages for ever). So it looks again every
    /// `EARLIER_LIVES_CHECK_EVERY`. In the background: in a cluster this waits for a leader.
    pub fn start_closing_stale_connections(self: &Arc<Self>) {
        let proposer = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(EARLIER_LIVES_CHECK_EVERY);
            loop {
                ticks.tick().await;
                let Some(proposer) = proposer.upgrade() else {
                    return;
                };
                if let Err(e) = proposer.close_stale_connections().await {
                    tracing::warn!(error = %e, "connections of an earlier life stay open for now");
                }
            }
        });
    }

    async fn close_stale_connections(&self) -> anyhow::Result<()> {
        // Ids of this start share the first id's high half (node, incarnation).
        let ours = self.next_conn.load(Ordering::Relaxed) >> 32;
        let me = crate::raft::types::config_node_of(self.node.id);
        let stale: Vec<u64> = self
            .connections_on(&[me])
            .into_iter()
            .filter(|conn| conn >> 32 != ours)
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        tracing::info!(n = stale.len(), "closing connections of an earlier life");
        let commands = stale
            .into_iter()
            .map(|conn| Command::ConnectionClosed { conn })
            .collect();
        match self.submit(commands).await.await {
            Ok(Ok(_)) => Ok(()),
            _ => anyhow::bail!("could not commit the close of stale connections"),
        }
    }
}
