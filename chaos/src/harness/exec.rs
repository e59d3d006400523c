//! Running the host tools a fault needs (ip, iptables, xfs_io, mount, fallocate), with their
//! failure reported as an error that names the command and its stderr.

use anyhow::Context;
use tokio::process::Command;

/// Runs `program args…`, returns its stdout; a non-zero exit is an error.
pub async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("run {program}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a network namespace. `nsenter --net`, not `ip netns exec`: the
/// latter also makes a mount namespace, and while it lives it pins the XFS mounts a power cut
/// must unmount (chaos/run explains).
pub async fn in_netns(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let net = format!("--net=/run/netns/{ns}");
    let mut all = vec![net.as_str(), "--"];
    all.extend_from_slice(args);
    run("nsenter", &all).await
}
