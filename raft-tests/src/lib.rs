//! Cluster tests over a controlled network (issue 3): whole Warren Raft nodes in one process,
//! each with its own data directory (or none, for a RAM node), over real TCP through the
//! cookie-authenticated cluster transport. [`net::Net`] puts a proxy on every directed link
//! so a test can partition, slow or drop it; [`cluster::Cluster`] runs the nodes on it;
//! [`invariants::check_invariants`] ends every test. docs/raft-tests.md explains the choice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

use warren::broker::command::{Command, Content};
use warren::broker::state::BrokerState;
use warren::raft::types::NodeId;

pub mod cluster;
pub mod invariants;
mod member;
pub mod net;

pub use member::Member;

pub const WAIT: Option<Duration> = Some(Duration::from_secs(20));

pub fn declare() -> Command {
    Command::QueueDeclare {
        name: "q".into(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        arguments: Vec::new(),
        conn: 1,
    }
}

pub fn publish(n: u32) -> Command {
    publish_body(Bytes::from(format!("m{n}")))
}

/// A persistent publish of `body` to queue "q".
pub fn publish_body(body: Bytes) -> Command {
    Command::Publish {
        exchange: String::new(),
        routing_key: "q".into(),
        mandatory: false,
        headers: Vec::new(),
        content: Content {
            properties: Bytes::new(),
            body,
        },
        expiration_ms: None,
    }
}

/// Waits until every node in `members` names the same leader, one of them, and that leader
/// may accept writes; returns it.
pub async fn wait_for_leader(members: &BTreeMap<NodeId, Member>) -> NodeId {
    wait_for_leader_among(&members.iter().map(|(id, m)| (*id, m)).collect()).await
}

/// [`wait_for_leader`] over some of a test's members (e.g. without a node not yet joined).
pub async fn wait_for_leader_among(members: &BTreeMap<NodeId, &Member>) -> NodeId {
    let leader = agreed_leader(members).await;
    // openraft 0.10 refuses writes (ForwardToLeader to no one, reason LeaseExpired) until
    // a quorum has acknowledged the new leader: a vote granted does not count.
    members[&leader]
        .node
        .openraft()
        .wait(WAIT)
        .metrics(|m| m.last_quorum_acked.is_some(), "leader lease")
        .await
        .expect("a quorum acknowledged the leader");
    leader
}

/// Waits until every member names the same leader, one of them that is in the leader
/// state. One node's view is not enough: a leader cut off from the rest may still believe
/// it leads after the others moved on to a later term.
async fn agreed_leader(members: &BTreeMap<NodeId, &Member>) -> NodeId {
    use openraft::async_runtime::WatchReceiver;
    let deadline = tokio::time::Instant::now() + WAIT.expect("a wait");
    loop {
        let views: BTreeSet<Option<NodeId>> = members
            .values()
            .map(|m| m.node.openraft().metrics().borrow_watched().current_leader)
            .collect();
        if let [Some(leader)] = views.into_iter().collect::<Vec<_>>()[..] {
            let leads = members.get(&leader).is_some_and(|m| {
                m.node.openraft().metrics().borrow_watched().state == openraft::ServerState::Leader
            });
            if leads {
                return leader;
            }
        }
        // Several watches at once: poll them rather than await one.
        assert!(
            tokio::time::Instant::now() < deadline,
            "members {:?} agree on no leader",
            members.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every member has applied exactly `index` (nothing else is being proposed) and
/// checks they hold one broker state.
pub async fn assert_converged(members: &BTreeMap<NodeId, Member>, index: u64) -> BrokerState {
    for (id, member) in members {
        member
            .node
            .openraft()
            .wait(WAIT)
            .applied_index(Some(index), format!("node {id} applies {index}"))
            .await
            .expect("applied");
    }
    let mut states = members.iter().map(|(id, m)| (*id, m.broker()));
    let (first_id, first) = states.next().expect("a member");
    for (id, state) in states {
        assert!(
            state == first,
            "node {id} and node {first_id} differ at index {index}"
        );
    }
    first
}
