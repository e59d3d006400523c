//! Machine versions move forward by a log entry (rabbit_fifo's): the leader proposes
//! `SetMachineVersion` once every member of the cluster, voters and learners, runs a build
//! that applies the new version (each says so in its status). Until then every entry is
//! encoded at the version the cluster runs, so a rolling upgrade never hands a member a
//! command it cannot read (`raft/envelope.rs`).

use std::sync::{Arc, Weak};

use super::access_view::hash_password;
use super::proposer::Proposer;
use crate::broker::command::Command;
use crate::cluster::PeerAuth;
use crate::config::{NodeConfig, Secret};
use crate::limits::{MACHINE_UPGRADE_CHECK_EVERY, MACHINE_UPGRADE_RETRY};
use crate::raft::envelope::MACHINE_VERSION;
use crate::raft::peer_network::call_peer;
use crate::raft::protocol::{PeerRequest, PeerResponse};

/// Starts the check (it does nothing while this node does not lead). It looks often while
/// there is work (a fresh cluster moves up within a second of electing a leader), then
/// rarely. `auth` is `None` on a single node, which has no one to ask.
pub fn start(proposer: &Arc<Proposer>, auth: Option<PeerAuth>, config: &NodeConfig) {
    let proposer = Arc::downgrade(proposer);
    let default_user = (config.default_user.clone(), config.default_pass.clone());
    tokio::spawn(async move {
        loop {
            let Some(pending) = check(&proposer, auth.as_ref()).await else {
                return;
            };
            let Some(pending) = init_access(&proposer, &default_user)
                .await
                .map(|p| p || pending)
            else {
                return;
            };
            let pause = match pending {
                true => MACHINE_UPGRADE_RETRY,
                false => MACHINE_UPGRADE_CHECK_EVERY,
            };
            tokio::time::sleep(pause).await;
        }
    });
}

/// Writes the configured default user once the cluster runs a version that has users
/// (`Command::InitAccess`); whether that is still to do; `None` once the proposer is gone.
async fn init_access(proposer: &Weak<Proposer>, (user, pass): &(String, Secret)) -> Option<bool> {
    let proposer = proposer.upgrade()?;
    let node = proposer.node();
    let version = node.state_machine.machine_version();
    let initialized = node.state_machine.with_broker(|b| b.access.initialized);
    if initialized || version < Command::ACCESS_MACHINE_VERSION {
        return Some(!initialized);
    }
    if !node.is_leader() {
        return Some(true);
    }
    let password = hash_password(pass.as_bytes());
    let command = Command::InitAccess {
        user: user.clone(),
        password,
    };
    let done = proposer.propose(command).await;
    tracing::info!(user, ok = done.is_ok(), "default user written");
    Some(done.is_err())
}

/// The version to move the cluster to: the newest every member applies, if newer than the
/// cluster's; nothing while any member did not answer.
pub fn upgrade_target(cluster: u16, members_max: &[Option<u16>]) -> Option<u16> {
    let lowest = members_max.iter().copied().min()??;
    (lowest > cluster).then_some(lowest)
}

/// One look; whether the cluster still has to move up; `None` once the proposer is gone.
async fn check(proposer: &Weak<Proposer>, auth: Option<&PeerAuth>) -> Option<bool> {
    let proposer = proposer.upgrade()?;
    let node = proposer.node();
    let cluster = node.state_machine.machine_version();
    if cluster >= MACHINE_VERSION {
        return Some(false);
    }
    if !node.is_leader() {
        return Some(true);
    }
    let members = node.members();
    let members: Vec<(u64, String)> = members.all().map(|(id, a)| (*id, a.clone())).collect();
    let mut members_max = Vec::with_capacity(members.len());
    for (id, addr) in members {
        if id == node.id {
            members_max.push(Some(MACHINE_VERSION));
            continue;
        }
        let Some(auth) = auth else {
            members_max.push(None);
            continue;
        };
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
    Some(true)
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
