//! The AMQP front end's listeners: plain TCP (`amqp_listen`) and AMQPS (`amqps_listen`, TLS
//! with rustls), either of which may be off; one task per connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::SignalKind;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::connection;
use super::proposer::Proposer;
use crate::config::NodeConfig;
use crate::limits::AMQPS_HANDSHAKE_TIMEOUT_MS;

/// The addresses the front end listens on (the bound ones: useful with port 0).
#[derive(Clone, Copy, Debug)]
pub struct Listening {
    pub amqp: Option<SocketAddr>,
    pub amqps: Option<SocketAddr>,
}

/// An AMQPS listener with the TLS configuration of its connections.
struct Amqps {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

/// Binds the configured listeners and returns their addresses and the accept loop, which
/// runs until `warren stop` or SIGTERM stops the node gracefully.
pub async fn bind(
    config: NodeConfig,
) -> anyhow::Result<(Listening, impl Future<Output = anyhow::Result<()>>)> {
    // TLS files are read before anything binds or opens: a bad one stops the start at once.
    let acceptor = match config.amqps_addr() {
        Some(_) => Some(TlsAcceptor::from(
            crate::tls::amqps::server_config(&config.tls).context("set up AMQPS")?,
        )),
        None => None,
    };
    let plain = match config.amqp_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind AMQP listener on {addr}"))?,
        ),
        None => None,
    };
    let amqps = match (config.amqps_addr(), acceptor) {
        (Some(addr), Some(acceptor)) => Some(Amqps {
            listener: TcpListener::bind(addr)
                .await
                .with_context(|| format!("bind AMQPS listener on {addr}"))?,
            acceptor,
        }),
        _ => None,
    };
    let listening = Listening {
        amqp: plain.as_ref().map(TcpListener::local_addr).transpose()?,
        amqps: amqps
            .as_ref()
            .map(|a| a.listener.local_addr())
            .transpose()?,
    };
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
    let auth = proposer.peer_auth().cloned();
    super::machine_upgrade::start(&proposer, auth, &config, definitions);
    let alarm = super::alarm::start(config.memory_high_watermark);
    let accept_loop = async move {
        let mut terminate =
            tokio::signal::unix::signal(SignalKind::terminate()).context("listen for SIGTERM")?;
        loop {
            let (socket, peer, tls) = tokio::select! {
                accepted = accept(plain.as_ref()) => match accepted {
                    Some((socket, peer)) => (socket, peer, None),
                    None => continue,
                },
                accepted = accept(amqps.as_ref().map(|a| &a.listener)) => match accepted {
                    Some((socket, peer)) => (socket, peer, amqps.as_ref().map(|a| a.acceptor.clone())),
                    None => continue,
                },
                () = proposer.stop_requested() => break,
                _ = terminate.recv() => break,
            };
            let started = Started {
                config: Arc::clone(&config),
                proposer: Arc::clone(&proposer),
                alarm: alarm.clone(),
            };
            tokio::spawn(started.run(socket, peer, tls));
        }
        tracing::info!("stopping");
        proposer.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    };
    Ok((listening, accept_loop))
}

/// The next connection on `listener`; never, when that listener is off. `None` after a
/// failed accept (already logged and waited out).
async fn accept(listener: Option<&TcpListener>) -> Option<(TcpStream, SocketAddr)> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    match listener.accept().await {
        Ok(accepted) => Some(accepted),
        Err(e) => {
            // Per-connection errors (e.g. ECONNABORTED, EMFILE) must not stop the node; wait
            // rather than spin on them.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// What every connection task starts with.
struct Started {
    config: Arc<NodeConfig>,
    proposer: Arc<Proposer>,
    alarm: watch::Receiver<bool>,
}

impl Started {
    /// Serves one accepted connection, after its TLS handshake when it came to AMQPS.
    async fn run(self, socket: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
        let _ = socket.set_nodelay(true);
        let Started {
            config,
            proposer,
            alarm,
        } = self;
        let result = match tls {
            None => connection::run(socket, peer.ip(), config, proposer, alarm).await,
            Some(acceptor) => {
                let timeout = Duration::from_millis(AMQPS_HANDSHAKE_TIMEOUT_MS);
                match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => {
                        connection::run(stream, peer.ip(), config, proposer, alarm).await
                    }
                    // A client that does not trust our certificate, or has no acceptable
                    // one of its own: its own business unless it keeps happening.
                    Ok(Err(e)) => {
                        return tracing::warn!(%peer, error = %e, "AMQPS handshake failed")
                    }
                    Err(_) => return tracing::warn!(%peer, "AMQPS handshake timed out"),
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with error");
        }
    }
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

/// Serves AMQP on the configured listeners until the node stops.
pub async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    let (listening, accept_loop) = bind(config).await?;
    if let Some(addr) = listening.amqp {
        tracing::info!(%addr, "AMQP listener ready");
    }
    if let Some(addr) = listening.amqps {
        tracing::info!(%addr, "AMQPS listener ready");
    }
    accept_loop.await
}
