//! The TCP listener of the AMQP front end.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::SignalKind;

use super::connection;
use super::proposer::Proposer;
use crate::config::NodeConfig;

/// Binds `config.amqp_listen` and returns the bound address (useful with port 0) and the
/// accept loop, which runs until `warren stop` or SIGTERM stops the node gracefully.
pub async fn bind(
    config: NodeConfig,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    let listener = TcpListener::bind(config.amqp_listen)
        .await
        .with_context(|| format!("bind AMQP listener on {}", config.amqp_listen))?;
    let addr = listener.local_addr()?;
    let definitions = match &config.load_definitions {
        Some(path) => Some(load_definitions(path)?),
        None => None,
    };
    let config = Arc::new(config);
    let proposer = Arc::new(Proposer::open(&config).await.context("open raft node")?);
    proposer.serve_admin();
    proposer.start_ticks();
    proposer.start_fail_stop();
    proposer.start_closing_stale_connections();
    if config.is_clustered() {
        super::node_down::start(&proposer);
    }
    let cookie = proposer.cookie().cloned();
    super::machine_upgrade::start(&proposer, cookie, &config, definitions);
    let alarm = super::alarm::start(config.memory_high_watermark);
    let accept_loop = async move {
        let mut terminate =
            tokio::signal::unix::signal(SignalKind::terminate()).context("listen for SIGTERM")?;
        loop {
            let (socket, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Per-connection errors (e.g. ECONNABORTED, EMFILE) must not stop
                        // the node.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = proposer.stop_requested() => break,
                _ = terminate.recv() => break,
            };
            let config = Arc::clone(&config);
            let proposer = Arc::clone(&proposer);
            let alarm = alarm.clone();
            tokio::spawn(async move {
                if let Err(e) = connection::run(socket, config, proposer, alarm).await {
                    tracing::debug!(%peer, error = %e, "connection ended with error");
                }
            });
        }
        tracing::info!("stopping");
        proposer.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    };
    Ok((addr, accept_loop))
}

/// The commands of the `load_definitions` file, read and checked at every start (a wrong
/// file stops the node here, every wrong field named), though only a new cluster's first
/// leader imports them.
fn load_definitions(
    path: &std::path::Path,
) -> anyhow::Result<Vec<crate::broker::command::Command>> {
    let parsed = crate::definitions::import::load(path)?;
    for ignored in &parsed.ignored {
        tracing::warn!(file = %path.display(), "{ignored}");
    }
    Ok(parsed.commands)
}

/// Serves AMQP on `config.amqp_listen` until the process ends.
pub async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    let (addr, accept_loop) = bind(config).await?;
    tracing::info!(%addr, "AMQP listener ready");
    accept_loop.await
}
