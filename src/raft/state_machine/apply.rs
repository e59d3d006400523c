//! The state machine's apply off the async runtime: openraft's stream of committed entries
//! is read in chunks, and each chunk is applied on a blocking thread
//! (`RaftStateMachine::apply` in `state_machine.rs`), because an entry holds the state lock
//! through a disk node's message store writes (sled). Within a chunk every entry is applied
//! under the lock on its own, in log order, exactly as it would be on the runtime: a cold
//! message stays readable until after its entry, and a snapshot build copies the state
//! between two entries.

use std::io;

use futures::{Stream, TryStreamExt};
use openraft::alias::{EntryOf, StoredMembershipOf};
use openraft::storage::EntryResponder;
use openraft::EntryPayload;

use super::{BrokerStateMachine, Inner};
use crate::raft::types::{Response, TypeConfig};

/// The next entries of `entries`, up to `APPLY_CHUNK_ENTRIES_MAX` of them or the first that
/// reaches `APPLY_CHUNK_BYTES_MAX` of payload; empty at the end.
pub(super) async fn next_chunk<Strm>(
    entries: &mut Strm,
) -> io::Result<Vec<EntryResponder<TypeConfig>>>
where
    Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin,
{
    use crate::limits::{APPLY_CHUNK_BYTES_MAX, APPLY_CHUNK_ENTRIES_MAX};
    let mut chunk = Vec::new();
    let mut n_bytes = 0usize;
    while chunk.len() < APPLY_CHUNK_ENTRIES_MAX && n_bytes < APPLY_CHUNK_BYTES_MAX {
        let Some(item) = entries.try_next().await? else {
            break;
        };
        if let EntryPayload::Normal(request) = &item.0.payload {
            n_bytes = n_bytes.saturating_add(request.0.len());
        }
        chunk.push(item);
    }
    Ok(chunk)
}

impl BrokerStateMachine {
    /// Applies `chunk` in order and answers each entry's responder. Blocking: the message
    /// store is written.
    pub(super) fn apply_chunk(&self, chunk: Vec<EntryResponder<TypeConfig>>) -> io::Result<()> {
        for (entry, responder) in chunk {
            let response = self.apply_entry(entry)?;
            if let Some(r) = responder {
                r.send(response);
            }
        }
        Ok(())
    }

    /// Applies one entry under the state lock.
    fn apply_entry(&self, entry: EntryOf<TypeConfig>) -> io::Result<Response> {
        let mut inner = self.lock();
        inner.body.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => Ok(Response::default()),
            EntryPayload::Normal(request) => {
                self.count_log_bytes(&mut inner, request.0.len());
                inner.apply_batch(&entry.log_id, &request)
            }
            EntryPayload::Membership(m) => {
                inner.body.membership =
                    StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m);
                Ok(Response::default())
            }
        }
    }

    /// Counts an entry's payload towards the next snapshot, and asks for one when due.
    fn count_log_bytes(&self, inner: &mut Inner, n_bytes: usize) {
        let before = inner.log_bytes_since_snapshot;
        let after = before.saturating_add(n_bytes as u64);
        inner.log_bytes_since_snapshot = after;
        // Asked again at every further multiple, in case openraft was busy (a build
        // running) when asked.
        let limit = crate::limits::SNAPSHOT_AFTER_LOG_BYTES;
        if after / limit > before / limit {
            self.snapshot_wanted.notify_one();
        }
    }
}
