//! The cluster's kill -9 durability scenario, shared by the plain and the TLS cluster tests:
//! publish with confirms through a follower, consume through the other follower, kill -9 the
//! leader mid-stream; the clients reconnect and republish what was not confirmed, and every
//! confirmed message is delivered (duplicates allowed), first deliveries in publish order
//! (chaos finding 1: batches in flight at the kill are resent to the new leader in order,
//! and applied once).

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::clients::{consume, publish_while, wait_all_seen, Seen};
use super::cluster::Cluster;

const QUEUE: &str = "survive-leader-kill";
const N_MESSAGES: u32 = 3_000;
/// The leader is killed once this many publishes are confirmed.
const KILL_AFTER_CONFIRMS: usize = 1_500;

/// Runs the scenario on a started `cluster`; panics with what went wrong.
pub async fn confirmed_messages_survive_a_leader_kill(cluster: &mut Cluster) {
    let started = Instant::now();
    let leader = cluster.wait_for_leader().await;
    let others = cluster.others(leader);
    let (publisher_node, consumer_node) = (others[0], others[1]);
    let publisher_addrs = [cluster.amqp(publisher_node), cluster.amqp(consumer_node)];
    let consumer_addrs = vec![cluster.amqp(consumer_node), cluster.amqp(publisher_node)];

    tracing::info!("--- consume on one follower, publish with confirms on the other");
    let (seen_tx, seen) = watch::channel(Seen::default());
    let mut consumer = tokio::spawn(consume(consumer_addrs, QUEUE, seen_tx));
    let mut in_flight_at_kill = None;
    let published = publish_while(&publisher_addrs, QUEUE, |p| {
        if in_flight_at_kill.is_none() && p.confirmed >= KILL_AFTER_CONFIRMS {
            in_flight_at_kill = Some(p.in_flight);
            cluster.kill(leader);
        }
        p.sent < N_MESSAGES
    })
    .await;
    assert_eq!(published.confirmed.len(), N_MESSAGES as usize);
    let in_flight_at_kill = in_flight_at_kill.expect("the leader was killed");
    assert!(
        in_flight_at_kill > 0,
        "no publish was in flight when the leader was killed"
    );

    tracing::info!("--- every confirmed message reaches the consumer");
    let confirmed = &published.confirmed;
    tokio::select! {
        () = wait_all_seen(confirmed, &seen, Duration::from_secs(30)) => {}
        ended = &mut consumer => panic!("the consumer stopped: {ended:?}"),
    }
    consumer.abort();
    let seen = seen.borrow().clone();
    assert!(
        seen.inversions.is_empty(),
        "first deliveries out of publish order (higher, lower): {:?}",
        seen.inversions
    );
    let n_duplicates: u32 = seen.counts.values().map(|n| n - 1).sum();
    eprintln!(
        "leader {leader} killed with {in_flight_at_kill} publishes in flight; {} confirmed, \
         {} nacks, {} publisher reconnects, {} deliveries, {n_duplicates} duplicates, {:?}",
        confirmed.len(),
        published.n_nacks,
        published.n_reconnects,
        seen.counts.values().sum::<u32>(),
        started.elapsed()
    );
}
