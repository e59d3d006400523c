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
/// `definitions` are the commands of the node's `load_definitions` file, imported in the
/// same entry as the default user: once in the cluster's life, by whichever leader writes it.
pub fn start(
    proposer: &Arc<Proposer>,
    auth: Option<PeerAuth>,
    config: &NodeConfig,
    definitions: Option<Vec<Command>>,
) {
    let proposer = Arc::downgrade(proposer);
    let default_user = FirstAccess {
        user: config.default_user.clone(),
        pass: config.default_pass.clone(),
        definitions,
    };
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

/// What the cluster's first leader writes: the default user, and the definitions file.
struct FirstAccess {
    user: String,
    pass: Secret,
    definitions: Option<Vec<Command>>,
}

/// Writes the configured default user once the cluster runs a version that has users
/// (`Command::InitAccess`), with the definitions file in the same entry, so both happen once
/// and together (a retry after an unknown outcome finds `initialized` and does neither);
/// whether that is still to do; `None` once the proposer is gone.
async fn init_access(proposer: &Weak<Proposer>, first: &FirstAccess) -> Option<bool> {
    let FirstAccess { user, pass, .. } = first;
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
    let mut commands = vec![Command::InitAccess {
        user: user.clone(),
        password,
    }];
    if let Some(definitions) = &first.definitions {
        commands.push(Command::ImportDefinitions {
            commands: definitions.clone(),
        });
    }
    let Ok(Ok(replies)) = proposer.submit(commands).await.await else {
        tracing::info!(user, "default user: outcome unknown; trying again");
        return Some(true);
    };
    let mut replies = replies.into_iter();
    let done = replies.next().is_some_and(|r| r.is_ok());
    tracing::info!(user, ok = done, "default user written");
    match replies.next() {
        Some(Ok(_)) => tracing::info!("load_definitions imported"),
        // Not retried: the state refused it and would again; the operator fixes the file and
        // imports it with `warren import_definitions`.
        Some(Err(refusal)) => tracing::error!(
            reason = %refusal.reply_text,
            "load_definitions refused: nothing of it was imported"
        ),
        None => {}
    }
    Some(!done)
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
