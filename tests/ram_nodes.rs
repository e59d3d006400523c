//! RAM nodes as real processes: a RAM node serves clients like any other, and every start of
//! one is a new Raft member (a new id that joins as a learner, catches up, and replaces the
//! dead one as a voter), never the voter it was.

use std::time::Duration;

use tokio::sync::watch;

mod common;

use common::clients::{consume, publish_while, wait_all_seen, Seen};
use common::cluster::{Cluster, ClusterView};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const BEFORE: &str = "ram-before";
const AFTER: &str = "ram-after";

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}

/// The leader's voters (Raft ids) and node 3's own Raft id and role.
fn voters(view: &ClusterView) -> Vec<u64> {
    view.nodes
        .iter()
        .filter_map(|r| r.status.as_ref())
        .find(|s| s.raft_state == "leader")
        .map_or(Vec::new(), |s| s.voters.iter().map(|v| v.0).collect())
}

/// Node 3 is a RAM node: it is a voter under a RAM Raft id, takes publishes, and after a
/// kill -9 and restart comes back under a new id that replaced the old one. With disk node 1
/// then killed, node 2 and the new RAM start commit together, and every message confirmed
/// before and after is consumed through the RAM node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_ram_node_rejoins_under_a_new_id() {
    bounded(async {
        let mut cluster = Cluster::start_roles(&["disk", "disk", "ram"]).await;
        let view = cluster
            .wait_status("the RAM node a voter", Duration::from_secs(30), |v| {
                voters(v).len() == 3
            })
            .await;
        let ram = view.row(3).status.clone().expect("node 3 answers");
        assert_eq!(ram.role, "ram");
        let first_id = ram.node_id;
        assert_ne!(first_id, 3, "a RAM node's Raft id is not its node id");
        assert!(voters(&view).contains(&first_id), "{view:?}");

        tracing::info!("--- publish through the RAM node");
        let before = publish_while(&[cluster.amqp(3)], BEFORE, |p| p.sent < 500).await;
        assert_eq!(before.confirmed.len(), 500);

        tracing::info!("--- kill -9 and restart the RAM node: a new id replaces the old");
        cluster.kill(3);
        cluster.restart(3);
        // The swap is one joint change: while it runs the voters are the old and the new
        // start together, so wait for its end (the dead start gone), not just the new id.
        let view = cluster
            .wait_status(
                "the new RAM start a voter in place of the dead one",
                Duration::from_secs(30),
                |v| {
                    let id = v.row(3).status.as_ref().map(|s| s.node_id);
                    let voters = voters(v);
                    id.is_some_and(|id| id != first_id && voters.contains(&id))
                        && !voters.contains(&first_id)
                },
            )
            .await;
        assert_eq!(voters(&view).len(), 3, "{view:?}");

        tracing::info!("--- disk node 1 dies: node 2 and the new RAM start are the quorum");
        cluster.kill(1);
        let after = publish_while(&[cluster.amqp(3)], AFTER, |p| p.sent < 500).await;
        assert_eq!(after.confirmed.len(), 500);

        tracing::info!("--- everything confirmed is consumed through the RAM node");
        for (queue, published) in [(BEFORE, before), (AFTER, after)] {
            let (seen_tx, seen) = watch::channel(Seen::default());
            let consumer = tokio::spawn(consume(vec![cluster.amqp(3)], queue, seen_tx));
            wait_all_seen(&published.confirmed, &seen, Duration::from_secs(30)).await;
            consumer.abort();
        }
    })
    .await;
}

/// A consumer on the RAM node holds ten unacked messages when the node is killed and at once
/// restarted. The new start replaces the dead one in the membership before the leader could
/// take it for down (5 s), and it starts empty, so neither of them closed the dead start's
/// connections once: its consumer stayed in the state for ever with the ten messages
/// checked out. Each node now closes the connections of its earlier lives whenever its state
/// shows any, so the ten come back and a consumer on node 1 gets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_ram_node_gives_back_what_its_dead_start_held() {
    use futures::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicQosOptions};

    const HELD: &str = "ram-held";
    bounded(async {
        let mut cluster = Cluster::start_roles(&["disk", "disk", "ram"]).await;
        cluster
            .wait_status("the RAM node a voter", Duration::from_secs(30), |v| {
                voters(v).len() == 3
            })
            .await;
        let published = publish_while(&[cluster.amqp(1)], HELD, |p| p.sent < 50).await;
        // Publishes in flight when it stops still count.
        assert!(
            published.confirmed.len() >= 50,
            "{}",
            published.confirmed.len()
        );

        tracing::info!("--- a consumer on the RAM node takes ten and acks none");
        let (_conn, channel) = common::clients::open_channel(&[cluster.amqp(3)], HELD).await;
        channel
            .basic_qos(10, BasicQosOptions::default())
            .await
            .expect("qos");
        let options = BasicConsumeOptions::default();
        let table = lapin::types::FieldTable::default();
        let mut holder = channel
            .basic_consume(HELD, "holder", options, table)
            .await
            .expect("consume");
        for _ in 0..10 {
            let delivery = holder.next().await.expect("a delivery");
            delivery.expect("delivered");
        }

        tracing::info!("--- kill -9 the RAM node and restart it at once");
        cluster.kill(3);
        cluster.restart(3);

        tracing::info!("--- all of them reach a consumer on node 1, the ten held included");
        let (seen_tx, seen) = watch::channel(Seen::default());
        let consumer = tokio::spawn(consume(vec![cluster.amqp(1)], HELD, seen_tx));
        wait_all_seen(&published.confirmed, &seen, Duration::from_secs(40)).await;
        consumer.abort();
    })
    .await;
}
