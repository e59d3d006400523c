//! The state machine's snapshots: built from a copy of the state's metadata with the bodies
//! streamed from wherever they live, written durably, loaded back (format:
//! `raft/snapshot_file.rs`).
//!
//! A snapshot's state section never holds a body or a body reference: each stored message's
//! body follows the state as its own record, so the file is the same whether a disk node
//! (bodies in its store) or a RAM node (bodies in memory) wrote it.

use std::io;
use std::path::Path;

use bytes::Bytes;

use super::{lock, meta_of, BrokerStateMachine, Snap, SnapshotBody, SNAPSHOT_FILE};
use crate::broker::state::BodyRef;
use crate::raft::bodies::Bodies;
use crate::raft::body_store::BodyStore;
use crate::raft::snapshot_file;

/// A snapshot build's copy of the state, taken under the state lock.
pub(super) struct BuildCopy<'a> {
    body: SnapshotBody,
    store: Option<BodyStore>,
    _file_guard: std::sync::MutexGuard<'a, ()>,
}

/// Where the body of a message in a snapshot being written is.
enum BodySource {
    Inline(Bytes),
    Stored(u64),
}

/// Takes every body (or body reference) out of `body`'s messages, in id order.
fn split_bodies(body: &mut SnapshotBody) -> Vec<(u64, BodySource)> {
    body.broker
        .strip_bodies()
        .into_iter()
        .map(|(msg_id, at, inline)| match at {
            Some(at) => (msg_id, BodySource::Stored(at.key)),
            None => (msg_id, BodySource::Inline(inline)),
        })
        .collect()
}

/// Reads a snapshot: its state, with every body put back where this node keeps them (into
/// `store`, emptied first, with references in the state; or inline).
pub(super) fn load(input: impl io::Read, store: Option<&BodyStore>) -> io::Result<SnapshotBody> {
    let mut inline = Vec::new();
    let mut lens = Vec::new();
    if let Some(store) = store {
        store.clear()?;
    }
    let mut body: SnapshotBody = snapshot_file::read(input, |msg_id, bytes| {
        match store {
            Some(store) => {
                store.insert(msg_id, &bytes)?;
                lens.push((msg_id, bytes.len() as u64, crc32c::crc32c(&bytes)));
            }
            None => inline.push((msg_id, Bytes::from(bytes))),
        }
        Ok(())
    })?;
    let broker = &mut body.broker;
    let n_bodies = lens.len() + inline.len();
    let mut n_placed = 0;
    for (msg_id, len_bytes, crc32c) in lens {
        let at = BodyRef {
            key: msg_id,
            len_bytes,
            crc32c,
        };
        n_placed += usize::from(broker.set_body_at(msg_id, at));
    }
    for (msg_id, bytes) in inline {
        n_placed += usize::from(broker.restore_body(msg_id, bytes));
    }
    if n_placed != n_bodies || n_bodies != broker.messages.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "snapshot: bodies and stored messages differ",
        ));
    }
    Ok(body)
}

impl BrokerStateMachine {
    /// Builds a snapshot of the state as it is now and writes it as the newest one: a disk
    /// node streams it to its file durably (temp file, fsync, rename, fsync the directory),
    /// a RAM node keeps the bytes. Blocking: call it off the async runtime.
    ///
    /// Applies go on meanwhile: the state's metadata is copied under the state lock (bodies
    /// are not in it on a disk node), and the store's bodies are read afterwards, so the
    /// deletions of bodies of messages dropped in the meantime wait until the write ends.
    pub(super) fn build_and_write(&self) -> io::Result<Snap> {
        let copy = self.copy_for_build();
        self.write_copy(copy)
    }

    /// The first half of a build: the state copied (with the file lock held and body
    /// deletions held) under the state lock.
    pub(super) fn copy_for_build(&self) -> BuildCopy<'_> {
        let file_guard = lock(&self.file_lock);
        let mut inner = self.lock();
        inner.bodies.hold_deletes();
        inner.log_bytes_since_snapshot = 0;
        BuildCopy {
            body: inner.body.clone(),
            store: inner.bodies.store().cloned(),
            _file_guard: file_guard,
        }
    }

    /// The second half: bodies read, the file written, deletions released.
    pub(super) fn write_copy(&self, mut copy: BuildCopy<'_>) -> io::Result<Snap> {
        let written = self.write_built(&mut copy.body, copy.store.as_ref());
        let released = self.lock().bodies.release_deletes();
        written?;
        released?;
        Ok(Snap {
            meta: meta_of(&copy.body),
            // openraft keeps only the meta of a built snapshot; it asks
            // `get_current_snapshot` for the data when a follower needs it.
            snapshot: Vec::new(),
        })
    }

    fn write_built(&self, body: &mut SnapshotBody, store: Option<&BodyStore>) -> io::Result<()> {
        let meta = meta_of(body);
        let sources = split_bodies(body);
        let bodies = sources.into_iter().map(|(msg_id, source)| match source {
            BodySource::Inline(bytes) => Ok((msg_id, bytes)),
            BodySource::Stored(key) => {
                let bytes = store.map(|s| s.get(key)).transpose()?.flatten();
                let bytes = bytes.ok_or_else(|| {
                    let what = format!("body of message {msg_id} missing from the body store");
                    io::Error::new(io::ErrorKind::NotFound, what)
                })?;
                Ok((msg_id, bytes))
            }
        });
        let Some(dir) = &self.dir else {
            let bytes = snapshot_file::write(io::Cursor::new(Vec::new()), &*body, bodies)?;
            let mut inner = self.lock();
            inner.current = Some(meta);
            inner.current_bytes = Some(bytes.into_inner());
            return Ok(());
        };
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let file = snapshot_file::write(std::fs::File::create(&tmp)?, &*body, bodies)?;
        file.sync_all()?;
        drop(file);
        install_file(dir, &tmp)?;
        self.lock().current = Some(meta);
        Ok(())
    }

    /// Installs a snapshot received from the leader: a disk node writes it as its snapshot
    /// file and refills its body store from it, a RAM node keeps the bytes. Blocking.
    pub(super) fn install_received(
        &self,
        meta: &openraft::alias::SnapshotMetaOf<super::TypeConfig>,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        let _file = lock(&self.file_lock);
        let store = self.lock().bodies.store().cloned();
        if let Some(dir) = &self.dir {
            use std::io::Write;
            let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            drop(file);
            install_file(dir, &tmp)?;
        }
        // The store is refilled under the state lock: no apply may read it half-filled.
        let mut inner = self.lock();
        let body = load(bytes.as_slice(), store.as_ref())?;
        inner.body = body;
        inner.bodies = Bodies::new(store);
        inner.current = Some(meta.clone());
        if self.dir.is_none() {
            inner.current_bytes = Some(bytes);
        }
        Ok(())
    }

    /// The newest snapshot as openraft sends it: a RAM node's bytes, or a disk node's file
    /// read back. Blocking.
    pub(super) fn read_current(&self) -> io::Result<Option<Snap>> {
        let _file = lock(&self.file_lock);
        let (meta, bytes) = {
            let inner = self.lock();
            (inner.current.clone(), inner.current_bytes.clone())
        };
        let Some(meta) = meta else {
            return Ok(None);
        };
        let snapshot = match (&self.dir, bytes) {
            (Some(dir), _) => std::fs::read(dir.join(SNAPSHOT_FILE))?,
            (None, Some(bytes)) => bytes,
            (None, None) => return Ok(None),
        };
        Ok(Some(Snap { meta, snapshot }))
    }
}

/// Renames the synced `tmp` to the snapshot file and syncs the directory, so the rename
/// itself survives a power cut.
fn install_file(dir: &Path, tmp: &Path) -> io::Result<()> {
    std::fs::rename(tmp, dir.join(SNAPSHOT_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}
