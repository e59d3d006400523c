//! Shared by the process tests: run the real `warren` binary on a free port.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `warren server`; killed (SIGKILL) when dropped or by `kill`.
pub struct Warren {
    child: Child,
}

impl Warren {
    /// kill -9, and reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes a config in `dir` for a free port and a data directory inside `dir`.
pub fn write_config(dir: &Path) -> (PathBuf, SocketAddr) {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a free port");
    let config = dir.join("warren.toml");
    let data = dir.join("data");
    let text = format!(
        "amqp_listen = \"{addr}\"\ndata_dir = \"{}\"\n",
        data.display()
    );
    std::fs::write(&config, text).expect("write config");
    (config, addr)
}

/// Starts `warren server --config CONFIG` and returns once it accepts connections.
pub fn start(config: &Path, addr: SocketAddr) -> Warren {
    let child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["server", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn warren");
    let warren = Warren { child };
    // Bounded poll: the listener opens after the Raft node has recovered and leads.
    for _ in 0..400 {
        if TcpStream::connect(addr).is_ok() {
            return warren;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("warren did not listen on {addr}");
}
