//! Disk faults on a node's XFS image: a power cut (XFS shutdown without log flush: unsynced
//! writes vanish, fsync'd ones stay), EIO on a live node, a full disk, and a cut, torn or
//! bit-flipped log.
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

/// The node's log segments (`raft-log/NNNNNNNN.log`): number, path and length.
fn segments(node: &ChaosNode) -> anyhow::Result<Vec<(u64, PathBuf, u64)>> {
    let dir = node.data_dir().join("raft-log");
    let mut out = Vec::new();
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
        out.push((n, entry.path(), entry.metadata()?.len()));
    }
    Ok(out)
}

/// The node's newest log segment: where its log's tail is.
pub fn newest_segment(node: &ChaosNode) -> anyhow::Result<PathBuf> {
    segments(node)?
        .into_iter()
        .max_by_key(|(n, _, _)| *n)
        .map(|(_, p, _)| p)
        .with_context(|| {
            format!(
                "no segment in {}",
                node.data_dir().join("raft-log").display()
            )
        })
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

/// The node's largest log segment: where a flipped bit most likely hits acknowledged records.
pub fn largest_segment(node: &ChaosNode) -> anyhow::Result<PathBuf> {
    segments(node)?
        .into_iter()
        .filter(|(_, _, len)| *len > 0)
        .max_by_key(|(_, _, len)| *len)
        .map(|(_, p, _)| p)
        .with_context(|| {
            format!(
                "no non-empty segment in {}",
                node.data_dir().join("raft-log").display()
            )
        })
}

/// Flips bit `bit` of the byte at `offset` in `file`, in place and synced; returns the old
/// and new byte.
pub fn flip_bit(file: &Path, offset: u64, bit: u32) -> anyhow::Result<(u8, u8)> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .with_context(|| format!("open {}", file.display()))?;
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut byte)?;
    let old = byte[0];
    byte[0] ^= 1 << (bit % 8);
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&byte)?;
    f.sync_all()?;
    Ok((old, byte[0]))
}

/// Appends a torn record to `file`: a well-formed header (src/raft/record.rs, version 2)
/// announcing `len` payload bytes, then only `written` < `len` of them. This is what a crash in
/// the middle of a write leaves: the opener must cut it away and start. Returns the old length.
pub fn append_torn_record(file: &Path, len: u32, written: u32) -> anyhow::Result<u64> {
    use std::io::Write;
    anyhow::ensure!(written < len, "a torn record writes less than it announces");
    let mut header = vec![2u8];
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    let header_crc = crc32c::crc32c(&header);
    header.extend_from_slice(&header_crc.to_le_bytes());
    header.extend(std::iter::repeat_n(0xa5u8, written as usize));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .with_context(|| format!("open {}", file.display()))?;
    let old_len = f.metadata()?.len();
    f.write_all(&header)?;
    f.sync_all()?;
    Ok(old_len)
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
        let largest = largest_segment(&node).expect("largest");
        assert_eq!(largest, log_dir.join("00000010.log"));
        assert_eq!(truncate_tail(&newest, 10).expect("cut"), (1000, 10));
        assert_eq!(truncate_tail(&newest, 5000).expect("cut"), (990, 495));
        assert_eq!(std::fs::metadata(&newest).expect("stat").len(), 495);
        std::fs::remove_dir_all(&log_dir).expect("rm");
        assert!(newest_segment(&node).is_err());
    }

    #[test]
    fn a_flip_changes_one_bit_and_a_torn_record_is_appended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("00000001.log");
        std::fs::write(&file, [0u8; 64]).expect("write");
        assert_eq!(flip_bit(&file, 10, 3).expect("flip"), (0, 8));
        let bytes = std::fs::read(&file).expect("read");
        assert_eq!(bytes.iter().filter(|&&b| b != 0).count(), 1);
        assert_eq!(append_torn_record(&file, 100, 40).expect("torn"), 64);
        let bytes = std::fs::read(&file).expect("read");
        assert_eq!(bytes.len(), 64 + 13 + 40);
        assert_eq!(bytes[64], 2);
        assert!(append_torn_record(&file, 10, 10).is_err());
    }
}
