//! Partitions: iptables INPUT drops inside the nodes' namespaces (CHAOS-HARNESS.md, a
//! "grudge": node → the peers it ignores). Only peer traffic is cut; the hub (HAProxy, the
//! harness's clients and poller, 10.213.0.254) still reaches every node, as the Jepsen control
//! node does, so clients of a minority node see it fail to confirm.

use super::cluster::Cluster;
use super::exec;

/// Cuts every node of `a` from every node of `b`, both ways.
pub async fn cut(cluster: &Cluster, a: &[usize], b: &[usize]) -> anyhow::Result<()> {
    for &x in a {
        for &y in b {
            drop_from(cluster, x, y).await?;
            drop_from(cluster, y, x).await?;
        }
    }
    Ok(())
}

/// Cuts node `x` from every other node.
pub async fn isolate(cluster: &Cluster, x: usize) -> anyhow::Result<()> {
    let others: Vec<usize> = (0..cluster.nodes.len()).filter(|&i| i != x).collect();
    cut(cluster, &[x], &others).await
}

/// Node `x` drops every packet from node `y`.
async fn drop_from(cluster: &Cluster, x: usize, y: usize) -> anyhow::Result<()> {
    let (node, from) = (&cluster.nodes[x], &cluster.nodes[y]);
    exec::in_netns(
        &node.netns(),
        &[
            "iptables", "-w", "-A", "INPUT", "-s", &from.ip, "-j", "DROP",
        ],
    )
    .await?;
    Ok(())
}

/// Removes every partition, and the `latency` nemesis's rules.
pub async fn heal(cluster: &Cluster) -> anyhow::Result<()> {
    for node in &cluster.nodes {
        let ns = node.netns();
        exec::in_netns(&ns, &["iptables", "-w", "-F", "INPUT"]).await?;
        exec::in_netns(&ns, &["iptables", "-w", "-F", "OUTPUT"]).await?;
        exec::in_netns(&ns, &["iptables", "-w", "-t", "nat", "-F", "OUTPUT"]).await?;
    }
    Ok(())
}
