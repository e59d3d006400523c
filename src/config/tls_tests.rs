use std::path::Path;

use super::super::NodeConfig;
use super::TlsVerify;

/// A self-signed certificate and its key written to `dir` as `name.pem` and `name.key`.
fn write_pair(dir: &Path, name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("generate key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("self-sign");
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

fn problems(text: &str) -> String {
    NodeConfig::parse(text)
        .expect_err("an invalid config")
        .to_string()
}

#[test]
fn a_certificate_and_key_turn_amqps_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_pair(dir.path(), "node");
    let text = format!("tls_cert_file = \"{cert}\"\ntls_key_file = \"{key}\"\n");
    let config = NodeConfig::parse(&text).expect("valid");
    assert_eq!(config.amqps_addr().map(|a| a.port()), Some(5671));
    let off = NodeConfig::parse(&format!("{text}amqps_listen = \"none\"\n")).expect("valid");
    assert_eq!(off.amqps_addr(), None);
    let tls_only = NodeConfig::parse(&format!("{text}amqp_listen = \"none\"\n")).expect("valid");
    assert_eq!(tls_only.amqp_listen, None);
    assert_eq!(tls_only.client_addr().port(), 5671);
}

#[test]
fn bad_files_are_named_by_field_with_the_other_wrong_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let text = format!(
        "frame_max = 1\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_ca_file = \"{}\"\n",
        dir.path().join("missing.pem").display(),
        garbage.display(),
        garbage.display(),
    );
    let err = NodeConfig::parse(&text).expect_err("invalid");
    assert_eq!(err.problems.len(), 4, "{err}");
    let text = err.to_string();
    assert!(text.contains("frame_max"), "{text}");
    assert!(text.contains("tls_cert_file: cannot read"), "{text}");
    assert!(
        text.contains("tls_key_file:") && text.contains("PRIVATE KEY"),
        "{text}"
    );
    assert!(
        text.contains("tls_ca_file:") && text.contains("CERTIFICATE"),
        "{text}"
    );
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _) = write_pair(dir.path(), "one");
    let (_, other_key) = write_pair(dir.path(), "two");
    let text = format!("tls_cert_file = \"{cert}\"\ntls_key_file = \"{other_key}\"\n");
    let err = problems(&text);
    assert!(err.contains("tls_key_file: the key does not fit"), "{err}");
}

#[test]
fn tls_settings_that_need_others_say_which() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_pair(dir.path(), "node");
    let err = problems("amqps_listen = \"127.0.0.1:5671\"\n");
    assert!(
        err.contains("amqps_listen: AMQPS needs tls_cert_file"),
        "{err}"
    );
    let err = problems("amqp_listen = \"none\"\n");
    assert!(err.contains("leaves no AMQP listener"), "{err}");
    let err = problems(&format!("tls_cert_file = \"{cert}\"\n"));
    assert!(err.contains("tls_key_file: missing"), "{err}");
    let pair = format!("tls_cert_file = \"{cert}\"\ntls_key_file = \"{key}\"\n");
    let err = problems(&format!("{pair}tls_verify = \"verify_peer\"\n"));
    assert!(
        err.contains("tls_verify: verify_peer needs tls_ca_file"),
        "{err}"
    );
    let err = problems(&format!("{pair}tls_fail_if_no_peer_cert = true\n"));
    assert!(err.contains("tls_fail_if_no_peer_cert: needs"), "{err}");
    let err = problems(&format!("{pair}cluster_tls = true\n"));
    assert!(err.contains("cluster_tls: needs tls_ca_file"), "{err}");
    let err = problems("tls_verify = \"verify_everything\"\ncluster_tls = 1\n");
    assert!(
        err.contains("tls_verify: expected") && err.contains("cluster_tls: expected true or false"),
        "{err}"
    );
}

#[test]
fn client_verification_settings_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_pair(dir.path(), "node");
    let text = format!(
        "tls_cert_file = \"{cert}\"\ntls_key_file = \"{key}\"\ntls_ca_file = \"{cert}\"\n\
         tls_verify = \"verify_peer\"\ntls_fail_if_no_peer_cert = true\ncluster_tls = true\n"
    );
    let config = NodeConfig::parse(&text).expect("valid");
    assert_eq!(config.tls.verify, TlsVerify::VerifyPeer);
    assert!(config.tls.fail_if_no_peer_cert && config.tls.cluster);
    crate::tls::amqps::server_config(&config.tls).expect("AMQPS server config");
    crate::tls::cluster::configs(&config.tls).expect("cluster TLS configs");
}
