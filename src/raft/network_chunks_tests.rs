//! An append never outgrows a peer frame: `cap_append` keeps what fits its budget (at least
//! one entry) and names the last entry it kept.

use openraft::entry::RaftEntry;
use openraft::vote::RaftLeaderIdExt;

use super::*;
use crate::raft::types::{Request, Vote};

const MIB: usize = 1024 * 1024;

fn log_id(index: u64) -> LogId {
    LogId::new(
        <openraft::alias::LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(1, 1),
        index,
    )
}

/// An append after entry 1 of entries 2.. with payloads of `sizes` bytes.
fn append(sizes: &[usize]) -> AppendEntriesRequest<TypeConfig> {
    let entries = sizes.iter().zip(2u64..);
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: Some(log_id(1)),
        leader_commit: Some(log_id(1)),
        entries: entries
            .map(|(size, i)| Entry::new_normal(log_id(i), Request(vec![0; *size])))
            .collect(),
    }
}

fn indexes(rpc: &AppendEntriesRequest<TypeConfig>) -> Vec<u64> {
    rpc.entries.iter().map(|e| e.log_id.index).collect()
}

#[test]
fn entries_over_the_budget_wait_for_the_next_request() {
    let (rpc, last) = cap_append(append(&[5 * MIB; 10]), 16 * MIB);
    assert_eq!(indexes(&rpc), vec![2, 3, 4]);
    assert_eq!(last, Some(log_id(4)));
    assert_eq!(rpc.prev_log_id, Some(log_id(1)));
    assert_eq!(rpc.leader_commit, Some(log_id(1)));
}

#[test]
fn one_entry_goes_even_when_it_alone_is_over_the_budget() {
    let (rpc, last) = cap_append(append(&[100 * MIB, 10]), 16 * MIB);
    assert_eq!((indexes(&rpc), last), (vec![2], Some(log_id(2))));
    let (rpc, last) = cap_append(append(&[100 * MIB]), 16 * MIB);
    assert_eq!((indexes(&rpc), last), (vec![2], None), "all of it went");
}

#[test]
fn an_append_within_the_budget_or_without_entries_is_sent_whole() {
    let (rpc, last) = cap_append(append(&[MIB; 8]), 16 * MIB);
    assert_eq!((rpc.entries.len(), last), (8, None));
    let (rpc, last) = cap_append(append(&[]), 16 * MIB);
    assert_eq!((rpc.entries.len(), last), (0, None));
}
