//! The final heal: every partition removed, every paused node resumed, every disk mounted and
//! freed, every stopped node started, so the drain sees the whole cluster.

use crate::history::{Event, History};

use super::cluster::Cluster;
use super::{disk, net};

pub async fn final_heal(cluster: &Cluster, history: &History) -> anyhow::Result<()> {
    if let Err(e) = net::heal(cluster).await {
        cluster.finding(format!("final heal: partitions: {e:#}"));
    }
    for (idx, node) in cluster.nodes.iter().enumerate() {
        if node.alive() {
            node.signal(libc::SIGCONT)?;
        }
        if !disk::healthy(node) {
            // A fault failed half-way (e.g. after an XFS shutdown): finish the power cut.
            cluster.finding(format!(
                "final heal: {}'s disk was not usable: remount",
                node.name
            ));
            node.kill9().await?;
            disk::remount(node).await?;
        }
        disk::unfill(node)?;
        if !node.alive() {
            node.mark("final heal: restart");
            node.start()?;
        }
        cluster.set_down(idx, false);
    }
    history.record(Event::FinalHeal)
}
