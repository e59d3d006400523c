//! A snapshot as openraft hands it around (its `SnapshotData`): a handle to read it from,
//! never the whole snapshot in memory on a disk node.
//!
//! openraft asks for the current snapshot at every start (for its meta) and whenever a
//! follower needs one; a disk node answers with its snapshot file opened for reading, so
//! neither costs memory that grows with the backlog. The file stays readable through the
//! handle even when a newer snapshot is renamed over its name meanwhile.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// The data of one snapshot.
#[derive(Debug)]
pub enum SnapshotData {
    /// A RAM node's snapshot (it has no disk), or one received by a RAM node.
    Bytes(Bytes),
    /// A file, opened at its start: a disk node's snapshot file, or one just received from
    /// the leader (fsync'd, under a name of its own until it is installed).
    File { file: File, path: PathBuf },
}

impl SnapshotData {
    /// What a built snapshot carries: openraft keeps only its meta and asks for the data
    /// (`get_current_snapshot`) when it needs them.
    pub fn none() -> SnapshotData {
        SnapshotData::Bytes(Bytes::new())
    }

    /// The snapshot's size in bytes.
    pub fn len(&self) -> io::Result<u64> {
        match self {
            SnapshotData::Bytes(bytes) => Ok(bytes.len() as u64),
            SnapshotData::File { file, .. } => Ok(file.metadata()?.len()),
        }
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The file's path, for a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            SnapshotData::Bytes(_) => None,
            SnapshotData::File { path, .. } => Some(path),
        }
    }

    /// An async reader from the snapshot's start, to send it from.
    pub fn into_async_reader(self) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
        match self {
            SnapshotData::Bytes(bytes) => Box::new(io::Cursor::new(bytes)),
            SnapshotData::File { file, .. } => Box::new(tokio::fs::File::from_std(file)),
        }
    }

    /// A reader from the snapshot's start (buffered for a file).
    pub fn into_reader(self) -> Box<dyn io::Read + Send> {
        match self {
            SnapshotData::Bytes(bytes) => Box::new(io::Cursor::new(bytes)),
            SnapshotData::File { file, .. } => Box::new(io::BufReader::new(file)),
        }
    }
}
