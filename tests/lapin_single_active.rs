//! Issue 16's single active consumer (`x-single-active-consumer`, machine version 4), end
//! to end with lapin on the real binary: one consumer served at a time, the next in order
//! of registration taking over when the active one's connection closes, on one node, and
//! on three nodes when the active one's node (the leader) is killed.

use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Connection;

mod common;
use common::cluster::{wait_machine_version, Cluster};
use common::{connect, next_delivery, publish_numbered, refused, start_server_with_cli, within};

/// The machine version that brought single active consumer.
const QUEUE_FEATURES_MACHINE_VERSION: u16 = 4;
/// The bound on a whole cluster test.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a killed node's consumer may hold its messages: the cluster gives up on the
/// node after `NODE_DOWN_AFTER` (5 s) of silence, then commits its node-down.
const NODE_DOWN_BOUND: Duration = Duration::from_secs(30);

fn sac_args(value: AMQPValue) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-single-active-consumer".into(), value);
    args
}

/// A confirm channel of `conn` on which the single-active-consumer queue `queue` is
/// declared.
async fn declare_sac(conn: &Connection, queue: &str) -> lapin::Channel {
    let channel = conn.create_channel().await.expect("channel");
    let args = sac_args(AMQPValue::Boolean(true));
    let declare = channel.queue_declare(queue, QueueDeclareOptions::default(), args);
    within("queue.declare", declare)
        .await
        .expect("queue.declare");
    let select = channel.confirm_select(Default::default());
    within("confirm.select", select)
        .await
        .expect("confirm.select");
    channel
}

/// A consumer of `queue` on a new channel of `conn` with a prefetch of 10.
async fn consumer_on(conn: &Connection, queue: &str, tag: &str) -> lapin::Consumer {
    let channel = conn.create_channel().await.expect("channel");
    channel
        .basic_qos(10, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let options = BasicConsumeOptions::default();
    let consume = channel.basic_consume(queue, tag, options, FieldTable::default());
    within("basic.consume", consume)
        .await
        .expect("basic.consume")
}

/// The next `n` deliveries of `consumer` as (body, redelivered).
async fn next_n(consumer: &mut lapin::Consumer, n: usize) -> Vec<(String, bool)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let delivery = next_delivery(consumer).await;
        let body = String::from_utf8_lossy(&delivery.data).to_string();
        got.push((body, delivery.redelivered));
    }
    got
}

fn expected(bodies: &[&str], redelivered: bool) -> Vec<(String, bool)> {
    bodies
        .iter()
        .map(|b| (b.to_string(), redelivered))
        .collect()
}

/// On one node: the first consumer gets every message while the second waits; when the
/// first's connection closes, its unacked messages go to the second (redelivered), and
/// the second gets the new ones.
#[tokio::test]
async fn the_next_consumer_takes_over_when_the_active_one_goes() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, QUEUE_FEATURES_MACHINE_VERSION).await;
    let publisher = connect(server.addr).await;
    let ch = declare_sac(&publisher, "sac").await;
    let first_conn = connect(server.addr).await;
    let second_conn = connect(server.addr).await;
    let mut first = consumer_on(&first_conn, "sac", "first").await;
    let mut second = consumer_on(&second_conn, "sac", "second").await;

    publish_numbered(&ch, "sac", 1..=3).await;
    assert_eq!(
        next_n(&mut first, 3).await,
        expected(&["m1", "m2", "m3"], false)
    );

    tracing::info!("--- the active consumer's connection closes: the second takes over");
    first_conn.close(200, "bye").await.expect("close");
    // Its first delivery is a redelivered m1: it got nothing while the first was active.
    let given_back = next_n(&mut second, 3).await;
    assert_eq!(given_back, expected(&["m1", "m2", "m3"], true));
    publish_numbered(&ch, "sac", 4..=4).await;
    assert_eq!(next_n(&mut second, 1).await, expected(&["m4"], false));
    second_conn.close(200, "bye").await.expect("close");
    publisher.close(200, "bye").await.expect("close");
}

/// x-single-active-consumer must be a boolean: RabbitMQ's 406 otherwise.
#[tokio::test]
async fn a_non_boolean_single_active_consumer_is_refused() {
    let server = start_server_with_cli();
    wait_machine_version(&server.config, QUEUE_FEATURES_MACHINE_VERSION).await;
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let args = sac_args(AMQPValue::LongString("yes".into()));
    let declare = channel.queue_declare("sac-bad", QueueDeclareOptions::default(), args);
    let (code, text) = refused("queue.declare", declare).await;
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue 'sac-bad' in \
         vhost '/': {unacceptable_type,longstr}"
    );
}

/// On three nodes: the active consumer is on the leader, the next one on a follower. The
/// leader is killed: once the cluster gives up on that node, the follower's consumer takes
/// over, with the messages the dead one held (redelivered) and every new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_active_consumer_moves_when_its_node_dies() {
    let test = async {
        let mut cluster = Cluster::start().await;
        let leader = cluster.wait_for_leader().await;
        cluster
            .wait_machine_version_all(QUEUE_FEATURES_MACHINE_VERSION, TEST_TIMEOUT)
            .await;
        let others = cluster.others(leader);
        let (consumer_node, publisher_node) = (others[0], others[1]);

        tracing::info!("--- the active consumer on the leader, the next on a follower");
        let publisher = connect(cluster.amqp(publisher_node)).await;
        let ch = declare_sac(&publisher, "sac-ha").await;
        let active_conn = connect(cluster.amqp(leader)).await;
        let mut active = consumer_on(&active_conn, "sac-ha", "active").await;
        let next_conn = connect(cluster.amqp(consumer_node)).await;
        let mut next = consumer_on(&next_conn, "sac-ha", "next").await;
        publish_numbered(&ch, "sac-ha", 1..=2).await;
        assert_eq!(next_n(&mut active, 2).await, expected(&["m1", "m2"], false));

        tracing::info!("--- kill the leader, wait for a new one");
        cluster.kill(leader);
        let new_leader = cluster.wait_for_leader().await;
        assert_ne!(new_leader, leader);

        tracing::info!("--- the follower's consumer takes over what the dead one held");
        let first = tokio::time::timeout(NODE_DOWN_BOUND, next_delivery_unbounded(&mut next))
            .await
            .expect("the next consumer took over within the node-down bound");
        assert_eq!(first, ("m1".to_string(), true));
        assert_eq!(next_n(&mut next, 1).await, expected(&["m2"], true));
        tracing::info!("--- and every new message");
        publish_numbered(&ch, "sac-ha", 3..=3).await;
        assert_eq!(next_n(&mut next, 1).await, expected(&["m3"], false));
        next_conn.close(200, "bye").await.expect("close");
        publisher.close(200, "bye").await.expect("close");
        drop(active_conn);
    };
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}

/// The consumer's next delivery as (body, redelivered), however long it takes (the caller
/// bounds it; [`next_delivery`] allows only [`EVENT_TIMEOUT`]).
async fn next_delivery_unbounded(consumer: &mut lapin::Consumer) -> (String, bool) {
    use futures::StreamExt;
    let delivery = consumer
        .next()
        .await
        .expect("consumer open")
        .expect("delivery");
    (
        String::from_utf8_lossy(&delivery.data).to_string(),
        delivery.redelivered,
    )
}
