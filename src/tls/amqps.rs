//! The AMQPS listener's TLS server configuration: this node's certificate, and client
//! certificates asked for and verified as RabbitMQ's `verify_peer` and
//! `fail_if_no_peer_cert` say.

use std::sync::Arc;

use anyhow::Context;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::{ca_roots, provider, Identity};
use crate::config::{TlsSettings, TlsVerify};

/// The server configuration of AMQPS connections.
pub fn server_config(settings: &TlsSettings) -> anyhow::Result<Arc<ServerConfig>> {
    let identity = Identity::load(settings)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("choose TLS versions")?;
    let builder = match settings.verify {
        TlsVerify::VerifyNone => builder.with_no_client_auth(),
        TlsVerify::VerifyPeer => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(ca_roots(settings)?, provider());
            // Without fail_if_no_peer_cert a client may send no certificate (RabbitMQ's
            // default); one it does send must still chain to the CA.
            let verifier = match settings.fail_if_no_peer_cert {
                true => verifier,
                false => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .context("tls_ca_file: build the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(identity.chain, identity.key)
        .context("tls_key_file: the key does not fit the certificate of tls_cert_file")?;
    Ok(Arc::new(config))
}
