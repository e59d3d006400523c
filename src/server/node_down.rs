//! Node loss: the leader watches its followers' heartbeat acknowledgements. A member silent
//! for longer than [`NODE_DOWN_AFTER`] is taken as down: the leader commits the close of every
//! connection the state holds for it, so every message checked out to consumers on that node
//! goes back to its queue (redelivered, with its delivery count) and is delivered to consumers
//! elsewhere. A node that comes back starts under a new incarnation, so nothing of its old
//! life is mistaken for the new one.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::proposer::Proposer;
use crate::broker::command::Command;
use crate::limits::NODE_DOWN_CHECK_EVERY;

pub use crate::limits::NODE_DOWN_AFTER;

/// Starts the watcher (it does nothing while this node is not the leader).
pub fn start(proposer: &Arc<Proposer>) {
    let proposer = Arc::downgrade(proposer);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(NODE_DOWN_CHECK_EVERY);
        let mut never_acked = HashMap::new();
        loop {
            ticks.tick().await;
            if !check(&proposer, &mut never_acked).await {
                return;
            }
        }
    });
}

/// One look; false once the proposer is gone. `never_acked` remembers since when a member
/// has not acknowledged any heartbeat of this leader (a node already down at the election).
async fn check(proposer: &Weak<Proposer>, never_acked: &mut HashMap<u64, Instant>) -> bool {
    let Some(proposer) = proposer.upgrade() else {
        return false;
    };
    let node = proposer.node();
    let Some((term, silences)) = node.heartbeat_silences() else {
        never_acked.clear();
        return true;
    };
    let mut down = Vec::new();
    for (id, silence) in silences {
        let silent_for = match silence {
            Some(silence) => {
                never_acked.remove(&id);
                silence
            }
            None => never_acked.entry(id).or_insert_with(Instant::now).elapsed(),
        };
        if silent_for > NODE_DOWN_AFTER {
            down.push(id);
        }
    }
    if down.is_empty() {
        return true;
    }
    let nodes: Vec<u64> = down
        .iter()
        .map(|id| crate::raft::types::config_node_of(*id))
        .collect();
    let conns = proposer.connections_on(&nodes);
    if conns.is_empty() {
        return true;
    }
    tracing::warn!(
        ?down,
        n = conns.len(),
        "members down: returning their consumers' messages"
    );
    // Bound to this leader's term: if it loses leadership before this commits, its
    // proposer may hand the batch to the next leader, whose entry will not apply it.
    let commands = vec![Command::NodeDown { conns, term }];
    let _ = proposer.submit(commands).await.await;
    true
}
