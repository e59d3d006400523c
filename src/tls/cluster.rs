//! Mutual TLS between nodes (`cluster_tls`): every node presents its certificate on both
//! sides of a peer connection and accepts only peers whose certificate chains to the CA of
//! `tls_ca_file`. The command-line tools connect with the certificate of the config they
//! are given, so they need a node's (or any CA-signed) certificate and key too.
//!
//! A client checks the server's certificate names the host of the address it dialled (a
//! cluster address is an IP: the certificate needs that IP as a subjectAltName). A server
//! does not check a client certificate's name: a client may be a command-line tool, and the
//! cookie handshake inside the TLS session proves membership of this cluster.

use std::sync::Arc;

use anyhow::Context;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};

use super::{ca_roots, provider, Identity};
use crate::config::TlsSettings;

/// The two sides of a node's peer connections.
pub struct ClusterTlsConfigs {
    /// For connections this node accepts: a client certificate is required.
    pub server: Arc<ServerConfig>,
    /// For connections this node opens: the server is verified against the CA.
    pub client: Arc<ClientConfig>,
}

/// Builds both sides from the configured certificate, key and CA.
pub fn configs(settings: &TlsSettings) -> anyhow::Result<ClusterTlsConfigs> {
    let roots = ca_roots(settings)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .context("tls_ca_file: build the peer certificate verifier")?;
    let identity = Identity::load(settings)?;
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("choose TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .context("tls_key_file: the key does not fit the certificate of tls_cert_file")?;
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("choose TLS versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain, identity.key)
        .context("tls_key_file: the key does not fit the certificate of tls_cert_file")?;
    Ok(ClusterTlsConfigs {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}
