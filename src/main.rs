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
    /// Run a broker node (a single node, or a cluster member when the config has [[peers]]).
    Server {
        /// The TOML node configuration; built-in defaults when absent.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start a local three-node cluster with embedded defaults (AMQP on 5672, 5673, 5674)
    /// and keep it running until Ctrl-C.
    DevCluster {
        /// Where the nodes keep their data, logs, configs and the shared cookie.
        #[arg(long, default_value = "warren-dev")]
        dir: PathBuf,
        /// AMQP port of node 1; nodes 2 and 3 use the next two, cluster ports are +20000.
        #[arg(long, default_value_t = 5672)]
        base_port: u16,
    },
    /// Show every member of the cluster: role, Raft state, term, log, applied, lag, reachable.
    ClusterStatus {
        /// A member's configuration (its [[peers]] and cookie are used).
        #[arg(long, default_value = "warren-dev/node1.toml")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also ask each node for its applied index and a hash of its state there (nodes
        /// at the same applied index must agree).
        #[arg(long)]
        digest: bool,
    },
    /// Write a new random cluster cookie to FILE (mode 0600).
    Cookie { file: PathBuf },
}

/// Without RUST_LOG: info, but openraft only for errors (it warns on every failed heartbeat
/// to a down peer, several times a second).
const DEFAULT_LOG_FILTER: &str = "info,openraft=error";

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .init();
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::CheckConfig { file } => {
            let config = NodeConfig::load(&file)?;
            println!("{}: ok ({config:?})", file.display());
        }
        Command::DevCluster { dir, base_port } => {
            init_logging();
            warren::cli::dev_cluster::run(&dir, base_port)?;
        }
        Command::ClusterStatus {
            config,
            json,
            digest,
        } => {
            let config = NodeConfig::load(&config)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let status = runtime.block_on(warren::cli::status::collect(&config, digest))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", warren::cli::status::render_table(&status));
            }
        }
        Command::Cookie { file } => {
            warren::cluster::cookie::Cookie::generate()?.write_new(&file)?;
            println!("wrote a new cluster cookie to {}", file.display());
        }
        Command::Server { config } => {
            init_logging();
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
