//! The `warren` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use warren::config::NodeConfig;
use warren::raft::protocol::MembershipChange;

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
        /// Run in the background (as `rabbitmq-server -detached`): returns once the node
        /// listens, with its pid in `<data_dir>/warren.pid` and its log in
        /// `<data_dir>/warren.log`.
        #[arg(long)]
        detach: bool,
    },
    /// Add this node (running, with an empty data directory) to the cluster of its [[peers]]:
    /// as a learner until it has caught up, then as a voter.
    Join {
        /// The joining node's configuration.
        #[arg(long)]
        config: PathBuf,
        /// Stay a learner (a copy that does not vote or count toward commits).
        #[arg(long)]
        learner: bool,
    },
    /// Remove this node from the cluster, then stop it.
    Leave {
        #[arg(long)]
        config: PathBuf,
    },
    /// Remove node ID (e.g. a dead one) from the cluster.
    Forget {
        id: u64,
        /// Any member's configuration.
        #[arg(long, default_value = "warren-dev/node1.toml")]
        config: PathBuf,
    },
    /// Make learner ID a voter.
    Promote {
        id: u64,
        #[arg(long, default_value = "warren-dev/node1.toml")]
        config: PathBuf,
    },
    /// Make voter ID a learner.
    Demote {
        id: u64,
        #[arg(long, default_value = "warren-dev/node1.toml")]
        config: PathBuf,
    },
    /// Stop this node gracefully (a leader hands leadership over first).
    Stop {
        #[arg(long)]
        config: PathBuf,
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
    #[command(flatten)]
    Admin(warren::cli::admin_args::AdminCommand),
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

/// Sends a membership change to the leader and prints what it says now holds.
fn change_membership(config: &NodeConfig, change: MembershipChange) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let done = runtime.block_on(warren::cli::membership::ask_leader(config, change))?;
    println!("{done}");
    Ok(())
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
        Command::Server { config, detach } => {
            let loaded = match &config {
                Some(path) => NodeConfig::load(path)?,
                None => NodeConfig::default(),
            };
            if detach {
                warren::cli::detach::spawn(config.as_deref(), &loaded)?;
                return Ok(());
            }
            init_logging();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(warren::server::serve(loaded))?;
        }
        Command::Join { config, learner } => {
            let config = NodeConfig::load(&config)?;
            let change = MembershipChange::Join {
                id: config.node_id,
                addr: config.cluster_listen.to_string(),
                voter: !learner,
            };
            change_membership(&config, change)?;
        }
        Command::Leave { config } => {
            let config = NodeConfig::load(&config)?;
            let id = config.node_id;
            change_membership(&config, MembershipChange::Remove { id })?;
            tokio::runtime::Runtime::new()?.block_on(warren::cli::membership::stop(&config))?;
            println!("node {id} stopped");
        }
        Command::Forget { id, config } => {
            change_membership(&NodeConfig::load(&config)?, MembershipChange::Remove { id })?
        }
        Command::Promote { id, config } => change_membership(
            &NodeConfig::load(&config)?,
            MembershipChange::Promote { id },
        )?,
        Command::Demote { id, config } => {
            change_membership(&NodeConfig::load(&config)?, MembershipChange::Demote { id })?
        }
        Command::Admin(command) => {
            let runtime = tokio::runtime::Runtime::new()?;
            let out = runtime.block_on(warren::cli::admin_run::run(command))?;
            print!("{out}");
        }
        Command::Stop { config } => {
            let config = NodeConfig::load(&config)?;
            warren::cli::detach::stop(&config)?;
            println!("node {} stopped", config.node_id);
        }
    }
    Ok(())
}
