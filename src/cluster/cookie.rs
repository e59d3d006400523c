//! The cluster cookie: the secret every node of a cluster shares, read from a file.
//!
//! The file must be readable by its owner only; a cookie anyone on the machine can read is
//! no secret, so loading refuses it (as ssh refuses a private key with loose permissions).
//! The secret never leaves this type: peers prove they know it with an HMAC over fresh
//! nonces (see `handshake`), and `Debug` prints no byte of it.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::limits::COOKIE_BYTES_MIN;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;

/// The shared secret of a cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie {
    secret: Vec<u8>,
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cookie(<{} secret bytes>)", self.secret.len())
    }
}

impl Cookie {
    /// Reads the cookie from `path`, refusing a file that group or others may access at all.
    pub fn load(path: &Path) -> anyhow::Result<Cookie> {
        let mut file = std::fs::File::open(path)
            .with_context(|| format!("open cookie file {}", path.display()))?;
        let mode = file
            .metadata()
            .with_context(|| format!("read the mode of cookie file {}", path.display()))?
            .permissions()
            .mode();
        anyhow::ensure!(
            mode & 0o077 == 0,
            "cookie file {} has mode {:04o}; it must not be readable by group or others (chmod 600)",
            path.display(),
            mode & 0o7777
        );
        let mut text = String::new();
        file.read_to_string(&mut text)
            .with_context(|| format!("read cookie file {}", path.display()))?;
        Cookie::from_secret(text.trim()).with_context(|| format!("cookie file {}", path.display()))
    }

    /// A cookie from its secret text (surrounding whitespace is not part of it).
    pub fn from_secret(secret: &str) -> anyhow::Result<Cookie> {
        let secret = secret.trim();
        anyhow::ensure!(!secret.is_empty(), "the cookie is empty");
        anyhow::ensure!(
            secret.len() >= COOKIE_BYTES_MIN,
            "the cookie has {} bytes; it needs at least {COOKIE_BYTES_MIN}",
            secret.len()
        );
        Ok(Cookie {
            secret: secret.as_bytes().to_vec(),
        })
    }

    /// A fresh random cookie: 32 bytes from the kernel's generator, hex-encoded.
    pub fn generate() -> anyhow::Result<Cookie> {
        let bytes: [u8; 32] = random_bytes().context("read /dev/urandom for a new cookie")?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Cookie::from_secret(&hex)
    }

    /// Writes the cookie to a new file at `path` with mode 0600. An existing file is never
    /// overwritten: replacing a cluster's cookie would lock this node out of it.
    pub fn write_new(&self, path: &Path) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("create cookie file {}", path.display()))?;
        // The umask can only remove bits, but say it anyway: the file is the secret.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 cookie file {}", path.display()))?;
        file.write_all(&self.secret)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("write cookie file {}", path.display()))
    }

    /// HMAC-SHA256 keyed by the cookie over `label || a || b`. The label keeps a server's
    /// proof from ever being replayed as a client's.
    pub fn mac(&self, label: &[u8], a: &[u8], b: &[u8]) -> [u8; MAC_LEN] {
        self.hmac(label, a, b).finalize().into_bytes().into()
    }

    /// Checks `tag` against [`Cookie::mac`] in constant time.
    pub fn verify(&self, label: &[u8], a: &[u8], b: &[u8], tag: &[u8]) -> bool {
        self.hmac(label, a, b).verify_slice(tag).is_ok()
    }

    fn hmac(&self, label: &[u8], a: &[u8], b: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length, so new_from_slice cannot fail here.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.secret)
            .expect("HMAC accepts keys of any length");
        mac.update(label);
        mac.update(a);
        mac.update(b);
        mac
    }
}

/// `N` bytes from /dev/urandom (the kernel's CSPRNG; no userspace generator to seed).
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_with_mode(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_cookie_readable_by_others_is_refused_naming_file_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cookie");
        write_with_mode(&path, "0123456789abcdef0123\n", 0o644);
        let err = format!(
            "{:#}",
            Cookie::load(&path).expect_err("0644 must be refused")
        );
        assert!(err.contains("has mode 0644"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        write_with_mode(&path, "0123456789abcdef0123\n", 0o640);
        assert!(
            Cookie::load(&path).is_err(),
            "group-readable must be refused"
        );

        write_with_mode(&path, "0123456789abcdef0123\n", 0o600);
        let cookie = Cookie::load(&path).expect("0600 is fine");
        assert_eq!(
            cookie,
            Cookie::from_secret("0123456789abcdef0123").expect("ok")
        );
    }

    #[test]
    fn a_short_or_empty_cookie_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cookie");
        write_with_mode(&path, "  \n", 0o600);
        assert!(Cookie::load(&path).is_err());
        write_with_mode(&path, "short", 0o400);
        let err = format!("{:#}", Cookie::load(&path).expect_err("too short"));
        assert!(err.contains("at least 16"), "{err}");
    }

    #[test]
    fn a_generated_cookie_is_written_0600_and_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cookie");
        let cookie = Cookie::generate().expect("generate");
        assert_ne!(cookie, Cookie::generate().expect("generate"));
        cookie.write_new(&path).expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Cookie::load(&path).expect("load"), cookie);
        assert!(cookie.write_new(&path).is_err(), "never overwrite a cookie");
        assert!(!format!("{cookie:?}").contains(&String::from_utf8_lossy(&cookie.secret)[..8]));
    }

    #[test]
    fn the_mac_depends_on_cookie_label_and_order() {
        let a = Cookie::from_secret("aaaaaaaaaaaaaaaa").expect("ok");
        let b = Cookie::from_secret("bbbbbbbbbbbbbbbb").expect("ok");
        let tag = a.mac(b"warren-server", b"x", b"y");
        assert!(a.verify(b"warren-server", b"x", b"y", &tag));
        assert!(!b.verify(b"warren-server", b"x", b"y", &tag));
        assert!(!a.verify(b"warren-client", b"x", b"y", &tag));
        assert!(!a.verify(b"warren-server", b"y", b"x", &tag));
    }
}
