//! PEM files to the DER values rustls takes. Every error is a sentence about the file (the
//! config loader puts the field's name in front), never a panic: these are bytes from disk.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates of a PEM file, in file order (a chain: the node's certificate first).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{} holds no CERTIFICATE block (a PEM file is expected)",
            path.display()
        ));
    }
    Ok(certificates)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1; the first one found).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "{} holds no PRIVATE KEY block (an unencrypted PEM key is expected)",
            path.display()
        ),
        other => format!("{} is not valid PEM: {other}", path.display()),
    })
}

/// The CA certificates of a PEM file, as the trust anchors peers are verified against.
pub fn ca_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for (i, certificate) in certificates(path)?.into_iter().enumerate() {
        roots
            .add(certificate)
            .map_err(|e| format!("certificate {i} of {} is unusable: {e}", path.display()))?;
    }
    Ok(Arc::new(roots))
}

/// The chain and key as one signing identity, checked to belong together (the key's public
/// half is the first certificate's).
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(chain, key, &super::provider())
        .map_err(|e| format!("the key does not fit the certificate: {e}"))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
