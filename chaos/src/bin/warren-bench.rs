//! `warren-bench`: a PerfTest-like load generator for AMQP 0-9-1 brokers. See `chaos::bench`.

use anyhow::Context;
use chaos::bench::{self, BenchArgs};
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = BenchArgs::parse();
    let json = args.json.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let summary = runtime.block_on(bench::run(args))?;
    print!("{}", summary.text());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&summary).context("encode the summary")?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("write the summary to {}", path.display()))?;
    }
    Ok(())
}
