//! A `warren` node run as a real process on a free loopback port, for process tests.
//!
//! The chaos crate depends on warren's library, not its binary, so Cargo gives it no
//! `CARGO_BIN_EXE_warren`: the binary is found through `WARREN_BIN` or in the workspace's
//! `target/debug`. A missing binary is a test failure that says how to build it, never a
//! silent skip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Polls of the AMQP port while a node starts, and the pause between them (10 s in all).
const LISTEN_POLLS_MAX: u32 = 400;
const LISTEN_POLL: Duration = Duration::from_millis(25);

/// The `warren` binary: `$WARREN_BIN`, else `<workspace>/target/debug/warren`.
pub fn warren_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WARREN_BIN") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("debug")
        .join("warren")
}

/// A running `warren server`; killed (SIGKILL) and reaped when dropped.
pub struct WarrenNode {
    child: Child,
    pub addr: SocketAddr,
}

impl WarrenNode {
    /// Starts a node whose config and data live in `dir`; returns once it accepts AMQP.
    pub fn start(dir: &Path) -> WarrenNode {
        let bin = warren_bin();
        assert!(
            bin.is_file(),
            "warren binary not found at {}: run `cargo build --bin warren` first, \
             or set WARREN_BIN",
            bin.display()
        );
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("pick a free port");
        let config = dir.join("warren.toml");
        let text = format!(
            "amqp_listen = \"{addr}\"\ncluster_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            dir.join("data").display()
        );
        std::fs::write(&config, text).expect("write config");
        let child = Command::new(&bin)
            .args(["server", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut node = WarrenNode { child, addr };
        for _ in 0..LISTEN_POLLS_MAX {
            // A connection to ourselves (TCP simultaneous open on a free local port) does
            // not mean the node listens.
            if TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok()) {
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("warren exited before listening: {status}");
            }
            std::thread::sleep(LISTEN_POLL);
        }
        panic!("warren did not listen on {addr}");
    }

    /// The AMQP URI of this node, as guest.
    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }
}

impl Drop for WarrenNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
