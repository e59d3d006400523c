//! `disk-probe`: the physical limit a durable broker works against on this machine.
//!
//! Appends fixed-size records to a file and calls `fdatasync` after every group of records,
//! as a log that batches its fsyncs would (issue 5: 1 KiB records in groups of 64). Prints
//! MB/s and records/s as text, and as JSON with `--json FILE`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

/// Measure append + fdatasync throughput of a directory's disk.
#[derive(Debug, Parser)]
#[command(name = "disk-probe")]
struct Args {
    /// Directory to write the probe file in (it is removed afterwards).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Seconds to write for.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Record size in bytes.
    #[arg(long, default_value_t = 1024)]
    record: usize,
    /// Records per fdatasync.
    #[arg(long, default_value_t = 64)]
    group: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, serde::Serialize)]
struct Result {
    record_bytes: usize,
    group: usize,
    seconds: f64,
    records: u64,
    syncs: u64,
    records_per_s: f64,
    mb_per_s: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.record > 0 && args.group > 0,
        "--record and --group must be > 0"
    );
    let result = probe(&args)?;
    println!(
        "disk-probe: {:.0} records/s  {:.1} MB/s  ({} B records, fdatasync per {}; {} syncs in {:.1} s)",
        result.records_per_s, result.mb_per_s, result.record_bytes, result.group, result.syncs,
        result.seconds
    );
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result)?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// Appends groups until the time is up; the file is removed even if a write fails.
fn probe(args: &Args) -> anyhow::Result<Result> {
    let path = args
        .dir
        .join(format!("disk-probe-{}.dat", std::process::id()));
    let outcome = append_groups(args, &path);
    let _ = std::fs::remove_file(&path);
    let (records, syncs, elapsed) = outcome?;
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Ok(Result {
        record_bytes: args.record,
        group: args.group,
        seconds,
        records,
        syncs,
        records_per_s: records as f64 / seconds,
        mb_per_s: (records * args.record as u64) as f64 / seconds / 1e6,
    })
}

fn append_groups(args: &Args, path: &PathBuf) -> anyhow::Result<(u64, u64, Duration)> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    // One group's worth of records in one buffer: the write is one syscall, as a log's is.
    let group_bytes = vec![0xA5u8; args.record * args.group];
    let limit = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let (mut records, mut syncs) = (0u64, 0u64);
    while start.elapsed() < limit {
        file.write_all(&group_bytes).context("append")?;
        file.sync_data().context("fdatasync")?;
        records += args.group as u64;
        syncs += 1;
    }
    Ok((records, syncs, start.elapsed()))
}
