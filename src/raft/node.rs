//! A single Raft node: the segment log, the broker state machine and openraft, wired together.
//!
//! `RaftNode::open` starts openraft on a data directory; a fresh directory initialises a
//! one-member cluster, an existing one resumes from its snapshot file and log. `propose` puts
//! a batch of commands in one log entry and returns their outcomes once the entry is committed
//! and applied, which is the moment a publisher confirm may go out.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::log_store::SegmentLogStore;
use super::network::NoPeers;
use super::state_machine::{decode_outcomes, encode_batch, BrokerStateMachine};
use super::types::{NodeId, Request, TypeConfig};
use crate::broker::command::{Command, Outcome};

pub type Raft = openraft::Raft<TypeConfig, BrokerStateMachine>;

/// How long `open` waits for the node to become leader of its one-member cluster.
const LEADER_WAIT_S: u64 = 10;

pub struct RaftNode {
    pub raft: Raft,
    pub state_machine: BrokerStateMachine,
    pub id: NodeId,
}

impl RaftNode {
    /// Opens (or creates) a node in `dir` and waits until it leads its one-member cluster.
    pub async fn open(dir: &Path, id: NodeId) -> anyhow::Result<RaftNode> {
        let config = openraft::Config {
            cluster_name: "warren".to_string(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
            ..Default::default()
        };
        let config = Arc::new(config.validate().context("validate raft config")?);
        let log_store = SegmentLogStore::open(dir.join("raft-log")).context("open raft log")?;
        let state_machine =
            BrokerStateMachine::open(&dir.join("state")).context("open state machine")?;
        let raft = Raft::new(id, config, NoPeers, log_store, state_machine.clone())
            .await
            .context("start raft")?;
        if !raft.is_initialized().await.context("read raft state")? {
            let members = BTreeMap::from([(id, openraft::BasicNode::default())]);
            raft.initialize(members)
                .await
                .context("initialise one-member cluster")?;
        }
        raft.wait(Some(Duration::from_secs(LEADER_WAIT_S)))
            .current_leader(id, "become leader")
            .await
            .context("wait for leadership")?;
        Ok(RaftNode {
            raft,
            state_machine,
            id,
        })
    }

    /// Commits `commands` as one log entry; returns their outcomes in order.
    pub async fn propose(&self, commands: &[Command]) -> anyhow::Result<Vec<Outcome>> {
        let response = self
            .raft
            .client_write(Request(encode_batch(commands)))
            .await
            .context("commit command batch")?;
        let outcomes = decode_outcomes(&response.data);
        anyhow::ensure!(
            outcomes.len() == commands.len(),
            "state machine answered {} of {} commands",
            outcomes.len(),
            commands.len()
        );
        Ok(outcomes)
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("shut down raft: {e}"))
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
