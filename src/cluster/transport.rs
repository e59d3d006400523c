//! The cluster transport: TCP connections between nodes (inside TLS when `cluster_tls` is
//! on, `super::tls`), opened by the cookie handshake, then carrying requests and their
//! responses in order.
//!
//! * [`PeerServer`] accepts connections on the node's cluster address and hands each request
//!   to the node's [`PeerHandler`]. A connection starts its requests one at a time and
//!   answers them in order; a handler may let a started request finish while the next ones
//!   start ([`PeerHandler::start`]: forwarded batches). Other parallelism comes from using
//!   several connections (the Raft network keeps one per kind of traffic).
//! * [`PeerClient`] is one lazily opened connection to one node, one call at a time. An error
//!   or a timeout drops the connection, and the next call opens a new one: a half-finished
//!   exchange would leave the next response out of step with its request.
//! * [`super::pipeline::PeerPipeline`] sends requests without waiting for the responses to
//!   earlier ones (a follower's batches on their way to the leader).
//!
//! Neither side ever panics on what it reads: every bad frame closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::handshake;
use super::stream::{split_tcp, split_tls, PeerReader, PeerWriter};
use super::tls::PeerAuth;
use super::wire::{read_frame, write_frame, WireError};
use super::{NodeId, PeerHandler, Pending, Protocol};
use crate::limits::{
    CLUSTER_CALL_TIMEOUT_MS, CLUSTER_CONNECTIONS_MAX, CLUSTER_CONNECT_TIMEOUT_MS,
    CLUSTER_FRAME_MAX, CLUSTER_HANDSHAKE_TIMEOUT_MS, PEER_PIPELINE_DEPTH,
};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(CLUSTER_HANDSHAKE_TIMEOUT_MS);

/// Serves peer requests on a node's cluster address until stopped or dropped.
pub struct PeerServer {
    local_addr: SocketAddr,
    /// The accept loop; it owns every connection task, so aborting it closes them all.
    task: tokio::task::JoinHandle<()>,
}

impl PeerServer {
    /// Binds `addr` and serves peers as node `node_id`.
    pub async fn bind<H: PeerHandler>(
        addr: &str,
        node_id: NodeId,
        auth: impl Into<PeerAuth>,
        handler: Arc<H>,
    ) -> anyhow::Result<PeerServer> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind cluster address {addr}"))?;
        PeerServer::start(listener, node_id, auth, handler)
    }

    /// Serves peers on an already bound listener (tests bind port 0 first to learn the port).
    pub fn start<H: PeerHandler>(
        listener: TcpListener,
        node_id: NodeId,
        auth: impl Into<PeerAuth>,
        handler: Arc<H>,
    ) -> anyhow::Result<PeerServer> {
        let local_addr = listener
            .local_addr()
            .context("read cluster listen address")?;
        let auth = auth.into();
        let tls = auth.tls.is_some();
        tracing::info!(node = node_id, addr = %local_addr, tls, "serving cluster peers");
        let accept = accept_loop(listener, node_id, auth, handler);
        let task =
            tokio::spawn(accept.instrument(tracing::info_span!("peer_server", node = node_id)));
        Ok(PeerServer { local_addr, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every open peer connection.
    pub async fn stop(mut self) {
        self.task.abort();
        // The task can only end as aborted; there is nothing else it could report.
        let _ = (&mut self.task).await;
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop<H: PeerHandler>(
    listener: TcpListener,
    node_id: NodeId,
    auth: PeerAuth,
    handler: Arc<H>,
) {
    let slots = Arc::new(Semaphore::new(CLUSTER_CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow with every one ever served.
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // The semaphore is never closed.
        };
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: wait rather than spin.
                tracing::warn!(error = %e, "accept a peer connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let auth = auth.clone();
        let handler = handler.clone();
        let span = tracing::info_span!("peer_conn", peer = %addr);
        connections.spawn(
            async move {
                serve_connection(stream, addr, node_id, &auth, &*handler).await;
                drop(slot);
            }
            .instrument(span),
        );
    }
}

async fn serve_connection<H: PeerHandler>(
    stream: TcpStream,
    addr: SocketAddr,
    node_id: NodeId,
    auth: &PeerAuth,
    handler: &H,
) {
    let opening = open_accepted(stream, addr, node_id, auth);
    let (mut rd, mut wr, from) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, opening).await {
        Ok(Some(opened)) => opened,
        Ok(None) => return,
        Err(_) => return tracing::warn!(peer = %addr, "peer handshake timed out"),
    };
    tracing::debug!(from, "peer connected");
    // Requests start in arrival order; their responses are written in the same order while
    // later requests start (a pipelining client matches them by position).
    type Response<H> = <<H as PeerHandler>::Protocol as Protocol>::Response;
    let (started, mut finishing) = mpsc::channel::<Pending<'_, Response<H>>>(PEER_PIPELINE_DEPTH);
    let start_requests = async move {
        loop {
            let request = match read_frame(&mut rd, CLUSTER_FRAME_MAX).await {
                Ok(request) => request,
                Err(WireError::Closed) => return tracing::debug!(from, "peer disconnected"),
                Err(e) => return tracing::warn!(from, error = %e, "bad request from peer"),
            };
            if started.send(handler.start(request).await).await.is_err() {
                return;
            }
        }
    };
    let write_responses = async move {
        while let Some(pending) = finishing.recv().await {
            if let Err(e) = write_frame(&mut wr, &pending.await).await {
                return tracing::debug!(from, error = %e, "write response to peer");
            }
        }
    };
    // Either side ending ends the connection: a closed or bad request stream leaves no one
    // to answer, and a failed write leaves responses out of step.
    tokio::select! {
        _ = start_requests => {}
        _ = write_responses => {}
    }
    handler.disconnected(from);
}

/// The server's opening of an accepted connection: TLS (with `cluster_tls`), then the cookie
/// handshake. The connection's halves and the node the client says it is, or `None` when
/// it was refused (and logged).
async fn open_accepted(
    stream: TcpStream,
    addr: SocketAddr,
    node_id: NodeId,
    auth: &PeerAuth,
) -> Option<(BufReader<PeerReader>, PeerWriter, NodeId)> {
    // Raft messages are small and latency-bound: do not let Nagle hold them back.
    stream.set_nodelay(true).ok();
    let (rd, mut wr) = match &auth.tls {
        None => split_tcp(stream),
        Some(tls) => match tls.accept(stream).await {
            Ok(stream) => split_tls(stream),
            Err(e) => {
                // A peer without a CA-signed certificate, or a stranger: said once, here.
                tracing::warn!(peer = %addr, error = %e, "peer refused: TLS handshake failed");
                return None;
            }
        },
    };
    let mut rd = BufReader::new(rd);
    match handshake::server(&mut rd, &mut wr, &auth.cookie, node_id, addr).await {
        Ok(from) => Some((rd, wr, from)),
        // Refusals were logged by the handshake itself.
        Err(e) => {
            tracing::debug!(error = %e, "peer handshake failed");
            None
        }
    }
}

/// An open, authenticated connection.
pub(super) struct Connection {
    pub(super) rd: BufReader<PeerReader>,
    pub(super) wr: PeerWriter,
}

/// One connection from this node (`from`) to node `to` at `addr`, opened on first use,
/// carrying `P`'s requests and responses.
pub struct PeerClient<P> {
    addr: String,
    from: NodeId,
    to: NodeId,
    auth: PeerAuth,
    call_timeout: Duration,
    connection: Option<Connection>,
    protocol: std::marker::PhantomData<fn() -> P>,
}

impl<P> std::fmt::Debug for PeerClient<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("addr", &self.addr)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl<P: Protocol> PeerClient<P> {
    /// A client for node `to` at `addr`; nothing is connected until the first call.
    pub fn new(
        addr: impl Into<String>,
        from: NodeId,
        to: NodeId,
        auth: impl Into<PeerAuth>,
    ) -> Self {
        PeerClient {
            addr: addr.into(),
            from,
            to,
            auth: auth.into(),
            call_timeout: Duration::from_millis(CLUSTER_CALL_TIMEOUT_MS),
            connection: None,
            protocol: std::marker::PhantomData,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The node this client calls.
    pub fn to(&self) -> NodeId {
        self.to
    }

    /// Opens the connection now (if it is not open) instead of on the next call.
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        if self.connection.is_none() {
            self.connection = Some(self.open().await?);
        }
        Ok(())
    }

    /// Sends `request` and waits for its response, within the client's call timeout
    /// ([`CLUSTER_CALL_TIMEOUT_MS`]), connecting first if needed.
    pub async fn call(&mut self, request: P::Request) -> anyhow::Result<P::Response> {
        self.call_timeout(request, self.call_timeout).await
    }

    /// [`PeerClient::call`] with its own deadline, which covers connecting too. On timeout
    /// the error holds a `tokio::time::error::Elapsed` (callers may tell it apart).
    pub async fn call_timeout(
        &mut self,
        request: P::Request,
        timeout: Duration,
    ) -> anyhow::Result<P::Response> {
        let to = self.to;
        let addr = self.addr.clone();
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            // The exchange was cut off mid-way; `exchange` had taken the connection out, so
            // it is gone and the next call starts afresh.
            Err(elapsed) => Err(anyhow::Error::new(elapsed).context(format!(
                "call node {to} at {addr}: no answer in {timeout:?}"
            ))),
        }
    }

    async fn exchange(&mut self, request: P::Request) -> anyhow::Result<P::Response> {
        // Out of `self` while in use: if this future is dropped or fails half-way, the
        // connection is dropped with it instead of being reused out of step.
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.open().await?,
        };
        let context = || format!("call node {} at {}", self.to, self.addr);
        write_frame(&mut connection.wr, &request)
            .await
            .with_context(context)?;
        let response = read_frame(&mut connection.rd, CLUSTER_FRAME_MAX)
            .await
            .with_context(context)?;
        self.connection = Some(connection);
        Ok(response)
    }

    pub(super) async fn open(&self) -> anyhow::Result<Connection> {
        let connect = TcpStream::connect(self.addr.as_str());
        let connect_timeout = Duration::from_millis(CLUSTER_CONNECT_TIMEOUT_MS);
        let stream = tokio::time::timeout(connect_timeout, connect)
            .await
            .map_err(anyhow::Error::new)
            .and_then(|connected| connected.map_err(anyhow::Error::new))
            .with_context(|| format!("connect to node {} at {}", self.to, self.addr))?;
        stream.set_nodelay(true).ok();
        let opening = async {
            let (rd, mut wr) = match &self.auth.tls {
                None => split_tcp(stream),
                Some(tls) => split_tls(
                    tls.connect(&self.addr, stream)
                        .await
                        .context("TLS handshake")?,
                ),
            };
            let mut rd = BufReader::new(rd);
            let (cookie, from, to) = (&self.auth.cookie, self.from, self.to);
            handshake::client(&mut rd, &mut wr, cookie, from, to, &self.addr).await?;
            anyhow::Ok(Connection { rd, wr })
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, opening)
            .await
            .map_err(anyhow::Error::new)
            .and_then(|opened| opened)
            .with_context(|| format!("handshake with node {} at {}", self.to, self.addr))
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
