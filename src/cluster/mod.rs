//! Node-to-node transport: TCP connections between nodes (inside TLS with `cluster_tls`),
//! cookie-authenticated, carrying the requests and responses of a protocol it does not know
//! (`Protocol`: the node's is `crate::raft::protocol`). It depends on nothing of Raft or the
//! broker.
//!
//! * [`PeerHandler`]: what a node does with a request it received.
//! * [`cookie`]: the shared secret, loaded from an owner-only file.
//! * [`wire`]: framing of peer messages (version, length, crc32c, postcard).
//! * [`handshake`]: challenge-response proof of the cookie when a connection opens.
//! * [`tls`]: `PeerTls` (TLS around a connection, before the handshake) and `PeerAuth` (the
//!   cookie and the optional TLS a node connects with).
//! * [`stream`]: a connection's read and write halves, plain or TLS.
//! * [`transport`]: `PeerServer` (accept, handshake, serve) and `PeerClient` (one connection).
//! * [`pipeline`]: `PeerPipeline` (requests sent without waiting, answers matched by
//!   position).

pub mod cookie;
pub mod handshake;
pub mod pipeline;
pub mod stream;
pub mod tls;
pub mod transport;
pub mod wire;

pub use cookie::Cookie;
pub use tls::{PeerAuth, PeerTls};
pub use transport::PeerServer;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A node's id on the transport (the Raft node id).
pub type NodeId = u64;

/// The messages a transport carries.
pub trait Protocol: Send + Sync + 'static {
    type Request: Serialize + DeserializeOwned + Send + Sync + std::fmt::Debug + 'static;
    type Response: Serialize + DeserializeOwned + Send + Sync + std::fmt::Debug + 'static;
}

/// A response still on its way (see [`PeerHandler::start`]).
pub type Pending<'a, R> = std::pin::Pin<Box<dyn std::future::Future<Output = R> + Send + 'a>>;

/// What a node does with the requests it receives from peers.
pub trait PeerHandler: Send + Sync + 'static {
    type Protocol: Protocol;

    fn handle(
        &self,
        request: <Self::Protocol as Protocol>::Request,
    ) -> impl std::future::Future<Output = <Self::Protocol as Protocol>::Response> + Send;

    /// A connection that node `from` opened to this one ended: it closed, failed, or sent
    /// something unreadable. A killed process's connections end at once (its kernel closes
    /// them), which is how a node learns of a dead peer before any timeout.
    fn disconnected(&self, from: NodeId) {
        let _ = from;
    }

    /// Starts `request` and returns what finishes it. A connection starts its requests one
    /// at a time, in the order they arrive, and writes their responses in that order; a
    /// request whose start returns early lets the next one start while it finishes (a
    /// forwarded batch is appended to the log, then waits for its commit). By default a
    /// request is handled whole before the next starts.
    fn start(
        &self,
        request: <Self::Protocol as Protocol>::Request,
    ) -> impl std::future::Future<Output = Pending<'_, <Self::Protocol as Protocol>::Response>> + Send
    {
        // Two stages by design: the outer future starts, the inner one finishes.
        #[allow(clippy::async_yields_async)]
        async move {
            let response = self.handle(request).await;
            Box::pin(std::future::ready(response)) as Pending<'_, _>
        }
    }
}
