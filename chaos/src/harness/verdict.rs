//! The run's verdict: the checker's report on the history, plus what the harness itself saw
//! (findings: nodes that died on their own, a node that did not fail-stop), written to
//! verdict.txt and verdict.json in the output folder and printed.

use anyhow::Context;

use crate::checker::{self, CheckOptions, Verdict};
use crate::workload::WorkloadTotals;

use super::args::RunArgs;
use super::cluster::Cluster;

pub fn judge(
    args: &RunArgs,
    cluster: &Cluster,
    totals: &WorkloadTotals,
) -> anyhow::Result<Verdict> {
    let history = args.out.join("history.jsonl");
    let report = checker::check_file(&history, &CheckOptions::default())
        .with_context(|| format!("check {}", history.display()))?;
    let findings = cluster.findings();
    // A finding is Warren misbehaving where the history cannot show it (a node that did not
    // fail-stop on EIO, started on a corrupt log, died on its own): the run is not valid.
    let verdict = match report.verdict() {
        Verdict::Valid if !findings.is_empty() => Verdict::Invalid,
        other => other,
    };
    let mut text = format!(
        "chaos run: seed {} duration {} s nemesis {} nodes {} ram-nodes {} control {}\n\
         workload: attempts {} confirmed {} nacked {} returned {} unknown {} delivered {} \
         reconnects {}\n\n",
        args.seed,
        args.duration,
        args.nemesis,
        args.nodes,
        args.ram_nodes,
        args.control.as_deref().unwrap_or("none"),
        totals.attempts,
        totals.confirmed,
        totals.nacked,
        totals.returned,
        totals.unknown,
        totals.delivered,
        totals.reconnects,
    );
    text.push_str(&report.render());
    text.push_str(&format!("\nharness findings: {}\n", findings.len()));
    for f in &findings {
        text.push_str(&format!("  {f}\n"));
    }
    text.push_str(&format!("\nverdict: {verdict:?}\n"));
    print!("{text}");
    std::fs::write(args.out.join("verdict.txt"), &text).context("write verdict.txt")?;
    let json = serde_json::json!({
        "verdict": verdict,
        "seed": args.seed,
        "duration_s": args.duration,
        "nemesis": args.nemesis,
        "nodes": args.nodes,
        "ram_nodes": args.ram_nodes,
        "control": args.control,
        "report": report,
        "findings": findings,
    });
    let json = serde_json::to_string_pretty(&json)? + "\n";
    std::fs::write(args.out.join("verdict.json"), json).context("write verdict.json")?;
    Ok(verdict)
}
