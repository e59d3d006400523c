//! The two halves of a peer connection, over plain TCP or over TLS (`cluster_tls`).
//!
//! An enum rather than a boxed trait object: the plain halves stay tokio's lock-free
//! `OwnedReadHalf`/`OwnedWriteHalf`, reached by one match per poll. A TLS stream cannot be
//! split that way (one rustls session serves both directions), so its halves come from
//! `tokio::io::split`, which shares the stream behind a lock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

/// The reading half of a peer connection.
pub enum PeerReader {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a peer connection.
pub enum PeerWriter {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

/// Splits a plain TCP connection.
pub fn split_tcp(stream: TcpStream) -> (PeerReader, PeerWriter) {
    let (rd, wr) = stream.into_split();
    (PeerReader::Tcp(rd), PeerWriter::Tcp(wr))
}

/// Splits a connection whose TLS handshake is done.
pub fn split_tls(stream: TlsStream<TcpStream>) -> (PeerReader, PeerWriter) {
    let (rd, wr) = tokio::io::split(stream);
    (PeerReader::Tls(rd), PeerWriter::Tls(wr))
}

impl AsyncRead for PeerReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerReader::Tcp(rd) => Pin::new(rd).poll_read(cx, buf),
            PeerReader::Tls(rd) => Pin::new(rd).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerWriter::Tcp(wr) => Pin::new(wr).poll_write(cx, buf),
            PeerWriter::Tls(wr) => Pin::new(wr).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerWriter::Tcp(wr) => Pin::new(wr).poll_flush(cx),
            PeerWriter::Tls(wr) => Pin::new(wr).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerWriter::Tcp(wr) => Pin::new(wr).poll_shutdown(cx),
            PeerWriter::Tls(wr) => Pin::new(wr).poll_shutdown(cx),
        }
    }
}
