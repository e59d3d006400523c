//! Duplicates, dedup and the redelivered flag.

use super::builder::{Dlv, Hist};
use super::run;
use crate::checker::{check, CheckOptions, Verdict};
use crate::history::Event;

/// One confirmed message delivered once and acked.
fn once() -> Hist {
    let mut h = Hist::new();
    h.confirmed(0, 0, 0);
    h
}

#[test]
fn a_redelivery_flagged_redelivered_is_an_allowed_duplicate() {
    let mut h = once();
    h.deliver_unsettled(Dlv::of(0, 0, 0));
    h.deliver(Dlv::of(0, 0, 0).on(1, 101, 101).redelivered());
    h.drained();
    let report = run(&h);
    assert_eq!((report.duplicates, report.dup_redelivery), (1, 1));
    assert_eq!(report.bad_redelivered_flag, 0);
    assert_eq!(report.verdict(), Verdict::Valid, "{}", report.render());
}

#[test]
fn a_redelivery_without_the_flag_is_flagged() {
    let mut h = once();
    h.deliver_unsettled(Dlv::of(0, 0, 0));
    h.deliver(Dlv::of(0, 0, 0).on(1, 101, 101));
    h.drained();
    let report = run(&h);
    assert_eq!(report.duplicates, 1);
    assert_eq!(report.bad_redelivered_flag, 1);
    assert_eq!(report.verdict(), Verdict::Invalid);
}

#[test]
fn a_delivery_count_going_down_is_flagged() {
    let mut h = once();
    h.deliver_unsettled(Dlv::of(0, 0, 0).count(2));
    h.deliver(Dlv::of(0, 0, 0).redelivered().count(1));
    h.drained();
    let report = run(&h);
    assert_eq!(report.bad_redelivered_flag, 1);
    assert_eq!(report.verdict(), Verdict::Invalid);
}

#[test]
fn a_redelivery_after_an_ack_is_a_lost_ack_and_invalid_once_committed() {
    let mut h = once();
    h.deliver(Dlv::of(0, 0, 0));
    h.deliver(Dlv::of(0, 0, 0).on(1, 101, 101).redelivered());
    h.drained();
    let report = run(&h);
    assert_eq!((report.dup_ack_lost, report.dup_redelivery), (1, 0));
    assert_eq!(report.verdict(), Verdict::Valid);

    // The same, but a tx.commit-ok covered the ack: the ack was promised, so it is a bug.
    let mut h = once();
    h.deliver(Dlv::of(0, 0, 0));
    h.push(Event::TxCommitOk { ch: 100 });
    h.deliver(Dlv::of(0, 0, 0).on(1, 101, 101).redelivered());
    h.drained();
    let report = run(&h);
    assert_eq!(report.ack_lost_committed, 1);
    assert_eq!(report.verdict(), Verdict::Invalid);
}

/// Attempt 0 of mid 0 times out, attempt 1 is confirmed, and both copies are delivered.
fn republished() -> Hist {
    let mut h = Hist::new();
    h.invoke(0, 0, 0).unknown(0, 0);
    h.confirmed(0, 1, 0);
    h.deliver(Dlv::of(0, 0, 0));
    h.deliver(Dlv::of(0, 1, 0));
    h.drained();
    h
}

#[test]
fn a_republish_duplicate_is_allowed_without_dedup() {
    let report = run(&republished());
    assert_eq!((report.duplicates, report.dup_republish), (1, 1));
    assert_eq!(report.dedup_violation, 0);
    assert_eq!(report.recovered, 0, "mid 0 is confirmed, not unknown");
    assert_eq!(
        report.jepsen.recovered_count, 1,
        "attempt 0 was never acked"
    );
    assert_eq!(report.verdict(), Verdict::Valid);
}

#[test]
fn a_republish_duplicate_violates_dedup() {
    let opts = CheckOptions { dedup: true };
    let report = check(&republished().build(), &opts);
    assert_eq!(report.dedup_violation, 1);
    assert_eq!(report.verdict(), Verdict::Invalid);
}
