//! `warren server --detach` and `warren stop`: a node in the background with a pid file (as
//! `rabbitmq-server -detached`), and its graceful stop.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use crate::config::NodeConfig;
use crate::limits::{DETACH_POLL, DETACH_WAIT};

pub fn pid_file(config: &NodeConfig) -> PathBuf {
    config.data_dir.join("warren.pid")
}

fn log_file(config: &NodeConfig) -> PathBuf {
    config.data_dir.join("warren.log")
}

/// Starts `warren server [--config FILE]` in its own process group, its output appended to
/// `<data_dir>/warren.log`, writes its pid file, and returns once it accepts AMQP
/// connections (or fails with the end of its log if it exits first).
pub fn spawn(config_path: Option<&Path>, config: &NodeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create {}", config.data_dir.display()))?;
    let log_path = log_file(config);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    let mut command = Command::new(std::env::current_exe().context("find own binary")?);
    command.arg("server");
    if let Some(path) = config_path {
        command.arg("--config").arg(path);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0) // not killed with the shell that started it
        .spawn()
        .context("start the background node")?;
    let pid_path = pid_file(config);
    std::fs::write(&pid_path, format!("{}\n", child.id()))
        .with_context(|| format!("write {}", pid_path.display()))?;
    let deadline = Instant::now() + DETACH_WAIT;
    loop {
        if std::net::TcpStream::connect(config.client_addr())
            .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
        {
            println!(
                "warren {} running in the background, pid {} ({}), log {}",
                config.node_name,
                child.id(),
                pid_path.display(),
                log_path.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let _ = std::fs::remove_file(&pid_path);
            anyhow::bail!("the node exited ({status}); {}", log_tail(&log_path));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the node did not listen on {} within {DETACH_WAIT:?}; {}",
            config.client_addr(),
            log_tail(&log_path)
        );
        std::thread::sleep(DETACH_POLL);
    }
}

/// Whether `pid` runs: it exists and is not a zombie (its parent, the shell that ran
/// `--detach`, is gone, and a container's pid 1 may never reap it).
fn alive(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The last lines of a log, for an error message.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    format!("end of {}:\n{tail}", path.display())
}

/// Stops the node `config` describes: a cluster member is asked over the cluster transport
/// (it hands leadership over first); a single node gets SIGTERM through its pid file. Both
/// stop the same graceful way.
pub fn stop(config: &NodeConfig) -> anyhow::Result<()> {
    if config.is_clustered() {
        let runtime = tokio::runtime::Runtime::new()?;
        return runtime.block_on(super::membership::stop(config));
    }
    let path = pid_file(config);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "read {} (was the node started with --detach?)",
            path.display()
        )
    })?;
    let pid: libc::pid_t = text
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", path.display()))?;
    // SAFETY: kill(2) has no memory effects; a stale pid gives ESRCH, reported below.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        anyhow::bail!("signal pid {pid}: {}", std::io::Error::last_os_error());
    }
    let deadline = Instant::now() + DETACH_WAIT;
    while alive(pid) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "pid {pid} still runs after {DETACH_WAIT:?}"
        );
        std::thread::sleep(DETACH_POLL);
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}
