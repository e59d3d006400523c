//! What keeps every peer message within a frame (`CLUSTER_FRAME_MAX`) whatever the data: an
//! append carries at most `APPEND_BYTES_MAX` of entries (openraft is told how far it got),
//! and a snapshot travels in chunks that the receiver writes to a file as they come
//! (`PeerRequest::SnapshotChunk`; the sender is `PeerNetwork::send_snapshot`).

use openraft::raft::AppendEntriesRequest;

use super::protocol::PeerResponse;
use crate::raft::node::Raft;
use crate::raft::snapshot_data::SnapshotData;
use crate::raft::state_machine::{remove_received, BrokerStateMachine};
use crate::raft::types::{Entry, LogId, TypeConfig};

/// Reads up to `size` bytes: fewer only at the end of the snapshot.
pub(super) async fn read_chunk(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    size: usize,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        let want = (size - data.len()) as u64;
        if (&mut *reader).take(want).read_buf(&mut data).await? == 0 {
            break;
        }
    }
    Ok(data)
}

/// Keeps the entries of `rpc` that fit `budget` bytes of payload (at least one), so an
/// append never outgrows a peer frame; returns the last kept entry's log id when some were
/// left for the next request (openraft is told `PartialSuccess` up to it). The commit index
/// may stay: a follower commits only what it accepted from this leader.
pub fn cap_append(
    mut rpc: AppendEntriesRequest<TypeConfig>,
    budget: usize,
) -> (AppendEntriesRequest<TypeConfig>, Option<LogId>) {
    let mut bytes = 0usize;
    let over = rpc.entries.iter().position(|entry| {
        bytes = bytes.saturating_add(entry_bytes(entry));
        bytes > budget
    });
    match over {
        Some(i) if i.max(1) < rpc.entries.len() => {
            rpc.entries.truncate(i.max(1));
            let last = rpc.entries.last().map(|e| e.log_id);
            (rpc, last)
        }
        _ => (rpc, None),
    }
}

/// The bytes of entries `rpc` carries, near enough.
pub fn payload_bytes(rpc: &AppendEntriesRequest<TypeConfig>) -> usize {
    rpc.entries.iter().map(entry_bytes).sum()
}

/// An entry's size on the wire, near enough: its payload and a bound on the rest.
fn entry_bytes(entry: &Entry) -> usize {
    const OVERHEAD: usize = 64;
    match &entry.payload {
        openraft::EntryPayload::Normal(request) => OVERHEAD + request.0.len(),
        openraft::EntryPayload::Blank | openraft::EntryPayload::Membership(_) => OVERHEAD,
    }
}

/// Takes one chunk of a snapshot from the leader; with the last, hands the whole snapshot to
/// openraft to install (a received file not installed is removed).
pub(super) async fn receive_snapshot_chunk(
    raft: &Raft,
    state_machine: &BrokerStateMachine,
    vote: openraft::alias::VoteOf<TypeConfig>,
    meta: openraft::alias::SnapshotMetaOf<TypeConfig>,
    (offset, data, last): (u64, Vec<u8>, bool),
) -> PeerResponse {
    let sm = state_machine.clone();
    // Chunks of one sender's snapshot: its leader's vote and the snapshot's last log id.
    let id = format!("{vote:?}@{:?}", meta.last_log_id);
    let received =
        tokio::task::spawn_blocking(move || sm.receive_snapshot_chunk(&id, offset, &data, last))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
    let snapshot = match received {
        Ok(None) => return PeerResponse::Done(format!("received to {offset}")),
        Ok(Some(snapshot)) => snapshot,
        Err(e) => return PeerResponse::Error(format!("receive snapshot: {e}")),
    };
    let path = snapshot.path().map(std::path::Path::to_path_buf);
    let bytes = snapshot.len().unwrap_or_default();
    tracing::info!(bytes, last_log_id = ?meta.last_log_id, "snapshot received; installing");
    let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotData> { meta, snapshot };
    let installed = raft.install_full_snapshot(vote, snapshot).await;
    if let Some(path) = path {
        remove_received(&path);
    }
    match installed {
        Ok(response) => PeerResponse::FullSnapshot(response),
        Err(e) => PeerResponse::Error(format!("install snapshot: {e}")),
    }
}

#[cfg(test)]
#[path = "network_chunks_tests.rs"]
mod tests;
