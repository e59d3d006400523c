//! TLS on peer connections (`cluster_tls`): the TCP connection is wrapped before the cookie
//! handshake, which then runs inside the TLS session. The certificates keep strangers off
//! the wire; the cookie still decides who is a member of this cluster, as without TLS.

use std::io;
use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::cookie::Cookie;

/// Both sides of this node's TLS peer connections (cheap to clone: shared configs).
#[derive(Clone)]
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl PeerTls {
    /// `server` for the connections this node accepts (it should require a client
    /// certificate), `client` for those it opens (`crate::tls::cluster` builds both).
    pub fn new(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> PeerTls {
        PeerTls {
            acceptor: TlsAcceptor::from(server),
            connector: TlsConnector::from(client),
        }
    }

    /// The server side of the TLS handshake on an accepted connection.
    pub(super) async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        Ok(self.acceptor.accept(stream).await?.into())
    }

    /// The client side on a connection to `addr` ("host:port"), whose certificate must name
    /// that host.
    pub(super) async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = server_name(addr)?;
        Ok(self.connector.connect(name, stream).await?.into())
    }
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

/// The name a peer's certificate must carry: the host of its address, an IP or a DNS name.
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no TLS server name in peer address {addr}: {e}"),
        )
    })
}

/// How this node proves itself to its peers and checks them: the cluster cookie, inside TLS
/// when `cluster_tls` is on.
#[derive(Clone, Debug)]
pub struct PeerAuth {
    pub cookie: Cookie,
    pub tls: Option<PeerTls>,
}

impl From<Cookie> for PeerAuth {
    /// The cookie alone, over plain TCP.
    fn from(cookie: Cookie) -> PeerAuth {
        PeerAuth { cookie, tls: None }
    }
}

impl From<&Cookie> for PeerAuth {
    fn from(cookie: &Cookie) -> PeerAuth {
        PeerAuth::from(cookie.clone())
    }
}

impl From<&PeerAuth> for PeerAuth {
    fn from(auth: &PeerAuth) -> PeerAuth {
        auth.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        let ip = server_name("127.0.0.1:25672").expect("an IP");
        assert!(matches!(ip, ServerName::IpAddress(_)), "{ip:?}");
        let v6 = server_name("[::1]:25672").expect("an IPv6 address");
        assert!(matches!(v6, ServerName::IpAddress(_)), "{v6:?}");
        let dns = server_name("node1.example:25672").expect("a DNS name");
        assert!(matches!(dns, ServerName::DnsName(_)), "{dns:?}");
        assert!(server_name("bad name!:1").is_err());
    }
}
