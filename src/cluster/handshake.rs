//! The handshake that opens every peer connection: both sides prove they know the cluster
//! cookie without sending it, and the client names the node it means to reach.
//!
//! ```text
//! client                                         server (node `to`)
//!   Hello { from, to, nonce_c }            ->
//!                                          <-    Challenge { nonce_s, proof_s }
//!                                                  proof_s = HMAC(cookie, "warren-server" || nonce_c || nonce_s)
//!   Proof { proof_c }                      ->
//!     proof_c = HMAC(cookie, "warren-client" || nonce_s || nonce_c)
//!                                          <-    Welcome
//! ```
//!
//! Either side may answer `Refused { reason }` instead and close. Fresh random nonces from
//! both sides mean a recorded handshake cannot be replayed in either direction, and the two
//! labels keep one side's proof from being reflected back as the other's. The server checks
//! `to` first: a RAM node's new incarnation reuses its predecessor's address under a new node
//! id, and a message meant for the old id must not reach the new one.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use super::cookie::{random_bytes, Cookie, MAC_LEN};
use super::wire::{read_frame, write_frame, WireError};
use super::NodeId;
use crate::limits::CLUSTER_HANDSHAKE_FRAME_MAX;

/// The target a command-line client names when it addresses whoever listens at an address
/// (`warren cluster-status`, `join`, ...): it does not know a RAM node's current Raft id. No
/// Raft node has id 0, so openraft's own RPCs always name their exact target.
pub const ANY_NODE: NodeId = 0;

const SERVER_LABEL: &[u8] = b"warren-server";
const CLIENT_LABEL: &[u8] = b"warren-client";
const NONCE_LEN: usize = 32;

/// Handshake messages. **Variants are only ever appended** (postcard encodes the index).
#[derive(Debug, Serialize, Deserialize)]
enum Handshake {
    Hello {
        from: NodeId,
        to: NodeId,
        nonce_c: [u8; NONCE_LEN],
    },
    Challenge {
        nonce_s: [u8; NONCE_LEN],
        proof_s: [u8; MAC_LEN],
    },
    Proof {
        proof_c: [u8; MAC_LEN],
    },
    Welcome,
    Refused {
        reason: String,
    },
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("wrong cookie")]
    WrongCookie,
    #[error("node {ours} was asked for node {asked}")]
    WrongNode { ours: NodeId, asked: NodeId },
    #[error("refused by the peer: {0}")]
    Refused(String),
    #[error("unexpected handshake message {0}")]
    Unexpected(&'static str),
    #[error("cannot read the system's random generator: {0}")]
    Random(std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl Handshake {
    fn name(&self) -> &'static str {
        match self {
            Handshake::Hello { .. } => "hello",
            Handshake::Challenge { .. } => "challenge",
            Handshake::Proof { .. } => "proof",
            Handshake::Welcome => "welcome",
            Handshake::Refused { .. } => "refused",
        }
    }
}

async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Handshake, WireError> {
    read_frame(r, CLUSTER_HANDSHAKE_FRAME_MAX).await
}

/// The client side: proves the cookie to node `to` at `addr` and checks that node's proof.
pub async fn client<R, W>(
    r: &mut R,
    w: &mut W,
    cookie: &Cookie,
    from: NodeId,
    to: NodeId,
    addr: &str,
) -> Result<(), HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let nonce_c: [u8; NONCE_LEN] = random_bytes().map_err(HandshakeError::Random)?;
    write_frame(w, &Handshake::Hello { from, to, nonce_c }).await?;
    let (nonce_s, proof_s) = match read(r).await? {
        Handshake::Challenge { nonce_s, proof_s } => (nonce_s, proof_s),
        Handshake::Refused { reason } => {
            tracing::warn!(peer = addr, node = to, %reason, "peer refused this node");
            return Err(HandshakeError::Refused(reason));
        }
        other => return Err(HandshakeError::Unexpected(other.name())),
    };
    if !cookie.verify(SERVER_LABEL, &nonce_c, &nonce_s, &proof_s) {
        tracing::warn!(peer = addr, node = to, "peer refused: wrong cookie");
        let reason = "wrong cookie".to_string();
        // Best effort: the peer learns why we hang up; we are closing either way.
        write_frame(w, &Handshake::Refused { reason }).await.ok();
        return Err(HandshakeError::WrongCookie);
    }
    let proof_c = cookie.mac(CLIENT_LABEL, &nonce_s, &nonce_c);
    write_frame(w, &Handshake::Proof { proof_c }).await?;
    match read(r).await? {
        Handshake::Welcome => Ok(()),
        Handshake::Refused { reason } => {
            tracing::warn!(peer = addr, node = to, %reason, "peer refused this node");
            Err(HandshakeError::Refused(reason))
        }
        other => Err(HandshakeError::Unexpected(other.name())),
    }
}

/// The server side, run by node `ours` on a new connection from `addr`: returns the node id
/// the client says it is, once it has proven it knows the cookie.
pub async fn server<R, W>(
    r: &mut R,
    w: &mut W,
    cookie: &Cookie,
    ours: NodeId,
    addr: SocketAddr,
) -> Result<NodeId, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (from, to, nonce_c) = match read(r).await? {
        Handshake::Hello { from, to, nonce_c } => (from, to, nonce_c),
        other => return Err(HandshakeError::Unexpected(other.name())),
    };
    if to != ours && to != ANY_NODE {
        tracing::warn!(peer = %addr, from, "peer refused: it asked for node {to}, this is node {ours}");
        let reason = format!("this is node {ours}, not node {to}");
        write_frame(w, &Handshake::Refused { reason }).await.ok();
        return Err(HandshakeError::WrongNode { ours, asked: to });
    }
    let nonce_s: [u8; NONCE_LEN] = random_bytes().map_err(HandshakeError::Random)?;
    let proof_s = cookie.mac(SERVER_LABEL, &nonce_c, &nonce_s);
    write_frame(w, &Handshake::Challenge { nonce_s, proof_s }).await?;
    let proof_c = match read(r).await? {
        Handshake::Proof { proof_c } => proof_c,
        Handshake::Refused { reason } => {
            // The client found our proof wrong: the cookies differ.
            tracing::warn!(peer = %addr, from, "peer {addr} refused: {reason}");
            return Err(HandshakeError::Refused(reason));
        }
        other => return Err(HandshakeError::Unexpected(other.name())),
    };
    if !cookie.verify(CLIENT_LABEL, &nonce_s, &nonce_c, &proof_c) {
        tracing::warn!(peer = %addr, from, "peer {addr} refused: wrong cookie");
        let reason = "wrong cookie".to_string();
        write_frame(w, &Handshake::Refused { reason }).await.ok();
        return Err(HandshakeError::WrongCookie);
    }
    write_frame(w, &Handshake::Welcome).await?;
    Ok(from)
}
