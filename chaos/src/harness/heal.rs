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
        if !disk::mounted(node).await {
            cluster.finding(format!("final heal: {} was not mounted", node.name));
            let image = node.image.display().to_string();
            let mount = node.mount.display().to_string();
            super::exec::run("mount", &["-o", "loop", &image, &mount]).await?;
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
