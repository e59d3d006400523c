//! TLS with rustls (docs/decisions/0004-tls-rustls.md): the server configuration of the
//! AMQPS listener and the mutual-TLS configurations of the cluster transport, built from the
//! PEM files the node's configuration names. It owns no socket: `server::listener` and
//! `cluster::tls` wrap their TCP streams with what is built here.
//!
//! One crypto provider (ring) is named explicitly everywhere, so no process-wide default
//! has to be installed and a dependency that enables another provider cannot make the
//! choice ambiguous.

pub mod amqps;
pub mod cluster;
pub mod pem;

use std::sync::Arc;

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSettings;

/// The crypto provider of every TLS configuration the node builds.
pub fn provider() -> Arc<CryptoProvider> {
    // rustls 0.23.48 deprecates ring's provider because it has no post-quantum key exchange
    // (X25519MLKEM768). Kept, knowingly, for its build cost (ADR 0004): the key exchange
    // is classical X25519/ECDHE, which protects today's traffic.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// This node's certificate chain and private key (`tls_cert_file`, `tls_key_file`).
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    fn load(settings: &TlsSettings) -> anyhow::Result<Identity> {
        let (Some(cert_file), Some(key_file)) = (&settings.cert_file, &settings.key_file) else {
            anyhow::bail!("tls_cert_file and tls_key_file must both be set");
        };
        let chain = pem::certificates(cert_file)
            .map_err(anyhow::Error::msg)
            .context("tls_cert_file")?;
        let key = pem::private_key(key_file)
            .map_err(anyhow::Error::msg)
            .context("tls_key_file")?;
        Ok(Identity { chain, key })
    }
}

/// The CA certificates of `tls_ca_file`, which must be set.
fn ca_roots(settings: &TlsSettings) -> anyhow::Result<Arc<rustls::RootCertStore>> {
    let path = settings
        .ca_file
        .as_ref()
        .context("tls_ca_file is not set")?;
    pem::ca_roots(path)
        .map_err(anyhow::Error::msg)
        .context("tls_ca_file")
}
