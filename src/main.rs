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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::CheckConfig { file } => {
            let config = NodeConfig::load(&file)?;
            println!("{}: ok ({config:?})", file.display());
        }
    }
    Ok(())
}
