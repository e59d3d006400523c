//! A real single-node Raft on disk: commands commit, and a restart (log replay, and snapshot
//! + replay) rebuilds the same broker state.

use bytes::Bytes;

use openraft::async_runtime::WatchReceiver;

use super::*;
use crate::broker::command::{Content, Reply};

fn publish(n: u32) -> Command {
    Command::Publish {
        exchange: String::new(),
        routing_key: "q".into(),
        mandatory: false,
        headers: Vec::new(),
        content: Content {
            properties: Bytes::new(),
            body: Bytes::from(format!("m{n}")),
        },
        expiration_ms: None,
    }
}

fn declare() -> Command {
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

#[tokio::test]
async fn committed_commands_survive_a_restart_with_and_without_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    tracing::info!("--- first life: declare and publish in batches");
    let node = RaftNode::open(dir.path(), 1).await.expect("open");
    let replies = node
        .propose(&[declare(), publish(1), publish(2)])
        .await
        .expect("propose");
    assert_eq!(
        replies[2],
        Ok(Reply::Published {
            msg_id: 2,
            n_queues: 1,
            rejected_by: 0
        })
    );
    let before = node.state_machine.with_broker(|b| b.clone());
    let applied = node.raft.metrics().borrow_watched().last_applied;
    node.shutdown().await.expect("shutdown");

    tracing::info!("--- second life: replay the log only");
    let node = RaftNode::open(dir.path(), 1).await.expect("reopen");
    // openraft applies the committed log after `open` returns: wait for it.
    wait_applied(&node, applied).await;
    let replayed = node.state_machine.with_broker(|b| b.clone());
    assert_eq!(replayed, before);
    node.raft
        .trigger()
        .snapshot()
        .await
        .expect("trigger snapshot");
    let last_applied = node
        .raft
        .metrics()
        .borrow_watched()
        .last_applied
        .expect("applied");
    // The new term's blank entry may be applied before the build copies the state: the
    // snapshot is at `last_applied` or later.
    node.raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last_applied.index),
            "snapshot built",
        )
        .await
        .expect("snapshot");
    node.propose(&[publish(3)])
        .await
        .expect("propose after snapshot");
    let before = node.state_machine.with_broker(|b| b.clone());
    let applied = node.raft.metrics().borrow_watched().last_applied;
    node.shutdown().await.expect("shutdown");

    tracing::info!("--- third life: snapshot file plus the log after it");
    let node = RaftNode::open(dir.path(), 1).await.expect("reopen");
    wait_applied(&node, applied).await;
    assert_eq!(node.state_machine.with_broker(|b| b.clone()), before);
    assert_eq!(before.vhosts["/"].queues["q"].queue.n_ready(), 3);
    node.shutdown().await.expect("shutdown");
}

/// Waits until the restarted node has applied as far as before its shutdown.
async fn wait_applied(node: &RaftNode, applied: Option<crate::raft::types::LogId>) {
    let index = applied.map(|id| id.index());
    node.raft
        .wait(Some(Duration::from_secs(10)))
        .applied_index_at_least(index, "replayed the committed log")
        .await
        .expect("replay");
}

/// Waits until the node's Raft core has stopped by itself.
async fn wait_stopped(node: &RaftNode) {
    let stopped = node
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.state == openraft::ServerState::Shutdown || m.running_state.is_err(),
            "raft core stops",
        )
        .await;
    match stopped {
        Ok(_) | Err(openraft::metrics::WaitError::ShuttingDown) => {}
        Err(e) => panic!("the node went on: {e}"),
    }
}

/// An entry of a machine version past this build's stops the node: applied as nothing, it
/// would leave this node's state different from its peers' with no error.
#[tokio::test]
async fn an_entry_this_build_cannot_read_stops_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RaftNode::open(dir.path(), 1).await.expect("open");
    node.propose(&[declare()]).await.expect("a readable entry");
    let before = node.state_machine.with_broker(|b| b.clone());
    let batch = Batch {
        time_ms: 1,
        commands: vec![publish(1)],
        origin: None,
    };
    let mut unreadable = batch.to_request();
    let newer = super::super::envelope::MACHINE_VERSION + 1;
    unreadable.0[1..3].copy_from_slice(&newer.to_le_bytes());
    let answer = node.raft.client_write(unreadable).await;
    assert!(answer.is_err(), "the entry was answered: {answer:?}");
    wait_stopped(&node).await;
    let after = node.state_machine.with_broker(|b| b.clone());
    assert!(after == before, "the unreadable entry changed the state");
}

/// A cluster that moves to a machine version this build does not run stops this node.
#[tokio::test]
async fn a_machine_version_past_this_build_stops_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RaftNode::open(dir.path(), 1).await.expect("open");
    let current = super::super::envelope::MACHINE_VERSION;
    node.propose(&[Command::SetMachineVersion { version: current }])
        .await
        .expect("the version this build runs");
    assert_eq!(node.state_machine.machine_version(), current);
    let newer = Command::SetMachineVersion {
        version: current + 1,
    };
    assert!(node.propose(&[newer]).await.is_err());
    wait_stopped(&node).await;
    assert_eq!(node.state_machine.machine_version(), current);
}
