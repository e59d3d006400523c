//! `warren dev-cluster`: three nodes on this machine with embedded defaults (AMQP 5672-5674,
//! cluster ports 25672-25674), data and cookie under one directory, until Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::Context;

use crate::cluster::cookie::Cookie;

/// The three nodes' configuration, written into `dir`.
fn node_config(dir: &Path, id: u16, base_port: u16) -> String {
    let peers: String = (1..=3u16)
        .map(|p| {
            format!(
                "\n[[peers]]\nid = {p}\ncluster = \"127.0.0.1:{}\"\namqp = \"127.0.0.1:{}\"\n",
                base_port + 20000 + p - 1,
                base_port + p - 1
            )
        })
        .collect();
    format!(
        "node_name = \"warren{id}@localhost\"\nnode_id = {id}\n\
         amqp_listen = \"127.0.0.1:{}\"\ncluster_listen = \"127.0.0.1:{}\"\n\
         data_dir = \"{}\"\ncookie_file = \"{}\"\n{peers}",
        base_port + id - 1,
        base_port + 20000 + id - 1,
        dir.join(format!("node{id}")).display(),
        dir.join("cookie").display(),
    )
}

/// Writes the configs (and a cookie if there is none), starts the three nodes and waits.
pub fn run(dir: &Path, base_port: u16) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let cookie = dir.join("cookie");
    if !cookie.exists() {
        Cookie::generate()?
            .write_new(&cookie)
            .context("write cluster cookie")?;
    }
    let exe = std::env::current_exe().context("find the warren binary")?;
    let mut children = Vec::new();
    for id in 1..=3u16 {
        let config = dir.join(format!("node{id}.toml"));
        std::fs::write(&config, node_config(dir, id, base_port))?;
        let log = std::fs::File::create(dir.join(format!("node{id}.log")))?;
        let child = Command::new(&exe)
            .args(["server", "--config"])
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start node {id}"))?;
        children.push(Nodes(child));
    }
    let ready = (0..3).all(|i| wait_for_port(base_port + i, Duration::from_secs(30)));
    print_banner(dir, base_port, ready);
    wait_for_ctrl_c_or_exit(&mut children);
    Ok(())
}

/// A child node, killed when dropped.
struct Nodes(Child);

impl Drop for Nodes {
    fn drop(&mut self) {
        // SIGTERM first would be kinder; the nodes are crash-safe, so SIGKILL is fine here.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        // A connection to ourselves (TCP simultaneous open on a free local port) does not
        // mean the node listens.
        let connected = std::net::TcpStream::connect(("127.0.0.1", port));
        if connected.is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn print_banner(dir: &Path, base_port: u16, ready: bool) {
    let state = if ready { "running" } else { "starting (slow?)" };
    println!(
        "Warren dev cluster {state}: three nodes, data and logs in {}",
        dir.display()
    );
    for i in 0..3 {
        println!(
            "  node{}  amqp://guest:guest@127.0.0.1:{}/",
            i + 1,
            base_port + i
        );
    }
    println!(
        "Status:  warren cluster-status --config {}",
        dir.join("node1.toml").display()
    );
    println!("Stop:    Ctrl-C");
}

/// Runs until Ctrl-C or until every node has exited. A node that dies (or is killed, to
/// try failover) is reported and the others keep running; restart it by hand with
/// `warren server --config <dir>/nodeN.toml`.
fn wait_for_ctrl_c_or_exit(children: &mut [Nodes]) {
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = ctrlc_channel(tx);
    let mut exited = vec![false; children.len()];
    loop {
        if rx.recv_timeout(Duration::from_millis(500)).is_ok() {
            println!("stopping the nodes");
            return;
        }
        for (i, node) in children.iter_mut().enumerate() {
            if exited[i] {
                continue;
            }
            if let Ok(Some(status)) = node.0.try_wait() {
                exited[i] = true;
                println!("node{} exited ({status}); see node{}.log", i + 1, i + 1);
            }
        }
        if exited.iter().all(|e| *e) {
            return;
        }
    }
}

/// Delivers SIGINT/SIGTERM as a message (no extra crate: a tokio runtime just for this).
fn ctrlc_channel(tx: std::sync::mpsc::Sender<()>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
            let _ = tx.send(());
        })
    });
    Ok(())
}

/// The default directory of `dev-cluster`.
pub fn default_dir() -> PathBuf {
    PathBuf::from("warren-dev")
}
