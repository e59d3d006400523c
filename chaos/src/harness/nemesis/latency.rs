//! Latency on a node's links to its peers: every connection it opens to a peer's cluster port
//! goes through a delay proxy in its namespace (`warren-chaos delay-proxy`, see
//! src/harness/delay_proxy.rs), since this kernel has no `tc netem`. On the leader this
//! delays replication and its answers, so commits slow down; a delay near the election
//! timeout also tests that a slow leader is not deposed by every heartbeat that comes late.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

use super::super::delay_proxy::MARK;
use super::super::{exec, net};
use super::target;
use super::{secs, Ctx, Outcome};

/// Where the proxy listens inside the node's namespace.
const PROXY_PORT: &str = "26672";
/// The delay each way, ms: from a LAN across a region to about half the election timeout.
const DELAY_MS: (u64, u64) = (20, 150);

pub async fn latency(ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    let (idx, note) = target::leader_or_any(ctx).await;
    let delay_ms = ctx.rng.between(DELAY_MS.0, DELAY_MS.1);
    let ns = ctx.cluster.nodes[idx].netns();
    let mut proxy = start_proxy(&ns, delay_ms)?;
    let result = async {
        redirect(&ns).await?;
        reset_established(&ns).await?;
        target::sleep(hold).await;
        anyhow::Ok(())
    }
    .await;
    // Healed whatever happened: the rules go, then the proxy and every connection it holds
    // (the node reconnects directly).
    net::heal(ctx.cluster).await?;
    let _ = proxy.kill();
    let _ = proxy.wait();
    result?;
    Ok(Outcome {
        targets: ctx.cluster.names(&[idx]),
        detail: format!(
            "{note}: +{delay_ms} ms each way on the connections it opens to peers, for {}",
            secs(hold)
        ),
    })
}

fn start_proxy(ns: &str, delay_ms: u64) -> anyhow::Result<std::process::Child> {
    let me = std::env::current_exe().context("find warren-chaos")?;
    std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(me)
        .args(["delay-proxy", "--port", PROXY_PORT, "--delay-ms"])
        .arg(delay_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("start the delay proxy")
}

/// iptables matches for the node's own packets to a peer's cluster port (the proxy's own
/// connections carry `MARK` and do not match).
fn to_peers(mark: &str) -> Vec<&str> {
    vec![
        "-p", "tcp", "--dport", "25672", "-m", "mark", "!", "--mark", mark,
    ]
}

/// New connections to a peer's cluster port go to the proxy.
async fn redirect(ns: &str) -> anyhow::Result<()> {
    let mark = format!("{MARK:#x}");
    let mut args = vec!["iptables", "-w", "-t", "nat", "-A", "OUTPUT"];
    args.extend(to_peers(&mark));
    args.extend(["-j", "REDIRECT", "--to-ports", PROXY_PORT]);
    exec::in_netns(ns, &args).await?;
    Ok(())
}

/// The node's standing connections to its peers predate the rule: reset them (the next
/// packet each sends is answered with a TCP reset) so they reconnect through the proxy.
async fn reset_established(ns: &str) -> anyhow::Result<()> {
    let mark = format!("{MARK:#x}");
    let mut rule = vec!["OUTPUT"];
    rule.extend(to_peers(&mark));
    rule.extend(["-m", "conntrack", "--ctstate", "ESTABLISHED"]);
    rule.extend(["-j", "REJECT", "--reject-with", "tcp-reset"]);
    let edit = |op: &'static str| [vec!["iptables", "-w", op], rule.clone()].concat();
    exec::in_netns(ns, &edit("-I")).await?;
    // Heartbeats go every 100 ms: a few of them meet the rule.
    tokio::time::sleep(Duration::from_millis(400)).await;
    exec::in_netns(ns, &edit("-D")).await?;
    Ok(())
}
