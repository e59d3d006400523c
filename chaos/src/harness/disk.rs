//! Disk faults on a node's XFS image: a power cut (XFS shutdown without log flush: unsynced
//! writes vanish, fsync'd ones stay), EIO on a live node, a full disk, and a cut log tail.
//! Every change to a file is described (file, offset, bytes) so a loss can be attributed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::exec;
use super::node::ChaosNode;

/// Space left free by `fill`, so the filesystem itself keeps working.
const FILL_SLACK_BYTES: u64 = 1 << 20;
/// umount attempts, 100 ms apart.
const UMOUNT_TRIES: u32 = 50;

/// `xfs_io -x -c shutdown`: from now on every write and fsync fails with EIO, and nothing
/// not yet on disk will ever reach it (no `-f`: the log is not flushed).
pub async fn shutdown(node: &ChaosNode) -> anyhow::Result<()> {
    let mount = path_str(&node.mount)?;
    exec::run("xfs_io", &["-x", "-c", "shutdown", mount]).await?;
    Ok(())
}

/// Unmounts and mounts the image again: what a reboot after a power cut sees.
pub async fn remount(node: &ChaosNode) -> anyhow::Result<()> {
    if mounted(node)? {
        umount(node).await?;
    }
    let (mount, image) = (path_str(&node.mount)?, path_str(&node.image)?);
    exec::run("mount", &["-o", "loop", image, mount]).await?;
    Ok(())
}

/// Unmounts, retrying while the mount is busy: a killed multi-threaded process can look gone
/// (its main thread a zombie) while its other threads still close their files.
async fn umount(node: &ChaosNode) -> anyhow::Result<()> {
    let mount = path_str(&node.mount)?;
    let mut last = None;
    for _ in 0..UMOUNT_TRIES {
        match exec::run("umount", &[mount]).await {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("umount {mount}")))
}

/// Whether the image is mounted, from the mount table (`mountpoint` cannot tell on a
/// shut-down XFS: its stat fails with EIO).
pub fn mounted(node: &ChaosNode) -> anyhow::Result<bool> {
    let table = std::fs::read_to_string("/proc/self/mounts").context("read /proc/self/mounts")?;
    let mount = path_str(&node.mount)?;
    Ok(table
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(mount)))
}

/// Whether the node's filesystem is mounted and answers (not shut down).
pub fn healthy(node: &ChaosNode) -> bool {
    mounted(node).unwrap_or(false) && std::fs::metadata(node.data_dir()).is_ok()
}

/// Fills the node's filesystem to `FILL_SLACK_BYTES` of free space; returns bytes taken.
pub async fn fill(node: &ChaosNode) -> anyhow::Result<u64> {
    let mount = path_str(&node.mount)?;
    let df = exec::run("df", &["--output=avail", "-B1", mount]).await?;
    let avail: u64 = df
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("parse df")?;
    let bytes = avail.saturating_sub(FILL_SLACK_BYTES);
    let file = fill_file(node);
    let file = path_str(&file)?;
    exec::run("fallocate", &["-l", &bytes.to_string(), file]).await?;
    Ok(bytes)
}

/// Frees what `fill` took.
pub fn unfill(node: &ChaosNode) -> anyhow::Result<()> {
    match std::fs::remove_file(fill_file(node)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn fill_file(node: &ChaosNode) -> PathBuf {
    node.mount.join("fill")
}

/// The newest segment of the node's Raft log (`data/raft-log/NNNNNNNN.log`,
/// src/raft/log_store.rs): the one appends go to.
pub fn newest_segment(node: &ChaosNode) -> anyhow::Result<PathBuf> {
    let dir = node.data_dir().join("raft-log");
    let mut newest: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if newest.as_ref().is_none_or(|(m, _)| n > *m) {
            newest = Some((n, entry.path()));
        }
    }
    newest
        .map(|(_, p)| p)
        .with_context(|| format!("no segment in {}", dir.display()))
}

/// Cuts `bytes` (at most half the file, so a tail is left to find) off the end of `file`;
/// returns (old length, bytes cut).
pub fn truncate_tail(file: &Path, bytes: u64) -> anyhow::Result<(u64, u64)> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .with_context(|| format!("open {}", file.display()))?;
    let len = f.metadata()?.len();
    let cut = bytes.min(len / 2);
    f.set_len(len - cut)?;
    f.sync_all()?;
    Ok((len, cut))
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("non-UTF-8 path {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_segment_is_found_and_a_cut_leaves_half() {
        let run = tempfile::tempdir().expect("tempdir");
        let node = ChaosNode::new(run.path(), run.path(), 1);
        let log_dir = node.data_dir().join("raft-log");
        std::fs::create_dir_all(&log_dir).expect("mkdir");
        for (name, len) in [("00000002.log", 100), ("00000010.log", 1000), ("x.log", 5)] {
            std::fs::write(log_dir.join(name), vec![7u8; len]).expect("write");
        }
        let newest = newest_segment(&node).expect("newest");
        assert_eq!(newest, log_dir.join("00000010.log"));
        assert_eq!(truncate_tail(&newest, 10).expect("cut"), (1000, 10));
        assert_eq!(truncate_tail(&newest, 5000).expect("cut"), (990, 495));
        assert_eq!(std::fs::metadata(&newest).expect("stat").len(), 495);
        std::fs::remove_dir_all(&log_dir).expect("rm");
        assert!(newest_segment(&node).is_err());
    }
}
