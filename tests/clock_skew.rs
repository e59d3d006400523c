//! Nodes whose wall clocks disagree serve clients as if they agreed: nothing compares the
//! clocks of two machines (issue 13). Before, a node compared its own clock with the stamp
//! the leader wrote on each entry and, 10 s ahead of the leader, took every entry for a late
//! one: it closed its healthy consumers with 320 over and over.
//!
//! The skew is real: two of the three `warren server` processes run under libfaketime
//! (Debian's `faketime`), one 10 s ahead and one 10 s behind.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::BasicAckOptions;

mod common;

use common::clients::seq_of;
use common::cluster::Cluster;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const SKEW_S: i64 = 10;
const N: u32 = 300;
const QUEUE: &str = "skew-q";

/// The environment that runs a process with its wall clock `offset_s` seconds off. Only the
/// wall clock: the monotonic clock is left alone, as a real skewed machine's would be.
fn skewed(offset_s: i64) -> Vec<(String, String)> {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing: apt-get install faketime (.ci/run does)"
    );
    [
        ("LD_PRELOAD", LIBFAKETIME.to_string()),
        ("FAKETIME", format!("{offset_s:+}s")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What `date +%s` says under `env`, less the real clock: proves libfaketime takes effect.
fn measured_skew_s(env: &[(String, String)]) -> i64 {
    let out = std::process::Command::new("date")
        .arg("+%s")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run date");
    let faked: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("date +%s prints a number");
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after the epoch")
        .as_secs() as i64;
    faked - real
}

/// Three nodes, one 10 s behind and one 10 s ahead, consumers on both skewed ones and a
/// confirming publisher: every message is delivered, both consumers get some, and neither
/// connection is closed by the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_skewed_clocks_deliver_everything_and_close_nothing() {
    tokio::time::timeout(Duration::from_secs(90), async {
        // Node 1, behind, initialises the cluster and usually leads: the node ahead of the
        // leader is the one a comparison of clocks fenced.
        let envs = vec![skewed(-SKEW_S), skewed(SKEW_S), Vec::new()];
        for (env, want) in envs.iter().zip([-SKEW_S, SKEW_S]) {
            let got = measured_skew_s(env);
            assert!(
                (got - want).abs() <= 1,
                "libfaketime gave {got} s, not {want} s"
            );
        }
        let cluster = Cluster::start_with_env(&["disk"; 3], &envs).await;
        let leader = cluster.wait_for_leader().await;
        tracing::info!("--- consumers on the node behind (1) and the node ahead (2)");
        let (_conn_1, mut behind) = consume_on(&cluster, 1, "behind").await;
        let (_conn_2, mut ahead) = consume_on(&cluster, 2, "ahead").await;

        tracing::info!("--- a confirming publisher on the leader, node {leader}");
        common::clients::publish_n(cluster.amqp(leader), QUEUE, N).await;

        tracing::info!("--- every message arrives, and no connection is closed");
        let mut seen = BTreeSet::new();
        let (mut n_ahead, mut n_behind) = (0u32, 0u32);
        while seen.len() < N as usize {
            let (from, next) = tokio::select! {
                next = ahead.next() => ("ahead", next),
                next = behind.next() => ("behind", next),
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => panic!("the broker closed the {from} consumer: {e:?}"),
                None => panic!("the {from} consumer ended"),
            };
            seen.insert(seq_of(&delivery.data));
            *if from == "ahead" {
                &mut n_ahead
            } else {
                &mut n_behind
            } += 1;
            delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("basic.ack");
        }
        assert_eq!(seen, (0..N).collect::<BTreeSet<u32>>());
        assert!(
            n_ahead > 0 && n_behind > 0,
            "{n_ahead} ahead, {n_behind} behind"
        );
    })
    .await
    .expect("the test took longer than 90 s");
}

async fn consume_on(cluster: &Cluster, id: u64, tag: &str) -> (lapin::Connection, lapin::Consumer) {
    common::clients::consumer_on(cluster.amqp(id), QUEUE, tag, 20).await
}
