//! The watchdog: a node that exits while no fault stopped it is a finding (a panic, an abort,
//! a fail-stop nobody asked for). It is reported once, with the log to read, and left down
//! until the final heal restarts it, so the rest of the run shows what its absence does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::history::History;

use super::cluster::Cluster;

const CHECK_INTERVAL: Duration = Duration::from_millis(500);

pub fn spawn(
    cluster: Arc<Cluster>,
    history: History,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reported = vec![false; cluster.nodes.len()];
        while !stop.load(Ordering::Relaxed) {
            for (idx, node) in cluster.nodes.iter().enumerate() {
                let down = !cluster.is_expected_down(idx) && !node.alive();
                if down && !reported[idx] {
                    let t_s = history.now_ns() as f64 / 1e9;
                    cluster.finding(format!(
                        "{} exited on its own at t={t_s:.1}s (see {})",
                        node.name,
                        node.log.display()
                    ));
                }
                reported[idx] = down || (reported[idx] && !node.alive());
            }
            tokio::time::sleep(CHECK_INTERVAL).await;
        }
    })
}
