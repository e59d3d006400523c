//! The TLS part of the node configuration: the `tls_*` keys and `cluster_tls`, and their
//! checks. The files are read when the config is (so `warren check-config` and a node's
//! start name a bad path or key with the other wrong fields), and read again when the node
//! builds its TLS configurations (`crate::tls`).

use std::path::PathBuf;

use super::NodeConfig;
use crate::tls::pem;

/// The TLS keys of the file (`tls_*`, `cluster_tls`). Paths are as written (relative ones
/// are relative to the node's working directory, as `data_dir`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, this node's certificate first (`tls_cert_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (`tls_key_file`).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that client and peer certificates are verified against
    /// (`tls_ca_file`).
    pub ca_file: Option<PathBuf>,
    /// Whether AMQPS asks clients for a certificate and verifies it (`tls_verify`, as
    /// RabbitMQ's `ssl_options.verify`).
    pub verify: TlsVerify,
    /// Whether AMQPS refuses a client without a certificate (`tls_fail_if_no_peer_cert`);
    /// only with `verify_peer`.
    pub fail_if_no_peer_cert: bool,
    /// Whether peer connections (and the CLI's) run over mutually verified TLS
    /// (`cluster_tls`).
    pub cluster: bool,
}

/// RabbitMQ's `verify_none` / `verify_peer` for AMQPS clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVerify {
    /// No client certificate is asked for.
    #[default]
    VerifyNone,
    /// A client certificate is asked for and, when sent, must chain to `tls_ca_file`.
    VerifyPeer,
}

impl NodeConfig {
    /// Reads each configured TLS file; a problem is named by its field.
    pub(super) fn check_tls_files(&self, problems: &mut Vec<String>) {
        let tls = &self.tls;
        let chain = tls.cert_file.as_ref().map(|path| pem::certificates(path));
        let key = tls.key_file.as_ref().map(|path| pem::private_key(path));
        if let Some(Err(e)) = &chain {
            problems.push(format!("tls_cert_file: {e}"));
        }
        if let Some(Err(e)) = &key {
            problems.push(format!("tls_key_file: {e}"));
        }
        if let (Some(Ok(chain)), Some(Ok(key))) = (chain, key) {
            if let Err(e) = pem::certified_key(chain, key) {
                problems.push(format!("tls_key_file: {e} of tls_cert_file"));
            }
        }
        if let Some(Err(e)) = tls.ca_file.as_ref().map(|path| pem::ca_roots(path)) {
            problems.push(format!("tls_ca_file: {e}"));
        }
    }

    /// Checks between the TLS keys and the listeners. `amqps_set`: the file names
    /// `amqps_listen` (an AMQPS address without a certificate would listen nowhere).
    pub(super) fn check_tls_relations(&self, amqps_set: bool, problems: &mut Vec<String>) {
        let tls = &self.tls;
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => problems.push("tls_key_file: missing (tls_cert_file is set)".into()),
            (None, Some(_)) => problems.push("tls_cert_file: missing (tls_key_file is set)".into()),
            _ => {}
        }
        if amqps_set && self.amqps_listen.is_some() && tls.cert_file.is_none() {
            problems.push("amqps_listen: AMQPS needs tls_cert_file and tls_key_file".into());
        }
        if tls.verify == TlsVerify::VerifyPeer && tls.ca_file.is_none() {
            problems.push("tls_verify: verify_peer needs tls_ca_file".into());
        }
        if tls.fail_if_no_peer_cert && tls.verify != TlsVerify::VerifyPeer {
            // RabbitMQ ignores it then; a refusal that silently does nothing is worse.
            problems.push("tls_fail_if_no_peer_cert: needs tls_verify = \"verify_peer\"".into());
        }
        if tls.cluster {
            for (set, field) in [
                (tls.cert_file.is_some(), "tls_cert_file"),
                (tls.key_file.is_some(), "tls_key_file"),
                (tls.ca_file.is_some(), "tls_ca_file"),
            ] {
                if !set {
                    problems.push(format!("cluster_tls: needs {field}"));
                }
            }
        }
        match (self.amqp_listen, self.amqps_addr()) {
            (None, None) => problems.push(
                "amqp_listen: \"none\" leaves no AMQP listener (configure AMQPS: tls_cert_file \
                 and tls_key_file)"
                    .into(),
            ),
            (Some(plain), Some(tls)) if plain == tls => {
                problems.push(format!("amqps_listen: {tls} is amqp_listen's address too"))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
