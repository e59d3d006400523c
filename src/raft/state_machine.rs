//! The Raft state machine: applies committed entries to the broker model, and snapshots it.
//!
//! Architecture invariant 3: this is the only caller of `BrokerState::apply`. An entry's
//! payload is a [`Batch`] (postcard) in a versioned envelope (`envelope.rs`): the leader's
//! clock when it was proposed and the commands. The response is the replies in the same
//! order. An entry that does not decode, or is of a machine version this build or the
//! cluster does not run, stops the node (fail-stop): skipping it would let its state
//! diverge from its peers' silently.
//!
//! Deliveries leave here, not through the response: right after each entry is applied, under
//! the state lock, the registered [`ApplyObserver`] sees every outcome, so deliveries reach
//! consumers in apply order however many entries are in flight.
//!
//! Apply runs on a blocking thread, never on a runtime worker: an entry holds the state lock
//! through the message store's writes (sled). Entries go in chunks (`APPLY_CHUNK_*` in
//! `limits.rs`), one chunk after another, in log order. What async tasks need of the state
//! (next expiry, connections, machine version) is published through `watch` channels after
//! every entry (`state_machine/published.rs`), so they do not take the lock.
//!
//! A disk node keeps its stored messages out of memory, in its message store
//! (`cold_messages.rs`); the observer reads them through [`AppliedState`]. A failed read of
//! that store while an entry is applied or delivered fails the entry: openraft then stops and
//! the node with it, rather than go on from a state its peers do not have.
//!
//! Snapshots are files (`state_machine/snapshot.rs`): the state, then every stored message,
//! streamed to a temporary name, fsync'd, renamed into place, then the directory fsync'd.
//! Only then does openraft learn of the snapshot and may purge the log behind it
//! (docs/durability.md).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::Stream;
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::cold_messages::ColdMessages;
use super::envelope;
use super::message_store::MessageStore;
use super::sessions::{Origin, Sequenced, Sessions};
use super::snapshot_data::SnapshotData;
use super::types::{Request, Response, TypeConfig};
use crate::broker::command::{Command, Outcome};
use crate::broker::state::{BrokerState, StoredMessage};
use published::ConnsTouched;

mod apply;
mod published;
mod snapshot;
mod snapshot_inbox;

pub use published::Connections;
pub use snapshot_inbox::remove_received;

type Snap = SnapshotOf<TypeConfig, SnapshotData>;

const SNAPSHOT_FILE: &str = "snapshot.bin";
/// The message store's directory, beside the snapshot file.
const MESSAGES_DIR: &str = "messages";
/// Where the body store of earlier versions was (removed at open).
const OLD_BODIES_DIR: &str = "bodies";

/// What a snapshot file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    broker: BrokerState,
    sessions: Sessions,
    /// The state-machine version the cluster runs (`envelope.rs`); only ever grows.
    machine_version: u16,
}

impl Default for SnapshotBody {
    fn default() -> SnapshotBody {
        SnapshotBody {
            last_applied: None,
            membership: StoredMembershipOf::<TypeConfig>::default(),
            broker: BrokerState::default(),
            sessions: Sessions::default(),
            machine_version: envelope::MACHINE_VERSION_FIRST,
        }
    }
}

/// An entry's commands and the leader's wall clock (ms since the epoch) when it proposed
/// them: the state machine's only source of time (message TTLs).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Batch {
    pub time_ms: u64,
    pub commands: Vec<Command>,
    /// The proposer and its sequence number: applied once, in order (`sessions`). `None`
    /// for batches outside a proposer's sequence (tests, tools).
    pub origin: Option<Origin>,
}

/// Sees every entry's outcomes right after they were applied, in log order, with the state
/// they were applied to. It runs under the state lock, on apply's blocking thread, so it
/// must not block (nor wait for the runtime).
pub trait ApplyObserver: Send + Sync + 'static {
    /// `index` is the entry's log index.
    fn applied(&self, index: u64, outcomes: &[Outcome], state: &AppliedState<'_>);

    /// The state changed: after every entry, and after a snapshot was installed (which
    /// `applied` does not see). Under the state lock too.
    fn state_changed(&self, _state: &AppliedState<'_>) {}
}

/// The state an observer sees.
pub struct AppliedState<'a> {
    pub broker: &'a BrokerState,
}

impl AppliedState<'_> {
    /// The message a delivery of `outcome` carries, body included: from the outcome's
    /// `released` (in memory, dropped by the command), else from the state, else (a disk
    /// node) its record, which stays in the store until after the entry's deliveries.
    /// `None` when it is missing (logged) or its read failed (the entry then fails).
    pub fn delivered(&self, outcome: &Outcome, msg_id: u64) -> Option<StoredMessage> {
        let released = outcome.released.iter().find(|(id, _)| *id == msg_id);
        if let Some((_, message)) = released {
            return Some(message.clone());
        }
        let message = self.broker.messages.get_for_delivery(msg_id);
        if message.is_none() && !self.broker.messages.read_failed() {
            tracing::error!(msg_id, "delivery without message");
        }
        message.map(std::borrow::Cow::into_owned)
    }
}

struct Inner {
    body: SnapshotBody,
    /// The meta of the newest snapshot. A disk node's snapshot is its file, read when
    /// openraft asks for it (to send to a lagging follower); it is not kept in memory.
    current: Option<SnapshotMetaOf<TypeConfig>>,
    /// A RAM node's newest snapshot, the only copy it has.
    current_bytes: Option<bytes::Bytes>,
    cold: ColdMessages,
    observer: Option<Arc<dyn ApplyObserver>>,
    /// Entry payload bytes applied since the last snapshot build began.
    log_bytes_since_snapshot: u64,
    /// What async tasks read of the state, sent after every entry (`published.rs`).
    publisher: published::Publisher,
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
    /// Held while a snapshot is built and written (with `current` updated), installed or
    /// read, so a reader never pairs one snapshot's meta with another's file, and the body
    /// store is never refilled under a build reading it.
    file_lock: Arc<Mutex<()>>,
    /// Notified when the log since the last snapshot outgrew `SNAPSHOT_AFTER_LOG_BYTES`
    /// (the node then triggers a snapshot).
    snapshot_wanted: Arc<tokio::sync::Notify>,
    /// The snapshot being received from the leader, chunk by chunk.
    inbox: Arc<Mutex<snapshot_inbox::Inbox>>,
    /// What `Inner::publish` sent last.
    published: published::Published,
}

impl Batch {
    /// The entry payload for this batch, at the oldest machine version that applies all
    /// its commands (tests, tools; a node encodes at its cluster's version:
    /// `RaftNode::submit`).
    pub fn to_request(&self) -> Request {
        let needed = self.commands.iter().map(Command::machine_version_min);
        let version = needed.fold(envelope::MACHINE_VERSION_FIRST, u16::max);
        envelope::encode(self, version)
    }
}

impl BrokerStateMachine {
    /// Opens the state machine in `dir`: the snapshot file there, if any, with its messages
    /// put into the (emptied) message store; the log after it is replayed by openraft.
    pub fn open(dir: &Path) -> io::Result<BrokerStateMachine> {
        std::fs::create_dir_all(dir)?;
        match std::fs::remove_dir_all(dir.join(OLD_BODIES_DIR)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        snapshot_inbox::remove_leftovers(dir)?;
        let store = MessageStore::open_empty(&dir.join(MESSAGES_DIR))?;
        let (body, current) = match std::fs::File::open(dir.join(SNAPSHOT_FILE)) {
            Ok(file) => {
                let body = snapshot::load(io::BufReader::new(file), Some(&store))?;
                let meta = meta_of(&body);
                (body, Some(meta))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut body = SnapshotBody::default();
                ColdMessages::new(Some(store.clone())).attach(&mut body.broker);
                (body, None)
            }
            Err(e) => return Err(e),
        };
        let dir = Some(dir.to_path_buf());
        Ok(BrokerStateMachine::new(body, current, Some(store), dir))
    }

    /// A state machine that keeps its snapshots and messages in memory only (a RAM node's):
    /// it starts empty and is filled by the leader's snapshot and log.
    pub fn in_memory() -> BrokerStateMachine {
        BrokerStateMachine::new(SnapshotBody::default(), None, None, None)
    }

    fn new(
        body: SnapshotBody,
        current: Option<SnapshotMetaOf<TypeConfig>>,
        store: Option<MessageStore>,
        dir: Option<PathBuf>,
    ) -> BrokerStateMachine {
        let (publisher, published) = published::channel(&body.broker, body.machine_version);
        BrokerStateMachine {
            published,
            inner: Arc::new(Mutex::new(Inner {
                body,
                current,
                current_bytes: None,
                cold: ColdMessages::new(store),
                observer: None,
                log_bytes_since_snapshot: 0,
                publisher,
            })),
            snapshot_wanted: Arc::new(tokio::sync::Notify::new()),
            inbox: Arc::default(),
            dir,
            file_lock: Arc::new(Mutex::new(())),
        }
    }

    /// Notified when enough log was applied since the last snapshot that one is due.
    pub fn snapshot_wanted(&self) -> Arc<tokio::sync::Notify> {
        self.snapshot_wanted.clone()
    }

    /// Registers the observer that routes each entry's deliveries (one per state machine).
    pub fn set_observer(&self, observer: Arc<dyn ApplyObserver>) {
        self.lock().observer = Some(observer);
    }

    /// Runs `f` on the last applied index and the state there, as an observer sees it,
    /// under the state lock (no entry is applied meanwhile).
    pub fn observe_applied<T>(&self, f: impl FnOnce(Option<u64>, &AppliedState<'_>) -> T) -> T {
        let inner = self.lock();
        let index = inner.body.last_applied.map(|l| l.index);
        f(
            index,
            &AppliedState {
                broker: &inner.body.broker,
            },
        )
    }

    /// When the first message in any queue's head expires (ms, the leader's clock), as of
    /// the last entry applied; read without the state lock.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        *self.published.next_expiry_ms.borrow()
    }

    /// The connections the state names (consumers, checkouts, exclusive queues, channel
    /// limits) as of the last entry applied; read without the state lock.
    pub fn connections(&self) -> Connections {
        self.published.connections.borrow().clone()
    }

    /// The state-machine version the cluster runs, as far as this node has applied; read
    /// without the state lock (every submit reads it).
    pub fn machine_version(&self) -> u16 {
        *self.published.machine_version.borrow()
    }

    /// Resolves once the cluster runs state-machine version `needed` or newer (as applied
    /// here), or after `limit`; whether it does.
    pub async fn machine_version_reaches(&self, needed: u16, limit: std::time::Duration) -> bool {
        let mut version = self.published.machine_version.clone();
        let reached = version.wait_for(|v| *v >= needed);
        // Bound to a name so the borrow of `version` the result holds ends before it does.
        let outcome = tokio::time::timeout(limit, reached).await;
        matches!(outcome, Ok(Ok(_)))
    }

    /// Runs `f` on the broker state (read-only). On a disk node the stored messages are
    /// not in memory: reading them reads the message store.
    pub fn with_broker<T>(&self, f: impl FnOnce(&BrokerState) -> T) -> T {
        f(&self.lock().body.broker)
    }

    /// Every stored message with its body, wherever it lives. It reads every message: for
    /// checks and tests.
    pub fn messages_with_bodies(&self) -> io::Result<Vec<StoredMessage>> {
        let inner = self.lock();
        let messages = inner.body.broker.messages.iter();
        messages.map(|m| m.map(|(_, m)| m.into_owned())).collect()
    }

    /// How many messages the message store holds (`None` on a RAM node), dropped ones whose
    /// deletion waits included; a full scan, for tests.
    pub fn n_stored_messages(&self) -> Option<usize> {
        self.lock().cold.store().map(|s| s.len())
    }

    /// The applied index and a SHA-256 of the broker state at that index, taken under one
    /// lock so the pair is consistent: nodes at the same applied index must agree on it
    /// (the chaos checker's digest check), whether their messages are in memory or in a
    /// message store.
    pub fn digest(&self) -> (Option<u64>, String) {
        use sha2::Digest;
        let inner = self.lock();
        let mut hasher = sha2::Sha256::new();
        let hashed = inner.body.broker.digest_into(&mut hasher);
        if let Err(error) = hashed {
            tracing::error!(%error, "digest the state");
            hasher.update(b"digest failed");
        }
        let hex = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (inner.body.last_applied.map(|l| l.index), hex)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }
}

/// The cluster moves to machine `version`; this build must apply it, or stop.
fn set_machine_version(current: &mut u16, version: u16, index: u64) -> io::Result<()> {
    if version > envelope::MACHINE_VERSION {
        let max = envelope::MACHINE_VERSION;
        tracing::error!(
            index,
            version,
            max,
            "the cluster moved past this build: stopping"
        );
        let why = format!("entry {index}: machine version {version}, this build applies {max}");
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    if version > *current {
        tracing::info!(
            index,
            from = *current,
            to = version,
            "machine version moved"
        );
        *current = version;
    }
    Ok(())
}

/// Locks `mutex`. A panic while holding the state lock cannot leave the broker half-applied
/// in a way later code could repair, but poisoning would stop the node; take the data as it
/// is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Tells the observer the state changed (it republishes what it derives).
    fn notify_changed(&self) {
        if let Some(observer) = &self.observer {
            observer.state_changed(&AppliedState {
                broker: &self.body.broker,
            });
        }
    }

    /// Publishes what async tasks read of the state after an entry whose commands did
    /// `touched`.
    fn publish(&self, touched: &ConnsTouched) {
        self.notify_changed();
        let version = self.body.machine_version;
        self.publisher
            .after_entry(&self.body.broker, version, touched);
    }

    /// Publishes everything anew (the state was replaced).
    pub(super) fn publish_all(&self) {
        self.notify_changed();
        let version = self.body.machine_version;
        self.publisher.all(&self.body.broker, version);
    }

    /// The batch of the entry at `index`. One that does not decode stops the node: skipping
    /// it would leave this node's state different from its peers' with no error.
    fn decode(&self, index: u64, request: &Request) -> io::Result<Batch> {
        let (version, batch) = envelope::decode(request).map_err(|error| {
            tracing::error!(
                index,
                %error,
                machine_version_max = envelope::MACHINE_VERSION,
                "cannot apply this entry: stopping (upgrade this node's binary)"
            );
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entry {index}: {error}"),
            )
        })?;
        let cluster = self.body.machine_version;
        if version > cluster {
            tracing::error!(
                index,
                version,
                cluster,
                "entry newer than the cluster's version"
            );
            let why = format!("entry {index} of machine version {version}, cluster at {cluster}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        Ok(batch)
    }

    /// Applies one entry's batch (unless its proposer's sequence says otherwise), shows the
    /// outcomes to the observer, returns the replies. An error is the message store's:
    /// fatal.
    fn apply_batch(
        &mut self,
        log_id: &LogIdOf<TypeConfig>,
        request: &Request,
    ) -> io::Result<Response> {
        let index = log_id.index;
        let batch = self.decode(index, request)?;
        if let Some(origin) = batch.origin {
            if let Err((sequenced, replies)) = self.body.sessions.check(origin) {
                return Ok(Response { replies, sequenced });
            }
        }
        let now_ms = batch.time_ms;
        let touched = ConnsTouched::of(&batch.commands);
        let mut outcomes = Vec::with_capacity(batch.commands.len());
        for command in batch.commands {
            let outcome = match command {
                Command::NodeDown { term, .. } if term != log_id.leader_id.term => {
                    tracing::warn!(term, index, "a deposed leader's node-down dropped");
                    Outcome::done()
                }
                Command::SetMachineVersion { version } => {
                    set_machine_version(&mut self.body.machine_version, version, index)?;
                    Outcome::done()
                }
                command => self.body.broker.apply(now_ms, command),
            };
            read_fault(&self.body.broker)?;
            outcomes.push(outcome);
        }
        if let Some(observer) = &self.observer {
            let state = AppliedState {
                broker: &self.body.broker,
            };
            observer.applied(index, &outcomes, &state);
            read_fault(&self.body.broker)?;
        }
        self.cold.after_entry(&mut self.body.broker)?;
        self.publish(&touched);
        let replies: Vec<_> = outcomes.into_iter().map(|o| o.reply).collect();
        if let Some(origin) = batch.origin {
            self.body.sessions.record(origin, index, &replies);
        }
        Ok(Response {
            replies,
            sequenced: Sequenced::Applied,
        })
    }
}

/// The failed read of the message store during the entry, if any: the model went on
/// without a message its peers have, so the entry fails (and openraft stops the node).
fn read_fault(broker: &BrokerState) -> io::Result<()> {
    match broker.messages.take_fault() {
        None => Ok(()),
        Some(error) => Err(io::Error::new(
            error.kind(),
            format!("read a stored message: {error}"),
        )),
    }
}

fn meta_of(body: &SnapshotBody) -> SnapshotMetaOf<TypeConfig> {
    SnapshotMetaOf::<TypeConfig> {
        last_log_id: body.last_applied,
        last_membership: body.membership.clone(),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for BrokerStateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snap, io::Error> {
        // What is in memory is copied under the lock, the stored messages are read and the
        // file written without it, so apply is not blocked by disk I/O (`snapshot.rs`).
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build_and_write())
            .await
            .map_err(io::Error::other)?
    }
}

impl RaftStateMachine<TypeConfig> for BrokerStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let inner = self.lock();
        Ok((inner.body.last_applied, inner.body.membership.clone()))
    }

    /// Applies the entries in chunks, each on a blocking thread: an entry's apply holds the
    /// state lock through the message store's inserts and removes (sled), which must not
    /// stall a runtime worker. Chunks go one after another and entries in log order within
    /// them, each entry under the lock as before, so readers see the same states.
    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        loop {
            let chunk = apply::next_chunk(&mut entries).await?;
            if chunk.is_empty() {
                return Ok(());
            }
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.apply_chunk(chunk))
                .await
                .map_err(io::Error::other)??;
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || this.install_received(&meta, snapshot))
            .await
            .map_err(io::Error::other)?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snap>, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_current())
            .await
            .map_err(io::Error::other)?
    }
}

#[cfg(test)]
#[path = "state_machine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "snapshot_inbox_tests.rs"]
mod inbox_tests;

#[cfg(test)]
#[path = "state_machine/apply_tests.rs"]
mod apply_tests;
