//! Certificates for the TLS tests, made with rcgen: a CA, certificates it signs for nodes and
//! clients (each written as PEM files), and the lapin TLS settings that trust the CA.

use std::path::{Path, PathBuf};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A certificate authority whose certificate is written to `<dir>/<name>-ca.pem`.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub cert_file: PathBuf,
    dir: PathBuf,
}

/// A certificate signed by a [`Ca`], and its key, as PEM text and files.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its certificate written in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().expect("generate CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign the CA");
        let cert_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&cert_file, issuer.pem()).expect("write CA certificate");
        Ca {
            issuer,
            cert_file,
            dir: dir.to_path_buf(),
        }
    }

    /// The CA certificate as PEM text.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `name` naming 127.0.0.1 and localhost (a node's or a client's),
    /// written to `<dir>/<name>.pem` and `<dir>/<name>.key`.
    pub fn leaf(&self, name: &str) -> Leaf {
        let sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("generate key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let leaf = Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_file: self.dir.join(format!("{name}.pem")),
            key_file: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&leaf.cert_file, &leaf.cert_pem).expect("write certificate");
        std::fs::write(&leaf.key_file, &leaf.key_pem).expect("write key");
        leaf
    }
}

impl Leaf {
    /// Config lines naming this certificate and key, and `ca` as the CA.
    pub fn config(&self, ca: &Ca) -> String {
        format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_ca_file = \"{}\"\n",
            self.cert_file.display(),
            self.key_file.display(),
            ca.cert_file.display()
        )
    }

    /// lapin's TLS settings: trust `ca`, and present this certificate.
    pub fn client_tls(&self, ca: &Ca) -> OwnedTLSConfig {
        OwnedTLSConfig {
            identity: Some(OwnedIdentity::PKCS8 {
                pem: self.cert_pem.clone().into_bytes(),
                key: self.key_pem.clone().into_bytes(),
            }),
            cert_chain: Some(ca.pem()),
        }
    }
}

/// lapin's TLS settings that trust `ca` and present no certificate.
pub fn trusting(ca: &Ca) -> OwnedTLSConfig {
    OwnedTLSConfig {
        identity: None,
        cert_chain: Some(ca.pem()),
    }
}
