//! The Raft state machine: applies committed entries to the broker model, and snapshots it.
//!
//! Architecture invariant 3: this is the only caller of `BrokerState::apply`. An entry's
//! payload is a batch of commands (postcard); its response is the batch of outcomes in the
//! same order. A batch that does not decode is answered with an empty outcome list rather
//! than an error: apply must be total, and every node decodes the same bytes the same way.
//!
//! Snapshots are files: postcard of (last applied log id, membership, broker state), written
//! to a temporary name, fsync'd, renamed into place, then the directory fsync'd. Only then
//! does openraft learn of the snapshot and may purge the log behind it (docs/durability.md).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::types::{Response, TypeConfig};
use crate::broker::command::{Command, Outcome};
use crate::broker::state::BrokerState;

type Snap = SnapshotOf<TypeConfig, Vec<u8>>;

const SNAPSHOT_FILE: &str = "snapshot.bin";
const SNAPSHOT_FORMAT_VERSION: u8 = 1;

/// What a snapshot file holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    broker: BrokerState,
}

#[derive(Debug)]
struct Inner {
    body: SnapshotBody,
    /// The bytes and meta of the newest snapshot file, as openraft asks for it.
    current: Option<(SnapshotMetaOf<TypeConfig>, Vec<u8>)>,
}

/// The broker model behind openraft's state-machine interface. Clones share one state.
#[derive(Clone, Debug)]
pub struct BrokerStateMachine {
    inner: Arc<Mutex<Inner>>,
    dir: PathBuf,
}

/// Encodes a batch of commands as an entry payload.
pub fn encode_batch(commands: &[Command]) -> Vec<u8> {
    postcard::to_stdvec(commands).unwrap_or_default()
}

/// Decodes the outcomes of a batch from an entry's response.
pub fn decode_outcomes(response: &Response) -> Vec<Outcome> {
    postcard::from_bytes(&response.0).unwrap_or_default()
}

impl BrokerStateMachine {
    /// Opens the state machine in `dir`, starting from the snapshot file there, if any.
    pub fn open(dir: &Path) -> io::Result<BrokerStateMachine> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        let (body, current) = match std::fs::read(&path) {
            Ok(bytes) => {
                let body = decode_snapshot(&bytes)?;
                let meta = meta_of(&body);
                (body, Some((meta, bytes)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (SnapshotBody::default(), None),
            Err(e) => return Err(e),
        };
        Ok(BrokerStateMachine {
            inner: Arc::new(Mutex::new(Inner { body, current })),
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `f` on the broker state (read-only), e.g. to fetch a body for a delivery.
    pub fn with_broker<T>(&self, f: impl FnOnce(&BrokerState) -> T) -> T {
        f(&self.lock().body.broker)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the broker half-applied in a way later
        // code could repair, but poisoning would stop the node; take the data as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn meta_of(body: &SnapshotBody) -> SnapshotMetaOf<TypeConfig> {
    SnapshotMetaOf::<TypeConfig> {
        last_log_id: body.last_applied,
        last_membership: body.membership.clone(),
    }
}

fn encode_snapshot(body: &SnapshotBody) -> io::Result<Vec<u8>> {
    let payload = postcard::to_stdvec(body).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(payload.len() + 9);
    out.push(SNAPSHOT_FORMAT_VERSION);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn decode_snapshot(bytes: &[u8]) -> io::Result<SnapshotBody> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"));
    let (head, payload) = bytes
        .split_at_checked(9)
        .ok_or_else(|| bad("shorter than its header"))?;
    if head[0] != SNAPSHOT_FORMAT_VERSION {
        return Err(bad("unknown format version"));
    }
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let crc = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
    if payload.len() != len || crc32c::crc32c(payload) != crc {
        return Err(bad("length or checksum mismatch"));
    }
    postcard::from_bytes(payload).map_err(|e| bad(&e.to_string()))
}

/// Writes `bytes` as the snapshot file durably: temp file, fsync, rename, fsync directory.
fn write_snapshot_file(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

impl RaftSnapshotBuilder<TypeConfig> for BrokerStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snap, io::Error> {
        // Copy the state under the lock, write it without the lock, so apply is not blocked
        // by disk I/O.
        let body = self.lock().body.clone();
        let bytes = encode_snapshot(&body)?;
        let dir = self.dir.clone();
        let to_write = bytes.clone();
        tokio::task::spawn_blocking(move || write_snapshot_file(&dir, &to_write))
            .await
            .map_err(io::Error::other)??;
        let meta = meta_of(&body);
        self.lock().current = Some((meta.clone(), bytes.clone()));
        Ok(Snap {
            meta,
            snapshot: bytes,
        })
    }
}

impl RaftStateMachine<TypeConfig> for BrokerStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let inner = self.lock();
        Ok((inner.body.last_applied, inner.body.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let outcomes = {
                let mut inner = self.lock();
                inner.body.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(request) => {
                        let commands: Vec<Command> =
                            postcard::from_bytes(&request.0).unwrap_or_default();
                        commands
                            .into_iter()
                            // TODO: entry timestamp (the leader's time in the entry).
                            .map(|c| inner.body.broker.apply(0, c))
                            .collect()
                    }
                    EntryPayload::Membership(m) => {
                        inner.body.membership =
                            StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m);
                        Vec::new()
                    }
                }
            };
            if let Some(r) = responder {
                r.send(Response(postcard::to_stdvec(&outcomes).unwrap_or_default()));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let body = decode_snapshot(&snapshot)?;
        let dir = self.dir.clone();
        let to_write = snapshot.clone();
        tokio::task::spawn_blocking(move || write_snapshot_file(&dir, &to_write))
            .await
            .map_err(io::Error::other)??;
        let mut inner = self.lock();
        inner.body = body;
        inner.current = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snap>, io::Error> {
        Ok(self.lock().current.as_ref().map(|(meta, data)| Snap {
            meta: meta.clone(),
            snapshot: data.clone(),
        }))
    }
}
