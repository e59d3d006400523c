//! `SegmentLogStore`: the durable Raft log and vote store.
//!
//! # Layout
//!
//! The store is a directory of segment files named `NNNNNNNN.log` (zero-padded decimal). Each
//! file is a sequence of framed [`LogRecord`]s (see [`super::record`]). Replaying every record of
//! every segment in name order rebuilds the in-memory state: the live entries (a
//! `BTreeMap<u64, Entry>`), the vote, the committed log id and the last purged log id.
//!
//! Records are appended to the last (highest numbered) segment. Once it reaches
//! [`SegmentOptions::segment_bytes`] the writer starts a new segment whose first records are a
//! checkpoint of the vote, committed id and purge point (so older segments are never needed for
//! those). A *prefix* of old segments is deleted once every entry they appended is purged. Only a
//! prefix may go: a `TruncateAfter` in segment k can only affect entries of segments <= k.
//!
//! # Durability argument
//!
//! A single writer thread owns the open segment file. Every mutation is encoded into a record by
//! the caller and sent over a bounded channel together with its completion (an openraft
//! [`IOFlushed`] callback or a oneshot). The writer drains everything currently queued, issues
//! **one** `write_all` of the concatenated records and **one** `sync_data()` (fdatasync), and only
//! after `sync_data()` has returned `Ok` does it fire the completions of that batch. Therefore:
//!
//! * openraft is told "flushed" for an `append` only once the entries are on stable storage, which
//!   is what makes it safe for the leader to count this node's ack towards a quorum;
//! * `save_vote` awaits its completion, so a vote is durable before it returns, i.e. before the
//!   node can grant a vote or act as a candidate based on it;
//! * records reach the file in channel order, so replay sees mutations in the order openraft
//!   issued them (e.g. a truncate is never reordered after a later append).
//!
//! If a write or fdatasync fails, the writer fails that batch and *every later request*: after a
//! failed fsync the page-cache state of the file is unknown, so the only safe recovery is a
//! restart, which re-reads what actually reached the disk.
//!
//! # Recovery
//!
//! At open, a record cut short at the end of the last segment (a torn write from a crash while
//! a batch was being written; it was never acknowledged) is truncated away with a WARN. An
//! all-zero tail (file size extended but data blocks never written) is treated the same way. Any
//! other decode failure — a CRC mismatch, unknown version or malformed payload anywhere, or a
//! short record in a non-final segment — is corruption of possibly acknowledged data, and the
//! store refuses to open. So does a newest segment shorter than the tail mark (`tail_mark`):
//! records cut away at a record boundary decode as a valid shorter log, and only the mark,
//! written after each sync, shows that acknowledged records are gone.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use tokio::sync::{mpsc, oneshot};

use super::record::{self, LogRecord, RecordError};
use super::tail_mark::{self, Mark, TailMark};
use super::types::{Entry, LogId, TypeConfig, Vote};

/// Capacity of the writer queue (in requests, not bytes). Senders block when it is full, which
/// applies back-pressure to openraft instead of buffering without bound.
const WRITER_QUEUE: usize = 1024;

/// In-memory view of the log, rebuilt from the records at open and kept in step with every
/// record submitted to the writer.
#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

impl State {
    fn apply(&mut self, rec: LogRecord) {
        match rec {
            LogRecord::Append(entries) => {
                for e in entries {
                    self.entries.insert(e.index(), e);
                }
            }
            LogRecord::Vote(v) => self.vote = Some(v),
            LogRecord::TruncateAfter(None) => self.entries.clear(),
            LogRecord::TruncateAfter(Some(id)) => {
                let _ = self.entries.split_off(&(id.index() + 1));
            }
            LogRecord::Purge(id) => {
                let keep = self.entries.split_off(&(id.index() + 1));
                self.entries = keep;
                if self.last_purged.as_ref().is_none_or(|p| p < &id) {
                    self.last_purged = Some(id);
                }
            }
            LogRecord::Committed(c) => self.committed = c,
        }
    }
}

/// Tuning knobs for [`SegmentLogStore`].
#[derive(Clone, Debug)]
pub struct SegmentOptions {
    /// Start a new segment once the active one is at least this large (bytes).
    pub segment_bytes: u64,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the writer needs to know about a record to track segment contents, without decoding it.
enum Meta {
    Append(Option<u64>),
    Vote(Vote),
    Committed(Option<LogId>),
    Purge(LogId),
    Truncate,
}

impl Meta {
    fn of(rec: &LogRecord) -> Self {
        match rec {
            LogRecord::Append(es) => Meta::Append(es.iter().map(|e| e.index()).max()),
            LogRecord::Vote(v) => Meta::Vote(*v),
            LogRecord::Committed(c) => Meta::Committed(*c),
            LogRecord::Purge(id) => Meta::Purge(*id),
            LogRecord::TruncateAfter(_) => Meta::Truncate,
        }
    }
}

/// How to report completion of a write request.
enum Completion {
    /// openraft's log-IO callback.
    Flushed(IOFlushed<TypeConfig>),
    /// A caller awaiting durability (e.g. `save_vote`).
    Ack(oneshot::Sender<io::Result<()>>),
    /// Nobody waits (the record is still ordered and synced with the next batch).
    None,
}

impl Completion {
    fn complete(self, res: &io::Result<()>) {
        let res = match res {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        match self {
            Completion::Flushed(cb) => cb.io_completed(res),
            Completion::Ack(tx) => {
                let _ = tx.send(res);
            }
            Completion::None => {}
        }
    }
}

struct WriteReq {
    bytes: Vec<u8>,
    meta: Meta,
    done: Completion,
}

/// Shared, read-mostly part of the store.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of in-memory data that
        // is a pure function of the records; keep serving rather than cascading the panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Append-only, fdatasync-ed Raft log storage in a directory of segment files.
///
/// Cloning is cheap; clones share the same state and writer.
#[derive(Clone)]
pub struct SegmentLogStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<WriteReq>,
    dir: PathBuf,
}

impl Debug for SegmentLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLogStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Read-only handle returned by [`RaftLogStorage::get_log_reader`]; reads the in-memory index.
#[derive(Clone, Debug)]
pub struct SegmentLogReader {
    shared: Arc<Shared>,
}

fn segment_name(n: u64) -> String {
    format!("{n:08}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn corrupt(path: &Path, offset: usize, e: RecordError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "raft log {} corrupt at offset {offset}: {e}",
            path.display()
        ),
    )
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl SegmentLogStore {
    /// Open (or create) the log in `dir`, replay it, and start the writer thread.
    ///
    /// Does not need a Tokio runtime: the writer is a plain OS thread. Fails with
    /// `InvalidData` if the log is corrupt anywhere other than a torn tail.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        Self::open_with(dir, SegmentOptions::default())
    }

    /// [`open`](Self::open) with explicit options.
    pub fn open_with(dir: impl AsRef<Path>, opts: SegmentOptions) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;

        let mut segments: Vec<(u64, PathBuf)> = Vec::new();
        for ent in fs::read_dir(&dir)? {
            let ent = ent?;
            if let Some(n) = ent.file_name().to_str().and_then(parse_segment_name) {
                segments.push((n, ent.path()));
            }
        }
        segments.sort();

        let mut state = State::default();
        let seg_count = segments.len();
        let mut seg_max = BTreeMap::new();
        for (i, (n, path)) in segments.iter().enumerate() {
            let is_last = i + 1 == seg_count;
            let max = Self::replay_segment(path, is_last, &mut state)?;
            seg_max.insert(*n, max);
        }

        // After replay (which may have cut a torn tail): the newest segment must still hold
        // everything the writer had synced.
        let last = match segments.last() {
            Some((n, p)) => Some((*n, fs::metadata(p)?.len())),
            None => None,
        };
        tail_mark::check(tail_mark::read(&dir)?, last, &dir)?;

        let (active_no, active, created) = match segments.last() {
            Some((n, p)) => (*n, p.clone(), false),
            None => {
                seg_max.insert(0, None);
                (0, dir.join(segment_name(0)), true)
            }
        };
        let file = OpenOptions::new().create(true).append(true).open(&active)?;
        if created {
            // Make the new file's directory entry durable too, or a crash could lose the whole
            // segment even though its data was fdatasync-ed.
            file.sync_all()?;
            sync_dir(&dir)?;
        }

        let (vote, committed, purged) = (state.vote, state.committed, state.last_purged);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
        });
        let seg_len = file.metadata()?.len();
        let writer = Writer {
            mark: TailMark::open(&dir)?,
            dir: dir.clone(),
            opts,
            file,
            active_no,
            seg_len,
            seg_max,
            vote,
            committed,
            purged,
        };
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer.run(rx))?;

        Ok(Self { shared, tx, dir })
    }

    /// Replay one segment into `state`. In the last segment a torn tail is cut off.
    /// Returns the greatest entry index appended by this segment.
    fn replay_segment(path: &Path, is_last: bool, state: &mut State) -> io::Result<Option<u64>> {
        let mut max_index = None;
        let buf = fs::read(path)?;
        let mut off = 0usize;
        while off < buf.len() {
            let rest = &buf[off..];
            match record::decode(rest) {
                Ok((rec, n)) => {
                    if let Meta::Append(Some(m)) = Meta::of(&rec) {
                        max_index = max_index.max(Some(m));
                    }
                    state.apply(rec);
                    off += n;
                }
                Err(e) => {
                    let torn =
                        matches!(e, RecordError::Truncated { .. }) || rest.iter().all(|&b| b == 0);
                    if !(torn && is_last) {
                        return Err(corrupt(path, off, e));
                    }
                    tracing::warn!(
                        path = %path.display(),
                        offset = off,
                        dropped_bytes = rest.len(),
                        error = %e,
                        "raft log has a torn tail record (crash during write); truncating it"
                    );
                    let f = OpenOptions::new().write(true).open(path)?;
                    f.set_len(off as u64)?;
                    f.sync_all()?;
                    break;
                }
            }
        }
        Ok(max_index)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Apply `rec` to the in-memory state and queue it for the writer.
    ///
    /// The in-memory update and the enqueue happen under the state lock so the order records
    /// reach the file is the order their effects became visible.
    async fn submit(&self, rec: LogRecord, done: Completion) -> io::Result<()> {
        let bytes = record::encode(&rec)?;
        let meta = Meta::of(&rec);
        let permit = self.tx.reserve().await.map_err(|_| writer_gone())?;
        {
            let mut st = self.shared.lock();
            st.apply(rec);
            permit.send(WriteReq { bytes, meta, done });
        }
        Ok(())
    }

    /// Submit `rec` and wait until it is on stable storage.
    async fn submit_durable(&self, rec: LogRecord) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(rec, Completion::Ack(tx)).await?;
        rx.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "raft log writer has stopped")
}

/// The writer thread's state: owns the active segment and mirrors exactly what has been
/// written to disk (unlike [`State`], which may be ahead by the queued records).
struct Writer {
    /// Where the writer had got to, recorded after each sync (`tail_mark`).
    mark: TailMark,
    dir: PathBuf,
    opts: SegmentOptions,
    file: File,
    active_no: u64,
    seg_len: u64,
    /// Greatest entry index appended by each segment (`None`: no entries).
    seg_max: BTreeMap<u64, Option<u64>>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

impl Writer {
    /// Batch, write once, fdatasync once, then complete the batch.
    fn run(mut self, mut rx: mpsc::Receiver<WriteReq>) {
        let mut failed: Option<io::Error> = None;
        let mut buf: Vec<u8> = Vec::new();
        let mut metas: Vec<Meta> = Vec::new();
        let mut waiters: Vec<Completion> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            buf.clear();
            buf.extend_from_slice(&first.bytes);
            metas.push(first.meta);
            waiters.push(first.done);
            while let Ok(req) = rx.try_recv() {
                buf.extend_from_slice(&req.bytes);
                metas.push(req.meta);
                waiters.push(req.done);
            }

            let res = match &failed {
                Some(e) => Err(io::Error::new(
                    e.kind(),
                    format!("earlier log IO failed: {e}"),
                )),
                None => self.write_batch(&buf, metas.drain(..)),
            };
            metas.clear();
            if let Err(e) = &res {
                if failed.is_none() {
                    tracing::error!(error = %e, "raft log write/fdatasync failed; log is now read-only");
                    failed = Some(io::Error::new(e.kind(), e.to_string()));
                }
            }
            // Only now — after sync_data() returned — may anyone learn that the batch is durable.
            for w in waiters.drain(..) {
                w.complete(&res);
            }
        }
    }

    fn write_batch(&mut self, buf: &[u8], metas: impl Iterator<Item = Meta>) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.file.sync_data()?;
        self.seg_len += buf.len() as u64;
        // Before the batch's completions fire: whatever is acknowledged is under the mark.
        self.mark.record(Mark {
            segment: self.active_no,
            len: self.seg_len,
        })?;
        let mut purged_now = false;
        for m in metas {
            match m {
                Meta::Append(Some(max)) => {
                    let slot = self.seg_max.entry(self.active_no).or_insert(None);
                    *slot = (*slot).max(Some(max));
                }
                Meta::Append(None) | Meta::Truncate => {}
                Meta::Vote(v) => self.vote = Some(v),
                Meta::Committed(c) => self.committed = c,
                Meta::Purge(id) => {
                    if self.purged.is_none_or(|p| p < id) {
                        self.purged = Some(id);
                    }
                    purged_now = true;
                }
            }
        }
        // The batch is durable; rotation/cleanup failures below are still reported (and poison
        // the writer) because the log directory is then in an unknown state.
        let rotated = if self.seg_len >= self.opts.segment_bytes {
            self.rotate()?;
            true
        } else {
            false
        };
        if rotated || purged_now {
            self.delete_purged_prefix()?;
        }
        Ok(())
    }

    /// Start segment `active_no + 1`, beginning with a durable checkpoint of vote, committed id
    /// and purge point, so that no older segment is needed for them.
    fn rotate(&mut self) -> io::Result<()> {
        let next = self.active_no + 1;
        let path = self.dir.join(segment_name(next));
        let mut header = Vec::new();
        if let Some(v) = self.vote {
            record::encode_into(&LogRecord::Vote(v), &mut header)?;
        }
        if let Some(p) = self.purged {
            record::encode_into(&LogRecord::Purge(p), &mut header)?;
        }
        record::encode_into(&LogRecord::Committed(self.committed), &mut header)?;
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        file.write_all(&header)?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        tracing::debug!(segment = next, "raft log rotated to a new segment");
        self.file = file;
        self.active_no = next;
        self.seg_len = header.len() as u64;
        self.seg_max.insert(next, None);
        self.mark.record(Mark {
            segment: next,
            len: self.seg_len,
        })?;
        Ok(())
    }

    /// Delete the longest prefix of non-active segments whose entries are all purged.
    fn delete_purged_prefix(&mut self) -> io::Result<()> {
        let purged = self.purged.map(|p| p.index());
        let mut deleted = false;
        while let Some((&n, &max)) = self.seg_max.first_key_value() {
            let all_purged = match max {
                None => true,
                Some(m) => purged.is_some_and(|p| m <= p),
            };
            if n == self.active_no || !all_purged {
                break;
            }
            fs::remove_file(self.dir.join(segment_name(n)))?;
            self.seg_max.remove(&n);
            deleted = true;
            tracing::debug!(segment = n, "deleted fully purged raft log segment");
        }
        if deleted {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for SegmentLogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let st = self.shared.lock();
        Ok(st.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.lock().vote)
    }
}

/// The store reads through the same code as its reader handles.
impl RaftLogReader<TypeConfig> for SegmentLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        self.reader().try_get_log_entries(range).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.reader().read_vote().await
    }
}

impl SegmentLogStore {
    fn reader(&self) -> SegmentLogReader {
        SegmentLogReader {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl RaftLogStorage<TypeConfig> for SegmentLogStore {
    type LogReader = SegmentLogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let st = self.shared.lock();
        let last_purged_log_id = st.last_purged;
        let last_log_id = st
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id())
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    /// Durable before returning: a vote must never be forgotten after it was granted.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.submit_durable(LogRecord::Vote(*vote)).await
    }

    /// Not awaited: losing the committed id only costs re-deriving it from a quorum.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.submit(LogRecord::Committed(committed), Completion::None)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.shared.lock().committed)
    }

    /// Returns once queued; `callback` fires only after the batch's fdatasync.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.submit(LogRecord::Append(entries), Completion::Flushed(callback))
            .await
    }

    /// Durable before returning, so a crash cannot resurrect conflicting entries.
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.submit_durable(LogRecord::TruncateAfter(last_log_id))
            .await
    }

    /// Durable before returning (cheap: it rides along with the next batch's fdatasync).
    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.submit_durable(LogRecord::Purge(log_id)).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::log::{StoreBuilder, Suite};
    use openraft::type_config::TypeConfigExt;
    use openraft::vote::RaftLeaderIdExt;
    use openraft::{ErrorSubject, ErrorVerb, StorageError};
    use tempfile::TempDir;

    use super::*;
    use crate::raft::test_sm::MemStateMachine;
    use crate::raft::types::Request;

    struct Builder;

    impl StoreBuilder<TypeConfig, SegmentLogStore, MemStateMachine, TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(TempDir, SegmentLogStore, MemStateMachine), StorageError<TypeConfig>> {
            let dir = TempDir::new().map_err(|e| {
                StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e)
            })?;
            let store = SegmentLogStore::open(dir.path()).map_err(|e| {
                StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e)
            })?;
            Ok((dir, store, MemStateMachine::default()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segment_log_store_passes_openraft_suite() -> Result<(), StorageError<TypeConfig>> {
        Suite::test_all(Builder).await?;
        Ok(())
    }

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(
            <openraft::alias::LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(term, 1),
            index,
        )
    }

    async fn append_durably(store: &mut SegmentLogStore, entries: Vec<Entry>) {
        let (tx, rx) = TypeConfig::oneshot();
        store
            .append(entries, IOFlushed::signal(tx))
            .await
            .expect("append");
        rx.await.expect("callback").expect("flush");
    }

    fn entries(term: u64, range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range
            .map(|i| Entry::new_normal(log_id(term, i), Request(vec![i as u8])))
            .collect()
    }

    fn segment_path(dir: &Path) -> PathBuf {
        dir.join(segment_name(0))
    }

    #[tokio::test]
    async fn reopen_reads_back_entries_vote_and_committed() {
        let dir = TempDir::new().expect("tempdir");
        {
            let mut s = SegmentLogStore::open(dir.path()).expect("open");
            append_durably(&mut s, entries(1, 1..=5)).await;
            append_durably(&mut s, entries(2, 6..=8)).await;
            s.truncate_after(Some(log_id(2, 7)))
                .await
                .expect("truncate");
            s.purge(log_id(1, 2)).await.expect("purge");
            s.save_committed(Some(log_id(2, 6))).await.expect("commit");
            s.save_vote(&Vote::new_committed(2, 1)).await.expect("vote");
        }
        let mut s = SegmentLogStore::open(dir.path()).expect("reopen");
        let got = s.try_get_log_entries(..).await.expect("read");
        let want: Vec<Entry> = entries(1, 3..=5)
            .into_iter()
            .chain(entries(2, 6..=7))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            s.read_vote().await.expect("vote"),
            Some(Vote::new_committed(2, 1))
        );
        assert_eq!(
            s.read_committed().await.expect("committed"),
            Some(log_id(2, 6))
        );
        let st = s.get_log_state().await.expect("state");
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 2)));
        assert_eq!(st.last_log_id, Some(log_id(2, 7)));

        // And it keeps working after reopen.
        append_durably(&mut s, entries(3, 8..=8)).await;
        drop(s);
        let mut s = SegmentLogStore::open(dir.path()).expect("reopen 2");
        assert_eq!(
            s.try_get_log_entries(8..).await.expect("read"),
            entries(3, 8..=8)
        );
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_on_open() {
        let dir = TempDir::new().expect("tempdir");
        {
            let mut s = SegmentLogStore::open(dir.path()).expect("open");
            append_durably(&mut s, entries(1, 1..=3)).await;
        }
        let path = segment_path(dir.path());
        let good_len = fs::metadata(&path).expect("meta").len();
        // Simulate a crash mid-write: a partial record at the tail.
        let partial = record::encode(&LogRecord::Append(entries(1, 4..=4))).expect("encode");
        {
            let mut f = OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open seg");
            f.write_all(&partial[..partial.len() - 3]).expect("write");
        }
        let mut s = SegmentLogStore::open(dir.path()).expect("reopen with torn tail");
        assert_eq!(fs::metadata(&path).expect("meta").len(), good_len);
        assert_eq!(
            s.try_get_log_entries(..).await.expect("read"),
            entries(1, 1..=3)
        );
        append_durably(&mut s, entries(1, 4..=4)).await;
        drop(s);
        let mut s = SegmentLogStore::open(dir.path()).expect("reopen");
        assert_eq!(
            s.try_get_log_entries(..).await.expect("read"),
            entries(1, 1..=4)
        );
    }

    #[tokio::test]
    async fn zeroed_tail_is_truncated_on_open() {
        let dir = TempDir::new().expect("tempdir");
        {
            let mut s = SegmentLogStore::open(dir.path()).expect("open");
            append_durably(&mut s, entries(1, 1..=2)).await;
        }
        let path = segment_path(dir.path());
        {
            let mut f = OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open seg");
            f.write_all(&[0u8; 100]).expect("write");
        }
        let mut s = SegmentLogStore::open(dir.path()).expect("reopen with zero tail");
        assert_eq!(
            s.try_get_log_entries(..).await.expect("read"),
            entries(1, 1..=2)
        );
    }

    /// Writes two durable batches, flips `mask` into byte `offset` of the segment, and
    /// returns what opening the store then says (it must refuse, with `InvalidData`).
    async fn open_error_after_flip(offset: usize, mask: u8) -> io::Error {
        let dir = TempDir::new().expect("tempdir");
        {
            let mut s = SegmentLogStore::open(dir.path()).expect("open");
            append_durably(&mut s, entries(1, 1..=3)).await;
            append_durably(&mut s, entries(1, 4..=6)).await;
        }
        let path = segment_path(dir.path());
        let mut bytes = fs::read(&path).expect("read");
        bytes[offset] ^= mask;
        fs::write(&path, &bytes).expect("write");
        let err = SegmentLogStore::open(dir.path()).expect_err("must refuse corrupt log");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(fs::read(&path).expect("reread"), bytes, "nothing was cut");
        err
    }

    #[tokio::test]
    async fn crc_mismatch_in_middle_refuses_to_open() {
        // Flip a payload bit in the first record.
        let err = open_error_after_flip(record::HEADER_LEN + 2, 0x10).await;
        assert!(err.to_string().contains("crc"), "{err}");
    }

    /// A segment cut at a record boundary reads back as a valid, shorter log: only the tail
    /// mark shows that acknowledged records are gone, and the store must refuse to open.
    #[tokio::test]
    async fn a_cut_at_a_record_boundary_refuses_to_open() {
        let dir = TempDir::new().expect("tempdir");
        let path = segment_path(dir.path());
        let first_len = {
            let mut s = SegmentLogStore::open(dir.path()).expect("open");
            append_durably(&mut s, entries(1, 1..=3)).await;
            let first_len = fs::metadata(&path).expect("meta").len();
            append_durably(&mut s, entries(1, 4..=6)).await;
            first_len
        };
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open seg")
            .set_len(first_len)
            .expect("cut");
        let err = SegmentLogStore::open(dir.path()).expect_err("must refuse a cut log");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("lost acknowledged records"),
            "{err}"
        );
    }

    /// Found while adding the chaos bitflip nemesis: with a crc over the payload only, a bit
    /// flipped upwards in the length of a record in the last segment pointed past the end of
    /// the file and was cut away as a torn tail, with every acknowledged record after it.
    /// The header crc makes it corruption.
    #[tokio::test]
    async fn a_flipped_length_is_corruption_not_a_torn_tail() {
        // The length's third byte: the first record now claims 64 KiB more than the file holds.
        let err = open_error_after_flip(3, 0x01).await;
        assert!(err.to_string().contains("header crc"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_are_batched_and_all_flushed() {
        let dir = TempDir::new().expect("tempdir");
        let mut s = SegmentLogStore::open(dir.path()).expect("open");
        let mut rxs = Vec::new();
        for i in 1..=200u64 {
            let (tx, rx) = TypeConfig::oneshot();
            s.append(entries(1, i..=i), IOFlushed::signal(tx))
                .await
                .expect("append");
            rxs.push(rx);
        }
        for rx in rxs {
            rx.await.expect("callback").expect("flush");
        }
        drop(s);
        let mut s = SegmentLogStore::open(dir.path()).expect("reopen");
        assert_eq!(s.try_get_log_entries(..).await.expect("read").len(), 200);
    }

    struct SmallSegmentBuilder;

    impl StoreBuilder<TypeConfig, SegmentLogStore, MemStateMachine, TempDir> for SmallSegmentBuilder {
        async fn build(
            &self,
        ) -> Result<(TempDir, SegmentLogStore, MemStateMachine), StorageError<TypeConfig>> {
            let dir = TempDir::new().map_err(|e| {
                StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e)
            })?;
            let store =
                SegmentLogStore::open_with(dir.path(), SegmentOptions { segment_bytes: 200 })
                    .map_err(|e| {
                        StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e)
                    })?;
            Ok((dir, store, MemStateMachine::default()))
        }
    }

    /// The suite again, with tiny segments so rotation and segment deletion happen constantly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segment_log_store_passes_openraft_suite_with_tiny_segments(
    ) -> Result<(), StorageError<TypeConfig>> {
        Suite::test_all(SmallSegmentBuilder).await?;
        Ok(())
    }

    fn segment_numbers(dir: &Path) -> Vec<u64> {
        let mut v: Vec<u64> = fs::read_dir(dir)
            .expect("read_dir")
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(parse_segment_name))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn rotation_and_purge_delete_old_segments_keeping_vote() {
        let dir = TempDir::new().expect("tempdir");
        let opts = SegmentOptions { segment_bytes: 300 };
        {
            let mut s = SegmentLogStore::open_with(dir.path(), opts.clone()).expect("open");
            // The vote record lands in segment 0, which is deleted below.
            s.save_vote(&Vote::new_committed(1, 1)).await.expect("vote");
            s.save_committed(Some(log_id(1, 50))).await.expect("commit");
            for i in 1..=100 {
                append_durably(&mut s, entries(1, i..=i)).await;
            }
            let before = segment_numbers(dir.path());
            assert!(before.len() > 3, "expected rotation, got {before:?}");
            assert_eq!(before[0], 0);

            s.purge(log_id(1, 80)).await.expect("purge");
            let after = segment_numbers(dir.path());
            assert!(after[0] > 0, "segment 0 should be deleted: {after:?}");
            assert!(after.len() < before.len(), "{before:?} -> {after:?}");
            assert_eq!(after.last(), before.last());
        }
        let mut s = SegmentLogStore::open_with(dir.path(), opts).expect("reopen");
        assert_eq!(
            s.try_get_log_entries(..).await.expect("read"),
            entries(1, 81..=100)
        );
        assert_eq!(
            s.read_vote().await.expect("vote"),
            Some(Vote::new_committed(1, 1))
        );
        assert_eq!(
            s.read_committed().await.expect("committed"),
            Some(log_id(1, 50))
        );
        let st = s.get_log_state().await.expect("state");
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 80)));
        assert_eq!(st.last_log_id, Some(log_id(1, 100)));
    }

    #[tokio::test]
    async fn truncate_across_segments_survives_reopen() {
        let dir = TempDir::new().expect("tempdir");
        let opts = SegmentOptions { segment_bytes: 200 };
        {
            let mut s = SegmentLogStore::open_with(dir.path(), opts.clone()).expect("open");
            for i in 1..=40 {
                append_durably(&mut s, entries(1, i..=i)).await;
            }
            s.truncate_after(Some(log_id(1, 10)))
                .await
                .expect("truncate");
            append_durably(&mut s, entries(2, 11..=12)).await;
            // Purging a little must not delete a segment still holding live entries.
            s.purge(log_id(1, 3)).await.expect("purge");
        }
        let mut s = SegmentLogStore::open_with(dir.path(), opts).expect("reopen");
        let want: Vec<Entry> = entries(1, 4..=10)
            .into_iter()
            .chain(entries(2, 11..=12))
            .collect();
        assert_eq!(s.try_get_log_entries(..).await.expect("read"), want);
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_name(7), "00000007.log");
        assert_eq!(parse_segment_name("00000007.log"), Some(7));
        assert_eq!(parse_segment_name("x.log"), None);
        assert_eq!(parse_segment_name(".log"), None);
        assert_eq!(parse_segment_name("00000007.tmp"), None);
    }
}
