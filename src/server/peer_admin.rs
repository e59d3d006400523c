//! The operator's requests a node answers its peers' transport with (`warren add_user`,
//! `list_queues`, `import_definitions`, ...): changes go through this node's proposer, which
//! forwards them to the leader as one entry, reads come from what this node applied.
//!
//! The peer server starts before the proposer exists (Raft needs it to elect a leader), so
//! the handler reaches the proposer through a slot the node fills once it runs
//! ([`Proposer::serve_admin`]); until then it answers that the node is starting.

use std::sync::{Arc, OnceLock, Weak};

use super::peer::NodeHandler;
use super::proposer::Proposer;
use crate::broker::command::Command;
use crate::definitions::applied::Applied;
use crate::limits::{
    ADMIN_COMMIT_TIMEOUT, ADMIN_SPREAD_WAIT, ADMIN_UPGRADE_WAIT, DEFINITIONS_CATCH_UP_MAX,
};
use crate::raft::protocol::PeerResponse;

/// Where the peer handler finds the node's proposer once it runs.
pub type AdminSlot = OnceLock<Weak<Proposer>>;

impl NodeHandler {
    fn proposer(&self) -> Option<Arc<Proposer>> {
        self.admin.get().and_then(Weak::upgrade)
    }

    /// Submits `commands` as one entry and answers their replies.
    pub(super) async fn admin(&self, commands: Vec<Command>) -> PeerResponse {
        let Some(proposer) = self.proposer() else {
            return PeerResponse::Error("the node is starting; ask again".to_string());
        };
        // The cookie admits any peer, but this door is for the operator's commands only:
        // queue traffic has its own path, with its sessions and ordering.
        if let Some(other) = commands.iter().find(|c| !c.is_cluster_wide()) {
            let name = other.name();
            return PeerResponse::Error(format!("not an administration command: {name}"));
        }
        let names: Vec<&str> = commands.iter().map(Command::name).collect();
        tracing::info!(?names, "operator change submitted");
        // A fresh cluster runs the first state-machine version until its leader moves it up
        // (`machine_upgrade.rs`); an operator's first command must not lose that race.
        let needed = commands.iter().map(Command::machine_version_min).max();
        let state_machine = &self.node.state_machine;
        if let Some(needed) = needed {
            if !state_machine
                .machine_version_reaches(needed, ADMIN_UPGRADE_WAIT)
                .await
            {
                tracing::debug!(
                    needed,
                    "operator change submitted below its machine version"
                );
            }
        }
        let receiver = proposer.submit(commands).await;
        match tokio::time::timeout(ADMIN_COMMIT_TIMEOUT, receiver).await {
            Ok(Ok(Ok(replies))) => {
                // Answer once every member applied it, as RabbitMQ's metadata changes are
                // on every running node when the command returns: a password changed here
                // must not still log in on another node a moment later.
                let missing = proposer.spread(ADMIN_SPREAD_WAIT).await;
                if !missing.is_empty() {
                    tracing::info!(
                        ?missing,
                        "operator change committed; members not caught up yet"
                    );
                }
                PeerResponse::Replies(replies)
            }
            Ok(_) => PeerResponse::Error(
                "outcome unknown: the entry may or may not have committed".to_string(),
            ),
            Err(_) => PeerResponse::Error(format!(
                "outcome unknown: not committed within {ADMIN_COMMIT_TIMEOUT:?} \
                 (no leader?); it may still commit"
            )),
        }
    }

    /// What this node applied, after catching up with the leader when it can.
    pub(super) async fn definitions(&self) -> PeerResponse {
        if let Some(proposer) = self.proposer() {
            if !proposer.catch_up(DEFINITIONS_CATCH_UP_MAX).await {
                tracing::debug!("definitions read without catching up (no leader answered)");
            }
        }
        let applied = self.node.state_machine.with_broker(Applied::of);
        PeerResponse::Definitions(Box::new(applied))
    }
}
