//! CI smoke test of `warren-bench` (issue 5): two seconds of load against a real node.

use std::process::Command;

use chaos::node::WarrenNode;
use serde_json::Value;

/// Runs `warren-bench -x 1 -y 1 -c 50 -z 2` against a fresh node and checks that messages
/// were sent, confirmed and all received, with no error, and that the JSON summary carries
/// the fields scripts read.
#[test]
fn bench_two_seconds_against_one_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = WarrenNode::start(dir.path());
    let json = dir.path().join("summary.json");

    let output = Command::new(env!("CARGO_BIN_EXE_warren-bench"))
        .args([
            "-x", "1", "-y", "1", "-c", "50", "-q", "100", "-s", "1000", "-z", "2",
        ])
        .args(["--uri", &node.uri(), "--json"])
        .arg(&json)
        .output()
        .expect("run warren-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "warren-bench failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("confirm p50/p99"),
        "no progress line:\n{stdout}"
    );

    let text = std::fs::read_to_string(&json).expect("summary written");
    let summary: Value = serde_json::from_str(&text).expect("summary is JSON");
    let count = |field: &str| {
        summary[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} missing:\n{text}"))
    };
    assert!(count("sent") > 0, "{text}");
    assert!(count("confirmed") > 0, "{text}");
    assert_eq!(count("received"), count("confirmed"), "{text}");
    assert_eq!(count("errors"), 0, "{text}");
    assert_eq!(count("nacks"), 0, "{text}");
    for rate in [
        "sent_per_s",
        "confirmed_per_s",
        "received_per_s",
        "duration_s",
    ] {
        assert!(
            summary[rate].as_f64().is_some_and(|r| r > 0.0),
            "{rate}:\n{text}"
        );
    }
    for latency in ["confirm_latency_ms", "e2e_latency_ms"] {
        for field in ["p50", "p95", "p99", "p99_9", "max"] {
            let value = summary[latency][field].as_f64();
            assert!(value.is_some_and(|v| v > 0.0), "{latency}.{field}:\n{text}");
        }
        assert!(summary[latency]["count"].as_u64().is_some_and(|n| n > 0));
    }
    // The typed summary reads back what the binary wrote.
    let typed: chaos::bench::Summary = serde_json::from_str(&text).expect("typed summary");
    assert_eq!(typed.config.confirm_window, 50);
}

/// The backlog modes the comparison script uses: a publish-only run (`-y 0 -C`) with RSS
/// sampling (of this test process: `WarrenNode` does not give its pid), then a consume-only run (`-x 0 -D`) that ends once the backlog is
/// drained; and a `--reconnect` run reports its longest confirm gap.
#[test]
fn backlog_publish_then_drain_with_peak_rss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = WarrenNode::start(dir.path());
    let pid = std::process::id().to_string();
    let publish = run_bench(
        dir.path(),
        &node.uri(),
        &[
            "-x",
            "2",
            "-y",
            "0",
            "-c",
            "50",
            "-C",
            "500",
            "-u",
            "backlog",
            "--rss-pid",
            &pid,
            "--reconnect",
        ],
    );
    assert_eq!(publish["confirmed"].as_u64(), Some(1_000), "{publish}");
    assert_eq!(publish["errors"].as_u64(), Some(0), "{publish}");
    let peak = &publish["peak_rss"][0];
    assert!(
        peak["peak_mib"].as_f64().is_some_and(|m| m > 1.0),
        "{publish}"
    );
    assert!(peak["samples"].as_u64().is_some_and(|n| n > 0), "{publish}");
    assert!(publish["confirm_gap_max_s"].as_f64().is_some(), "{publish}");
    assert!(publish["confirm_gap_end_unix_ms"]
        .as_u64()
        .is_some_and(|t| t > 0));

    let drain = run_bench(
        dir.path(),
        &node.uri(),
        &[
            "-x", "0", "-y", "1", "-q", "100", "-D", "1000", "-z", "60", "-u", "backlog",
        ],
    );
    assert_eq!(drain["received"].as_u64(), Some(1_000), "{drain}");
    assert_eq!(drain["errors"].as_u64(), Some(0), "{drain}");
}

/// Runs warren-bench with `args` against `uri`; its JSON summary.
fn run_bench(dir: &std::path::Path, uri: &str, args: &[&str]) -> Value {
    let json = dir.join("run.json");
    let output = Command::new(env!("CARGO_BIN_EXE_warren-bench"))
        .args(args)
        .args(["--quiet", "--uri", uri, "--json"])
        .arg(&json)
        .output()
        .expect("run warren-bench");
    assert!(
        output.status.success(),
        "warren-bench {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("summary written");
    serde_json::from_str(&text).expect("summary is JSON")
}

/// disk-probe writes its figures as JSON.
#[test]
fn disk_probe_reports_records_per_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("disk.json");
    let output = Command::new(env!("CARGO_BIN_EXE_disk-probe"))
        .args(["--seconds", "0.3", "--dir"])
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run disk-probe");
    assert!(output.status.success(), "{output:?}");
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("written")).expect("JSON");
    assert!(
        result["records_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{result}"
    );
    assert!(
        result["mb_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{result}"
    );
}
