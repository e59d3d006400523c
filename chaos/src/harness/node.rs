//! One node of a chaos run as the harness sees it: its process (pid file, start line), its
//! XFS mount and image, its config and its log.
//!
//! `chaos/run` writes `nI.toml`, `nI.start` (the start line, one argument a line), `nI.pid`,
//! `nI.img` and mounts it on `nI/`; the harness restarts a node with exactly the start line
//! chaos/run used and keeps the pid file current, so teardown kills the right process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a killed process may take to disappear.
const EXIT_WAIT: Duration = Duration::from_secs(10);

pub struct ChaosNode {
    /// Raft node id, 1-based.
    pub id: u64,
    /// "n1", "n2" ...: the name in history events.
    pub name: String,
    /// The node's address, 10.213.0.<id>.
    pub ip: String,
    /// A RAM node (`role = "ram"`): no log on disk; every start is a new incarnation.
    pub ram: bool,
    pub mount: PathBuf,
    pub image: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pid_file: PathBuf,
    start_file: PathBuf,
}

impl ChaosNode {
    pub fn new(run_dir: &Path, out_dir: &Path, id: u64) -> ChaosNode {
        let name = format!("n{id}");
        ChaosNode {
            id,
            ip: format!("10.213.0.{id}"),
            ram: false,
            mount: run_dir.join(&name),
            image: run_dir.join(format!("{name}.img")),
            config: run_dir.join(format!("{name}.toml")),
            log: out_dir.join("nodes").join(format!("{name}.log")),
            pid_file: run_dir.join(format!("{name}.pid")),
            start_file: run_dir.join(format!("{name}.start")),
            name,
        }
    }

    /// The node's network namespace.
    pub fn netns(&self) -> String {
        format!("wn{}", self.id)
    }

    /// The node's data directory (on the XFS mount).
    pub fn data_dir(&self) -> PathBuf {
        self.mount.join("data")
    }

    pub fn amqp_uri(&self) -> String {
        format!("amqp://guest:guest@{}:5672/%2f", self.ip)
    }

    pub fn pid(&self) -> anyhow::Result<i32> {
        let text = std::fs::read_to_string(&self.pid_file)
            .with_context(|| format!("read {}", self.pid_file.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("parse pid in {}", self.pid_file.display()))
    }

    /// Whether the process runs (a zombie does not: it waits for its parent to reap it).
    pub fn alive(&self) -> bool {
        let Ok(pid) = self.pid() else { return false };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state is the field after the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    pub fn signal(&self, sig: i32) -> anyhow::Result<()> {
        let pid = self.pid()?;
        // SAFETY: kill(2) has no memory effects; the pid is the node's own.
        let rc = unsafe { libc::kill(pid, sig) };
        anyhow::ensure!(rc == 0 || !self.alive(), "kill -{sig} {pid} failed");
        Ok(())
    }

    /// SIGKILL, then wait for the process to be gone. A stopped process dies too.
    pub async fn kill9(&self) -> anyhow::Result<()> {
        if !self.alive() {
            return Ok(());
        }
        self.signal(libc::SIGKILL)?;
        self.wait_exit(EXIT_WAIT).await
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while self.alive() {
            anyhow::ensure!(start.elapsed() < limit, "{} did not exit", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Starts the node with chaos/run's start line, its output appended to its log.
    pub fn start(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.alive(), "{} is already running", self.name);
        let text = std::fs::read_to_string(&self.start_file)
            .with_context(|| format!("read {}", self.start_file.display()))?;
        let args: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let (program, rest) = args.split_first().context("empty start line")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let mut child = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", self.name))?;
        std::fs::write(&self.pid_file, format!("{}\n", child.id()))?;
        // Reap it whenever it exits, so a dead node is not a zombie that looks alive.
        std::thread::spawn(move || child.wait());
        Ok(())
    }

    /// What the node's log holds after the last marker that contains `what`.
    pub fn log_after_mark(&self, what: &str) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let marker = format!("=== warren-chaos: {what}");
        match text.rfind(&marker) {
            Some(at) => text[at..].to_string(),
            None => String::new(),
        }
    }

    /// Appends a marker line to the node's log, so a reader sees where faults fell.
    pub fn mark(&self, what: &str) {
        let line = format!("=== warren-chaos: {what}\n");
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&self.log) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
