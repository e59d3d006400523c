//! The `warren` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use warren::config::NodeConfig;

#[derive(Parser)]
#[command(
    name = "warren",
    version,
    about = "AMQP 0-9-1 broker with Raft-replicated queues"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read and validate a node configuration file; print every wrong field.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Run a broker node (single node for now: a one-member Raft cluster).
    Server {
        /// The TOML node configuration; built-in defaults when absent.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::CheckConfig { file } => {
            let config = NodeConfig::load(&file)?;
            println!("{}: ok ({config:?})", file.display());
        }
        Command::Server { config } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            let config = match config {
                Some(path) => NodeConfig::load(&path)?,
                None => NodeConfig::default(),
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(warren::server::serve(config))?;
        }
    }
    Ok(())
}
