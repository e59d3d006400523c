//! The Raft state machine: applies committed entries to the broker model, and snapshots it.
//!
//! Architecture invariant 3: this is the only caller of `BrokerState::apply`. An entry's
//! payload is a [`Batch`] (postcard): the leader's clock when it was proposed and the
//! commands. The response is the replies in the same order. A batch that does not decode is
//! answered with no replies rather than an error: apply must be total, and every node decodes
//! the same bytes the same way.
//!
//! Deliveries leave here, not through the response: right after each entry is applied, under
//! the state lock, the registered [`ApplyObserver`] sees every outcome, so deliveries reach
//! consumers in apply order however many entries are in flight.
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

use super::types::{Request, Response, TypeConfig};
use crate::broker::command::{Command, Outcome, Refusal, Reply};
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

/// An entry's commands and the leader's wall clock (ms since the epoch) when it proposed
/// them: the state machine's only source of time (message TTLs).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Batch {
    pub time_ms: u64,
    pub commands: Vec<Command>,
}

/// Sees every entry's outcomes right after they were applied, in log order, with the state
/// they were applied to. It runs under the state lock, so it must not block.
pub trait ApplyObserver: Send + Sync + 'static {
    fn applied(&self, outcomes: &[Outcome], broker: &BrokerState);
}

struct Inner {
    body: SnapshotBody,
    /// The bytes and meta of the newest snapshot file, as openraft asks for it.
    current: Option<(SnapshotMetaOf<TypeConfig>, Vec<u8>)>,
    observer: Option<Arc<dyn ApplyObserver>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("last_applied", &self.body.last_applied)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// The broker model behind openraft's state-machine interface. Clones share one state.
#[derive(Clone, Debug)]
pub struct BrokerStateMachine {
    inner: Arc<Mutex<Inner>>,
    /// Where snapshot files go; `None` on a RAM node, whose snapshots stay in memory.
    dir: Option<PathBuf>,
}

impl Batch {
    /// The entry payload for this batch.
    pub fn to_request(&self) -> Request {
        Request(postcard::to_stdvec(self).unwrap_or_default())
    }
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
            inner: Arc::new(Mutex::new(Inner {
                body,
                current,
                observer: None,
            })),
            dir: Some(dir.to_path_buf()),
        })
    }

    /// A state machine that keeps its snapshots in memory only (a RAM node's): it starts
    /// empty and is filled by the leader's snapshot and log.
    pub fn in_memory() -> BrokerStateMachine {
        BrokerStateMachine {
            inner: Arc::new(Mutex::new(Inner {
                body: SnapshotBody::default(),
                current: None,
                observer: None,
            })),
            dir: None,
        }
    }

    /// Writes snapshot bytes to the snapshot file off the async runtime (a disk node's).
    async fn persist(&self, bytes: &[u8]) -> io::Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let to_write = bytes.to_vec();
        tokio::task::spawn_blocking(move || write_snapshot_file(&dir, &to_write))
            .await
            .map_err(io::Error::other)?
    }

    /// Registers the observer that routes each entry's deliveries (one per state machine).
    pub fn set_observer(&self, observer: Arc<dyn ApplyObserver>) {
        self.lock().observer = Some(observer);
    }

    /// Runs `f` on the broker state (read-only), e.g. to fetch a body for a delivery.
    pub fn with_broker<T>(&self, f: impl FnOnce(&BrokerState) -> T) -> T {
        f(&self.lock().body.broker)
    }

    /// The applied index and a SHA-256 of the broker state at that index, taken under one
    /// lock so the pair is consistent: nodes at the same applied index must agree on it
    /// (the chaos checker's digest check). The state holds only ordered maps, so its
    /// encoding is canonical.
    pub fn digest(&self) -> (Option<u64>, String) {
        use sha2::Digest;
        let inner = self.lock();
        let bytes = postcard::to_stdvec(&inner.body.broker).unwrap_or_default();
        let hash = sha2::Sha256::digest(&bytes);
        let hex = hash.iter().map(|b| format!("{b:02x}")).collect();
        (inner.body.last_applied.map(|l| l.index), hex)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the broker half-applied in a way later
        // code could repair, but poisoning would stop the node; take the data as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Applies one entry's batch, shows the outcomes to the observer, returns the replies.
    fn apply_batch(&mut self, request: &Request) -> Vec<Result<Reply, Refusal>> {
        let batch: Batch = postcard::from_bytes(&request.0).unwrap_or_default();
        let broker = &mut self.body.broker;
        let now_ms = batch.time_ms;
        let outcomes: Vec<Outcome> = batch
            .commands
            .into_iter()
            .map(|c| broker.apply(now_ms, c))
            .collect();
        if let Some(observer) = &self.observer {
            observer.applied(&outcomes, &self.body.broker);
        }
        outcomes.into_iter().map(|o| o.reply).collect()
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
        self.persist(&bytes).await?;
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
            let replies = {
                let mut inner = self.lock();
                inner.body.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(request) => inner.apply_batch(&request),
                    EntryPayload::Membership(m) => {
                        inner.body.membership =
                            StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m);
                        Vec::new()
                    }
                }
            };
            if let Some(r) = responder {
                r.send(Response(replies));
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
        self.persist(&snapshot).await?;
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
