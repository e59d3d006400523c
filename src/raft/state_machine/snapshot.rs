//! The state machine's snapshots: built from a copy of what the state holds in memory with
//! the stored messages streamed from wherever they live, written durably, loaded back
//! (format: `raft/snapshot_file.rs`).
//!
//! A snapshot's state section never holds a stored message: each follows the state as its
//! own record (record and body), so the file is the same whether a disk node (messages in
//! its store) or a RAM node (messages in memory) wrote it, and neither writing nor loading
//! holds the backlog in memory.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::{lock, meta_of, BrokerStateMachine, Snap, SnapshotBody, SNAPSHOT_FILE};
use crate::broker::command::Command;
use crate::broker::messages::Messages;
use crate::broker::state::BrokerState;
use crate::broker::state_extras::StateExtras;
use crate::broker::state_legacy::LegacyBrokerState;
use crate::raft::cold_messages::ColdMessages;
use crate::raft::message_record;
use crate::raft::message_store::MessageStore;
use crate::raft::sessions::Sessions;
use crate::raft::snapshot_data::SnapshotData;
use crate::raft::snapshot_file;
use crate::raft::types::TypeConfig;
use openraft::alias::{LogIdOf, StoredMembershipOf};

/// A snapshot build's copy of the state, taken under the state lock.
pub(super) struct BuildCopy<'a> {
    body: SnapshotBody,
    _file_guard: std::sync::MutexGuard<'a, ()>,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"))
}

/// The messages of a snapshot being read: a RAM node's in memory, a disk node's counted (they
/// went to its store).
#[derive(Default)]
struct Loaded {
    hot: Messages,
    n_cold: u64,
    shared: BTreeMap<u64, u32>,
    last_id: Option<u64>,
}

/// The snapshot format of machine version 1 (`broker/state_legacy.rs`).
const LEGACY_FORMAT: u8 = 5;

/// A snapshot body as format 5 laid it out.
#[derive(serde::Serialize, serde::Deserialize)]
struct LegacyBody {
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    broker: LegacyBrokerState,
    sessions: Sessions,
    machine_version: u16,
}

impl SnapshotBody {
    /// The body in format 5, while the cluster runs machine version 1.
    fn legacy(&self) -> Option<LegacyBody> {
        if self.machine_version >= Command::ACCESS_MACHINE_VERSION {
            return None;
        }
        Some(LegacyBody {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            broker: self.broker.to_legacy()?,
            sessions: self.sessions.clone(),
            machine_version: self.machine_version,
        })
    }
}

/// The snapshot format of machine versions 2 and 3: format 7 less its extras.
const NO_EXTRAS_FORMAT: u8 = 6;
const _: () = assert!(NO_EXTRAS_FORMAT + 1 == snapshot_file::SNAPSHOT_FORMAT_VERSION);

/// A snapshot body as format 7 lays it out when written: format 6's, then what the state's
/// own layout leaves out (`broker/state_extras.rs`).
#[derive(serde::Serialize)]
struct BodyOut<'a> {
    body: &'a SnapshotBody,
    extras: StateExtras,
}

/// As [`BodyOut`], read.
#[derive(serde::Deserialize)]
struct BodyIn {
    body: SnapshotBody,
    extras: StateExtras,
}

fn decode_body(version: u8, bytes: &[u8]) -> io::Result<SnapshotBody> {
    if version == NO_EXTRAS_FORMAT {
        return snapshot_file::decode_exact(bytes);
    }
    if version != LEGACY_FORMAT {
        let BodyIn { mut body, extras } = snapshot_file::decode_exact(bytes)?;
        body.broker.restore_extras(extras).map_err(|e| bad(&e))?;
        return Ok(body);
    }
    let legacy: LegacyBody = snapshot_file::decode_exact(bytes)?;
    Ok(SnapshotBody {
        last_applied: legacy.last_applied,
        membership: legacy.membership,
        broker: BrokerState::from_legacy(legacy.broker),
        sessions: legacy.sessions,
        machine_version: legacy.machine_version,
    })
}

/// Reads a snapshot: its state, with every stored message put where this node keeps them
/// (into `store`, emptied first; or in memory).
pub(super) fn load(input: impl io::Read, store: Option<&MessageStore>) -> io::Result<SnapshotBody> {
    if let Some(store) = store {
        store.clear()?;
    }
    let mut loaded = Loaded::default();
    let mut body: SnapshotBody =
        snapshot_file::read(input, decode_body, |msg_id, record, bytes| {
            if loaded.last_id.is_some_and(|last| last >= msg_id) {
                return Err(bad("messages out of id order"));
            }
            loaded.last_id = Some(msg_id);
            let message = message_record::decode(&record, Bytes::from(bytes))?;
            if message.n_holders == 0 {
                return Err(bad("a stored message no queue holds"));
            }
            match store {
                Some(store) => {
                    store.insert_record(msg_id, &record, &message.content.body)?;
                    loaded.n_cold += 1;
                    if message.n_holders > 1 {
                        loaded.shared.insert(msg_id, message.n_holders);
                    }
                }
                None => loaded.hot.insert(msg_id, message),
            }
            Ok(())
        })?;
    let broker = &mut body.broker;
    if !broker.messages.is_empty() {
        return Err(bad("stored messages inside the state"));
    }
    if loaded
        .last_id
        .is_some_and(|last| last >= broker.next_msg_id())
    {
        return Err(bad("a message id past the state's next id"));
    }
    broker.messages = match store {
        Some(store) => Messages::cold(Arc::new(store.clone()), loaded.n_cold, loaded.shared),
        None => loaded.hot,
    };
    Ok(body)
}

impl BrokerStateMachine {
    /// Builds a snapshot of the state as it is now and writes it as the newest one: a disk
    /// node streams it to its file durably (temp file, fsync, rename, fsync the directory),
    /// a RAM node keeps the bytes. Blocking: call it off the async runtime.
    ///
    /// Applies go on meanwhile: what the state holds in memory is copied under the state
    /// lock (a disk node's stored messages are not in it), and the store's messages are read
    /// afterwards: those with ids below the copy's next id, a set no apply changes but by
    /// dropping messages, whose deletion from the store waits until the write ends.
    pub(super) fn build_and_write(&self) -> io::Result<Snap> {
        let copy = self.copy_for_build();
        self.write_copy(copy)
    }

    /// The first half of a build: the state copied (with the file lock held and message
    /// deletions held) under the state lock.
    pub(super) fn copy_for_build(&self) -> BuildCopy<'_> {
        let file_guard = lock(&self.file_lock);
        let mut inner = self.lock();
        inner.cold.hold_deletes();
        inner.log_bytes_since_snapshot = 0;
        let body = &inner.body;
        BuildCopy {
            body: SnapshotBody {
                last_applied: body.last_applied,
                membership: body.membership.clone(),
                broker: body.broker.copy_for_build(),
                sessions: body.sessions.clone(),
                machine_version: body.machine_version,
            },
            _file_guard: file_guard,
        }
    }

    /// The second half: messages read, the file written, deletions released.
    pub(super) fn write_copy(&self, mut copy: BuildCopy<'_>) -> io::Result<Snap> {
        let written = self.write_built(&mut copy.body);
        let released = {
            let mut inner = self.lock();
            let inner = &mut *inner;
            inner.cold.release_deletes(&mut inner.body.broker)
        };
        written?;
        released?;
        Ok(Snap {
            meta: meta_of(&copy.body),
            snapshot: SnapshotData::none(),
        })
    }

    fn write_built(&self, body: &mut SnapshotBody) -> io::Result<()> {
        let meta = meta_of(body);
        // The state section goes without its messages; they follow it one by one.
        let messages = std::mem::take(&mut body.broker.messages);
        let Some(dir) = &self.dir else {
            let out = io::Cursor::new(Vec::new());
            let bytes = write_messages(out, body, &messages)?;
            let mut inner = self.lock();
            inner.current = Some(meta);
            inner.current_bytes = Some(Bytes::from(bytes.into_inner()));
            return Ok(());
        };
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let file = write_messages(std::fs::File::create(&tmp)?, body, &messages)?;
        file.sync_all()?;
        drop(file);
        install_file(dir, &tmp)?;
        self.lock().current = Some(meta);
        Ok(())
    }

    /// Installs a snapshot received from the leader: a disk node makes it its snapshot file
    /// (the received file renamed into place) and refills its message store from it, a RAM
    /// node keeps the bytes. Blocking.
    pub(super) fn install_received(
        &self,
        meta: &openraft::alias::SnapshotMetaOf<super::TypeConfig>,
        data: SnapshotData,
    ) -> io::Result<()> {
        let _file = lock(&self.file_lock);
        let store = self.lock().cold.store().cloned();
        let (data, keep) = match &self.dir {
            Some(dir) => (install_data(dir, data)?, None),
            None => {
                let bytes = into_bytes(data)?;
                (SnapshotData::Bytes(bytes.clone()), Some(bytes))
            }
        };
        // The store is refilled under the state lock: no apply may read it half-filled.
        let mut inner = self.lock();
        let body = load(data.into_reader(), store.as_ref())?;
        inner.body = body;
        inner.cold = ColdMessages::new(store);
        inner.current = Some(meta.clone());
        inner.current_bytes = keep;
        inner.publish_all();
        Ok(())
    }

    /// The newest snapshot as openraft sends it: a RAM node's bytes, or a disk node's file
    /// opened for reading (not read: a handle). Blocking.
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
            (Some(dir), _) => {
                let path = dir.join(SNAPSHOT_FILE);
                let file = std::fs::File::open(&path)?;
                SnapshotData::File { file, path }
            }
            (None, Some(bytes)) => SnapshotData::Bytes(bytes),
            (None, None) => return Ok(None),
        };
        Ok(Some(Snap { meta, snapshot }))
    }
}

/// Makes `data` the snapshot file in `dir` durably and returns it to read from: a received
/// file (already fsync'd) is renamed into place, bytes are written to it first.
fn install_data(dir: &Path, data: SnapshotData) -> io::Result<SnapshotData> {
    let path = dir.join(SNAPSHOT_FILE);
    match data {
        SnapshotData::File { file, path: from } if from == path => {
            Ok(SnapshotData::File { file, path })
        }
        SnapshotData::File { file, path: from } => {
            file.sync_all()?;
            install_file(dir, &from)?;
            Ok(SnapshotData::File { file, path })
        }
        SnapshotData::Bytes(bytes) => {
            use std::io::Write;
            let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            drop(file);
            install_file(dir, &tmp)?;
            Ok(SnapshotData::Bytes(bytes))
        }
    }
}

/// A RAM node's copy of a snapshot: it has no disk to keep a file on.
fn into_bytes(data: SnapshotData) -> io::Result<Bytes> {
    match data {
        SnapshotData::Bytes(bytes) => Ok(bytes),
        file @ SnapshotData::File { .. } => {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file.into_reader(), &mut bytes)?;
            Ok(Bytes::from(bytes))
        }
    }
}

/// Writes the snapshot of `body` (its messages taken out) and `messages` to `out`; refuses
/// a snapshot whose messages disagree with their count.
fn write_messages<W: io::Write + io::Seek>(
    out: W,
    body: &SnapshotBody,
    messages: &Messages,
) -> io::Result<W> {
    let mut n_written = 0usize;
    let records = messages.iter().map(|item| {
        let (msg_id, message) = item?;
        n_written += 1;
        let record = message_record::encode(&message)?;
        Ok((msg_id, record, message.content.body.clone()))
    });
    // The format follows the cluster's machine version, so members of an older build can
    // install it while the cluster has not moved up (docs/formats.md).
    let extras = body.broker.extras();
    let out = match body.legacy() {
        Some(legacy) => snapshot_file::write(out, LEGACY_FORMAT, &legacy, records)?,
        None if body.machine_version < Command::QUEUE_FEATURES_MACHINE_VERSION => {
            // Nothing below version 4 makes extras: a consumer priority needs its command.
            if !extras.is_empty() {
                return Err(bad("extras in a state below machine version 4"));
            }
            snapshot_file::write(out, NO_EXTRAS_FORMAT, body, records)?
        }
        None => {
            let out_body = BodyOut { body, extras };
            let version = snapshot_file::SNAPSHOT_FORMAT_VERSION;
            snapshot_file::write(out, version, &out_body, records)?
        }
    };
    if n_written != messages.len() {
        let what = format!("{n_written} messages read, {} stored", messages.len());
        return Err(bad(&what));
    }
    Ok(out)
}

/// Renames the synced `tmp` to the snapshot file and syncs the directory, so the rename
/// itself survives a power cut.
fn install_file(dir: &Path, tmp: &Path) -> io::Result<()> {
    std::fs::rename(tmp, dir.join(SNAPSHOT_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}
