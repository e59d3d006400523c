//! Ordering per (publishing channel, queue, consuming channel).

use super::builder::{Dlv, Hist};
use super::run;
use crate::checker::Verdict;

/// Seqs 0..3 published and confirmed on one channel.
fn published() -> Hist {
    let mut h = Hist::new();
    for seq in 0..3 {
        h.confirmed(0, seq, seq);
    }
    h
}

#[test]
fn a_reordering_on_one_channel_pair_is_a_violation() {
    let mut h = published();
    for seq in [0, 2, 1] {
        h.deliver(Dlv::of(0, seq, seq));
    }
    h.drained();
    let report = run(&h);
    assert_eq!(report.order_violations, 1);
    assert_eq!(report.order_inversions, 1);
    assert_eq!(report.verdict(), Verdict::Invalid);
    assert!(report.examples["order_violations"][0].ends_with("s2>s1"));
}

#[test]
fn a_redelivered_message_out_of_order_is_allowed() {
    let mut h = published();
    h.deliver(Dlv::of(0, 0, 0));
    h.deliver(Dlv::of(0, 2, 2));
    h.deliver(Dlv::of(0, 1, 1).redelivered());
    h.drained();
    let report = run(&h);
    assert_eq!(report.order_violations, 0);
    assert_eq!(report.verdict(), Verdict::Valid, "{}", report.render());
}

#[test]
fn order_across_consuming_channels_is_not_compared() {
    let mut h = published();
    h.deliver(Dlv::of(0, 2, 2).on(1, 101, 101));
    h.deliver(Dlv::of(0, 0, 0));
    h.deliver(Dlv::of(0, 1, 1));
    h.drained();
    assert_eq!(run(&h).order_violations, 0);
}

#[test]
fn order_across_publishing_channels_is_not_compared() {
    let mut h = Hist::new();
    h.invoke_on(0, 0, 0, 1, 1).ok(0, 0);
    // A republish on a new channel after a reconnect.
    h.invoke_on(0, 1, 1, 2, 2).ok(0, 1);
    h.deliver(Dlv::of(0, 1, 1));
    h.deliver(Dlv::of(0, 0, 0));
    h.drained();
    let report = run(&h);
    assert_eq!(report.order_violations, 0);
    assert_eq!(report.verdict(), Verdict::Valid);
}
