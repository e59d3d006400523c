//! The cluster poller: every node's own view recorded as `Event::Cluster` about every 200 ms
//! (CHECKER.md: 100-250 ms), for the checker's time-to-new-leader figures.
//!
//! Each node is asked on its own; a node whose last question is still open (it is paused or
//! cut off) is skipped, so one slow node never delays the others' samples.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::history::{Event, History};

use super::cluster::Cluster;
use super::status;

pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Starts the poller; it runs until `stop` is set.
pub fn spawn(
    cluster: Arc<Cluster>,
    history: History,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let busy: Vec<Arc<AtomicBool>> = cluster
            .nodes
            .iter()
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        while !stop.load(Ordering::Relaxed) {
            for (idx, flag) in busy.iter().enumerate() {
                if flag.swap(true, Ordering::AcqRel) {
                    continue;
                }
                let (cluster, history, flag) = (cluster.clone(), history.clone(), flag.clone());
                tokio::spawn(async move {
                    sample(&cluster, &history, idx).await;
                    flag.store(false, Ordering::Release);
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
}

async fn sample(cluster: &Cluster, history: &History, idx: usize) {
    let Some(view) = status::view(cluster, idx).await else {
        return;
    };
    let event = Event::Cluster {
        node: cluster.nodes[idx].name.clone(),
        leader: view.leader_name,
        term: view.term,
        applied_index: view.applied_index,
    };
    if let Err(e) = history.record(event) {
        eprintln!("warren-chaos: poller: {e:#}");
    }
}
