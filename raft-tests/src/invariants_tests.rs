//! The checkers must be able to fail: each is shown a violation it has to catch.

use openraft::alias::LeaderIdOf;
use openraft::entry::RaftEntry;
use openraft::vote::RaftLeaderId;
use openraft::LogId;

use warren::raft::types::{Entry, Request, TypeConfig};

use super::{assert_pair_matches, record, Recorder};

/// An entry at `index` written by node `node` in `term`, holding `data`.
fn entry(term: u64, node: u64, index: u64, data: u8) -> Entry {
    let leader = LeaderIdOf::<TypeConfig>::new(term, node).to_committed();
    Entry::new_normal(LogId::new(leader, index), Request(vec![data]))
}

#[test]
fn one_leader_per_term_passes() {
    let recorder = Recorder::default();
    record(&recorder.leaders, vec![(1, 1), (1, 1), (2, 3)]);
    recorder.assert_one_leader_per_term();
}

#[test]
#[should_panic(expected = "term 2 had leaders")]
fn two_leaders_in_one_term_are_caught() {
    let recorder = Recorder::default();
    record(&recorder.leaders, vec![(1, 1), (2, 2), (2, 3)]);
    recorder.assert_one_leader_per_term();
}

#[test]
fn a_diverging_uncommitted_tail_matches() {
    let a = [entry(1, 1, 1, 1), entry(1, 1, 2, 2), entry(2, 1, 3, 3)];
    let b = [entry(1, 1, 1, 1), entry(1, 1, 2, 2), entry(3, 2, 3, 9)];
    assert_pair_matches((1, &a), (2, &b));
}

#[test]
#[should_panic(expected = "same log id, other entry")]
fn same_log_id_other_payload_is_caught() {
    let a = [entry(1, 1, 1, 1), entry(1, 1, 2, 2)];
    let b = [entry(1, 1, 1, 1), entry(1, 1, 2, 7)];
    assert_pair_matches((1, &a), (2, &b));
}

#[test]
#[should_panic(expected = "but differ below")]
fn a_match_above_a_difference_is_caught() {
    let a = [entry(1, 1, 1, 1), entry(2, 2, 2, 2)];
    let b = [entry(1, 2, 1, 1), entry(2, 2, 2, 2)];
    assert_pair_matches((1, &a), (2, &b));
}
