//! `warren-chaos`: the chaos harness's binary (`run`, `check`, `corrupt`, `delay-proxy`). `chaos/run` sets
//! up the namespaces, disks and nodes and calls `warren-chaos run`; see docs/chaos.md.

use std::time::Duration;

use anyhow::Context;
use chaos::checker::{self, CheckOptions, Verdict};
use chaos::harness::args::{Cli, Command};
use chaos::harness::{corrupt, delay_proxy, run};
use clap::Parser;

/// Exit codes: 0 valid, 1 invalid, 2 unknown (e.g. an incomplete drain), 3 harness error.
fn exit_code(verdict: Verdict) -> i32 {
    match verdict {
        Verdict::Valid => 0,
        Verdict::Invalid => 1,
        Verdict::Unknown => 2,
    }
}

fn main() {
    let code = match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warren-chaos: error: {e:#}");
            3
        }
    };
    std::process::exit(code);
}

fn real_main() -> anyhow::Result<i32> {
    match Cli::parse().command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("start the tokio runtime")?;
            Ok(exit_code(runtime.block_on(run::run(args))?))
        }
        Command::Check { file, dedup } => {
            let report = checker::check_file(&file, &CheckOptions { dedup })?;
            print!("{}", report.render());
            println!("verdict: {:?}", report.verdict());
            Ok(exit_code(report.verdict()))
        }
        Command::Corrupt {
            bitflip,
            seed,
            file,
        } => {
            let flips = corrupt::bitflip(&file, bitflip, seed)?;
            for f in &flips {
                println!(
                    "{} offset {} {:#04x} -> {:#04x}",
                    file.display(),
                    f.offset,
                    f.old,
                    f.new
                );
            }
            println!("{} bytes changed", flips.len());
            Ok(0)
        }
        Command::DelayProxy { port, delay_ms } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("start the tokio runtime")?;
            runtime.block_on(delay_proxy::serve(port, Duration::from_millis(delay_ms)))?;
            Ok(0)
        }
    }
}
