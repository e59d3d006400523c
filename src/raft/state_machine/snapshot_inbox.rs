//! Receiving a snapshot from the leader in chunks (`PeerRequest::SnapshotChunk`), so no
//! message on the wire and no buffer on a disk node holds a whole snapshot: a disk node
//! writes the chunks to a file of its own in the state directory and fsyncs it when the last
//! one arrives; a RAM node, which has no disk, gathers them in memory.
//!
//! One snapshot is received at a time. A chunk at offset 0 starts over (a new leader, or the
//! leader's retry after a failed send); a chunk that does not follow the one before is
//! refused, and the leader sends the snapshot again from its start.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{lock, BrokerStateMachine, SNAPSHOT_FILE};
use crate::raft::snapshot_data::SnapshotData;

/// The snapshot being received, if any, and how many were started (names the files).
#[derive(Debug, Default)]
pub(super) struct Inbox {
    receiving: Option<Receiving>,
    n_started: u64,
}

#[derive(Debug)]
struct Receiving {
    snapshot_id: String,
    n_received: u64,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    File { file: File, path: PathBuf },
    Memory(Vec<u8>),
}

/// The name prefix of received snapshot files; leftovers are removed at open.
const RECEIVED_PREFIX: &str = "received-";

impl BrokerStateMachine {
    /// Takes one chunk of snapshot `snapshot_id` at byte `offset`. Returns the whole
    /// snapshot, ready to hand to openraft, when `last` is set. Blocking (file I/O).
    pub fn receive_snapshot_chunk(
        &self,
        snapshot_id: &str,
        offset: u64,
        data: &[u8],
        last: bool,
    ) -> io::Result<Option<SnapshotData>> {
        let mut inbox = lock(&self.inbox);
        if offset == 0 {
            inbox.n_started += 1;
            let started = self.start_receiving(snapshot_id, inbox.n_started)?;
            discard(inbox.receiving.replace(started));
        }
        let receiving = match inbox.receiving.as_mut() {
            Some(r) if r.snapshot_id == snapshot_id && r.n_received == offset => r,
            other => {
                let expected = other.map(|r| (r.snapshot_id.clone(), r.n_received));
                let text = format!(
                    "snapshot chunk {snapshot_id}@{offset} does not follow {expected:?}: \
                     send the snapshot from its start"
                );
                return Err(io::Error::new(io::ErrorKind::InvalidInput, text));
            }
        };
        match &mut receiving.sink {
            Sink::File { file, .. } => file.write_all(data)?,
            Sink::Memory(bytes) => bytes.extend_from_slice(data),
        }
        receiving.n_received += data.len() as u64;
        if !last {
            return Ok(None);
        }
        let Some(receiving) = inbox.receiving.take() else {
            return Ok(None);
        };
        match receiving.sink {
            Sink::Memory(bytes) => Ok(Some(SnapshotData::Bytes(Bytes::from(bytes)))),
            Sink::File { mut file, path } => {
                file.sync_all()?;
                file.rewind()?;
                Ok(Some(SnapshotData::File { file, path }))
            }
        }
    }

    fn start_receiving(&self, snapshot_id: &str, n: u64) -> io::Result<Receiving> {
        let sink = match &self.dir {
            Some(dir) => {
                let path = dir.join(format!("{RECEIVED_PREFIX}{n}.{SNAPSHOT_FILE}"));
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                Sink::File { file, path }
            }
            None => Sink::Memory(Vec::new()),
        };
        Ok(Receiving {
            snapshot_id: snapshot_id.to_string(),
            n_received: 0,
            sink,
        })
    }
}

/// Drops a snapshot whose receipt was abandoned, with its file.
fn discard(receiving: Option<Receiving>) {
    if let Some(Receiving {
        sink: Sink::File { path, .. },
        ..
    }) = receiving
    {
        remove_received(&path);
    }
}

/// Removes a received snapshot file that was not installed (openraft refused it, or its
/// receipt was abandoned); an installed one was renamed and is gone already.
pub fn remove_received(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a received snapshot"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "remove a received snapshot"),
    }
}

/// Removes what a previous run left in `dir` of snapshots it was receiving or writing.
pub(super) fn remove_leftovers(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(RECEIVED_PREFIX) || name == format!("{SNAPSHOT_FILE}.tmp") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
