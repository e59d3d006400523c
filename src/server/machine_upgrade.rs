//! Machine versions move forward by a log entry (rabbit_fifo's): the leader proposes
//! `SetMachineVersion` once every member of the cluster, voters and learners, runs a build
//! that applies the new version (each says so in its status). Until then every entry is
//! encoded at the version the cluster runs, so a rolling upgrade never hands a member a
//! command it cannot read (`raft/envelope.rs`).

use std::sync::{Arc, Weak};

use super::proposer::Proposer;
use crate::broker::command::Command;
use crate::cluster::PeerAuth;
use crate::limits::MACHINE_UPGRADE_CHECK_EVERY;
use crate::raft::envelope::MACHINE_VERSION;
use crate::raft::peer_network::call_peer;
use crate::raft::protocol::{PeerRequest, PeerResponse};

/// Starts the check (it does nothing while this node does not lead).
pub fn start(proposer: &Arc<Proposer>, auth: PeerAuth) {
    let proposer = Arc::downgrade(proposer);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(MACHINE_UPGRADE_CHECK_EVERY);
        loop {
            ticks.tick().await;
            if !check(&proposer, &auth).await {
                return;
            }
        }
    });
}

/// The version to move the cluster to: the newest every member applies, if newer than the
/// cluster's; nothing while any member did not answer.
pub fn upgrade_target(cluster: u16, members_max: &[Option<u16>]) -> Option<u16> {
    let lowest = members_max.iter().copied().min()??;
    (lowest > cluster).then_some(lowest)
}

/// One look; false once the proposer is gone.
async fn check(proposer: &Weak<Proposer>, auth: &PeerAuth) -> bool {
    let Some(proposer) = proposer.upgrade() else {
        return false;
    };
    let node = proposer.node();
    let cluster = node.state_machine.machine_version();
    if !node.is_leader() || cluster >= MACHINE_VERSION {
        return true;
    }
    let members = node.members();
    let members: Vec<(u64, String)> = members.all().map(|(id, a)| (*id, a.clone())).collect();
    let mut members_max = Vec::with_capacity(members.len());
    for (id, addr) in members {
        if id == node.id {
            members_max.push(Some(MACHINE_VERSION));
            continue;
        }
        let answer = call_peer(&addr, id, node.id, auth, PeerRequest::Status).await;
        members_max.push(match answer {
            Ok(PeerResponse::Status(status)) => Some(status.machine_version_max),
            _ => None,
        });
    }
    if let Some(version) = upgrade_target(cluster, &members_max) {
        tracing::info!(
            from = cluster,
            to = version,
            "every member runs it: moving up"
        );
        let _ = proposer
            .propose(Command::SetMachineVersion { version })
            .await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::upgrade_target;

    #[test]
    fn the_cluster_moves_to_the_newest_version_every_member_applies() {
        assert_eq!(upgrade_target(1, &[Some(3), Some(2), Some(3)]), Some(2));
        assert_eq!(upgrade_target(2, &[Some(3), Some(2)]), None, "one lags");
        assert_eq!(
            upgrade_target(1, &[Some(3), None]),
            None,
            "one did not answer"
        );
        assert_eq!(
            upgrade_target(1, &[Some(1), Some(1)]),
            None,
            "nothing newer"
        );
    }
}
