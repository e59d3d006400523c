//! `warren-chaos run`: the whole run against the cluster chaos/run started. Phases: wait for
//! the cluster, start poller, watchdog and workload, faults until the duration is up, final
//! heal, wait for one leader and equal applied indexes, stop the workload, drain, digests,
//! then the checker's verdict.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::checker::Verdict;
use crate::history::{Event, History};
use crate::workload::{self, Workload, WorkloadConfig};

use super::args::RunArgs;
use super::cluster::{Cluster, HAPROXY_URI};
use super::nemesis::Fault;
use super::rng::Rng;
use super::schedule::{self, Schedule};
use super::{heal, poller, status, verdict, watchdog};

/// How long a fresh cluster may take to elect a leader and answer on every node.
const READY_WAIT: Duration = Duration::from_secs(60);
/// CHECKER.md: after the final heal, wait at most this for one leader and equal indexes.
const CONVERGE_WAIT: Duration = Duration::from_secs(30);

pub async fn run(args: RunArgs) -> anyhow::Result<Verdict> {
    let mut faults = Fault::parse_list(&args.nemesis)?;
    let cluster = Arc::new(Cluster::load(&args.run_dir, &args.out)?);
    if cluster.of_kind(true).is_empty() {
        // `ci` and `all` list it; a cluster of disk nodes has nothing to restart empty.
        faults.retain(|&f| f != Fault::RamRestart);
    }
    anyhow::ensure!(
        cluster.nodes.len() == args.nodes,
        "--nodes {} but the run directory holds {} nodes",
        args.nodes,
        cluster.nodes.len()
    );
    let history = History::create(&args.out.join("history.jsonl"))?;
    println!("--- wait for the cluster: one leader, every node answering");
    let (_, ready) = status::wait_converged(&cluster, READY_WAIT).await;
    anyhow::ensure!(ready, "the cluster did not come up within {READY_WAIT:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let poller = poller::spawn(cluster.clone(), history.clone(), stop.clone());
    let watchdog = watchdog::spawn(cluster.clone(), history.clone(), stop.clone());
    let cfg = workload_config(&args, &cluster);
    println!("--- workload over {:?}", cfg.uris);
    let workload = Workload::start(cfg.clone(), history.clone())
        .await
        .context("start the workload")?;

    println!("--- faults for {} s: {:?}", args.duration, args.nemesis);
    let plan = Schedule {
        faults,
        duration: Duration::from_secs(args.duration),
        quiet: args.quiet_s,
        hold: args.fault_s,
    };
    let mut rng = Rng::new(args.seed);
    schedule::run(&cluster, &history, &mut rng, &plan).await?;

    println!("--- final heal; wait for one leader and equal applied indexes");
    heal::final_heal(&cluster, &history).await?;
    let (_, converged) = status::wait_converged(&cluster, CONVERGE_WAIT).await;
    if !converged {
        cluster.finding(format!(
            "no single leader with equal applied indexes within {CONVERGE_WAIT:?} of the final heal"
        ));
    }
    let totals = workload.stop().await.context("stop the workload")?;
    println!("--- drain (at most {} s)", args.drain_s);
    let bound = Duration::from_secs(args.drain_s);
    workload::drain(&cfg.uris, cfg.queues, &totals.awaiting, &history, bound)
        .await
        .context("drain")?;
    digests(&cluster, &history).await?;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::join!(poller, watchdog);
    history.flush()?;
    verdict::judge(&args, &cluster, &totals)
}

/// HAProxy first, then every node directly: producers and consumers are spread over these
/// round-robin, so some go through the proxy and some stick to one node.
fn workload_config(args: &RunArgs, cluster: &Cluster) -> WorkloadConfig {
    let mut uris = vec![HAPROXY_URI.to_string()];
    uris.extend(cluster.nodes.iter().map(|n| n.amqp_uri()));
    WorkloadConfig {
        uris,
        producers: args.producers,
        consumers: args.consumers,
        queues: args.queues,
        confirm_window: args.confirm_window,
        prefetch: args.prefetch,
        rate_per_producer: args.rate,
        ..WorkloadConfig::default()
    }
}

/// After the drain: once the nodes agree again, each node's state hash at its applied index
/// (read together), for the checker's digest comparison.
async fn digests(cluster: &Cluster, history: &History) -> anyhow::Result<()> {
    let (_, converged) = status::wait_converged(cluster, Duration::from_secs(10)).await;
    if !converged {
        cluster.finding("the nodes did not agree on one applied index after the drain".into());
    }
    for (idx, node) in cluster.nodes.iter().enumerate() {
        let Some(digest) = status::digest(cluster, idx).await else {
            cluster.finding(format!("{} gave no state digest", node.name));
            continue;
        };
        history.record(Event::Digest {
            node: node.name.clone(),
            applied_index: digest.applied_index.unwrap_or(0),
            hash: digest.hash,
        })?;
    }
    Ok(())
}
