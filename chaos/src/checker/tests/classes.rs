//! Set classes, drain and digests.

use super::builder::{Dlv, Hist, Q0};
use super::run;
use crate::checker::Verdict;
use crate::history::Event;

/// Three confirmed messages of one producer, delivered in order and acked, then drained.
fn clean() -> Hist {
    let mut h = Hist::new();
    for seq in 0..3 {
        h.confirmed(0, seq, seq);
    }
    for seq in 0..3 {
        h.deliver(Dlv::of(0, seq, seq));
    }
    h.drained();
    h
}

#[test]
fn a_clean_history_is_valid() {
    let report = run(&clean());
    assert_eq!(report.verdict(), Verdict::Valid, "{}", report.render());
    assert_eq!(
        (report.attempted, report.confirmed, report.delivered),
        (3, 3, 3)
    );
    assert_eq!(report.lost + report.unexpected + report.duplicates, 0);
    assert!(report.examples.is_empty(), "{:?}", report.examples);
    assert_eq!(report.jepsen.ok_count, 3);
}

#[test]
fn a_confirmed_message_never_delivered_is_lost_and_placed() {
    let mut h = Hist::new();
    // Producer 0 loses its first, 1 its middle, 2 its last and 3 everything.
    for pid in 0..4 {
        for seq in 0..3 {
            h.confirmed(pid, seq, seq);
        }
    }
    for (pid, seqs) in [(0, [1, 2]), (1, [0, 2]), (2, [0, 1])] {
        for seq in seqs {
            h.deliver(Dlv::of(pid, seq, seq));
        }
    }
    h.drained();
    let report = run(&h);
    assert_eq!(report.verdict(), Verdict::Invalid);
    assert_eq!(report.lost, 6);
    assert_eq!(
        (report.lost_prefix, report.lost_middle, report.lost_postfix),
        (1, 1, 4)
    );
    assert_eq!(report.jepsen.lost_count, 6);
    assert!(report.render().contains("lost: p0:m0 p1:m1 p2:m2 p3:m0"));
}

#[test]
fn a_delivery_never_published_is_unexpected() {
    let mut h = clean();
    h.deliver(Dlv::of(9, 0, 0));
    let report = run(&h);
    assert_eq!(report.unexpected, 1);
    assert_eq!(report.jepsen.unexpected_count, 1);
    assert_eq!(report.verdict(), Verdict::Invalid);
    assert_eq!(report.examples["unexpected"], ["p9:s0:m0(never_invoked)"]);
}

#[test]
fn wrong_mid_or_wrong_queue_is_unexpected() {
    let mut h = clean();
    h.deliver(Dlv::of(0, 1, 7).redelivered());
    h.deliver(Dlv::of(0, 2, 2).queue("q1").redelivered());
    let report = run(&h);
    assert_eq!(report.unexpected, 2, "{}", report.render());
    let why = &report.examples["unexpected"];
    assert!(why[0].ends_with("(mid_mismatch)") && why[1].ends_with("(wrong_queue)"));
    // Unexpected deliveries are not duplicates of the real ones.
    assert_eq!(report.duplicates, 0);
}

#[test]
fn a_corrupt_body_is_unexpected_and_delivers_nothing() {
    let mut h = Hist::new();
    h.confirmed(0, 0, 0);
    h.deliver(Dlv::of(0, 0, 0).corrupt());
    h.drained();
    let report = run(&h);
    assert_eq!(report.unexpected, 1);
    assert_eq!(report.lost, 1, "a corrupt copy must not count as delivered");
    assert_eq!(report.verdict(), Verdict::Invalid);
}

#[test]
fn a_nacked_message_delivered_is_flagged() {
    let mut h = clean();
    h.invoke(0, 3, 3).nack(0, 3);
    h.deliver(Dlv::of(0, 3, 3));
    let report = run(&h);
    assert_eq!(report.nacked, 1);
    assert_eq!(report.nacked_delivered, 1);
    assert_eq!(report.recovered, 0);
    assert_eq!(report.verdict(), Verdict::Invalid);
}

#[test]
fn an_unknown_message_delivered_is_recovered_and_allowed() {
    let mut h = clean();
    h.invoke(0, 3, 3).unknown(0, 3);
    h.deliver(Dlv::of(0, 3, 3));
    let report = run(&h);
    assert_eq!((report.unknown, report.recovered), (1, 1));
    assert_eq!(report.verdict(), Verdict::Valid);
}

#[test]
fn a_returned_message_is_flagged_delivered_or_not() {
    let mut h = clean();
    h.invoke(0, 3, 3).returned(0, 3).ok(0, 3);
    let report = run(&h);
    assert_eq!((report.returned, report.returned_delivered), (1, 0));
    assert_eq!(
        report.confirmed, 3,
        "the ack after a return does not confirm"
    );
    assert_eq!(report.lost, 0);
    assert_eq!(report.verdict(), Verdict::Invalid);

    h.deliver(Dlv::of(0, 3, 3));
    let report = run(&h);
    assert_eq!((report.returned, report.returned_delivered), (1, 1));
    assert_eq!(report.verdict(), Verdict::Invalid);
}

#[test]
fn an_incomplete_drain_is_unknown_never_valid() {
    let mut h = Hist::new();
    h.confirmed(0, 0, 0);
    h.drain(&[Q0], false);
    let report = run(&h);
    assert_eq!(report.drain_incomplete, 1);
    assert_eq!(report.lost, 1);
    assert_eq!(report.verdict(), Verdict::Unknown);

    // No drain at all, or a drain that left messages ready, proves nothing either.
    let mut h = Hist::new();
    h.confirmed(0, 0, 0);
    h.deliver(Dlv::of(0, 0, 0));
    assert_eq!(run(&h).verdict(), Verdict::Unknown);
    h.push(Event::DrainStart).push(Event::DrainEnd {
        queue: Q0.into(),
        complete: true,
        ready: 2,
        unacked: 0,
    });
    assert_eq!(run(&h).verdict(), Verdict::Unknown);
}

#[test]
fn an_incomplete_drain_does_not_hide_a_violation_it_cannot_explain() {
    let mut h = Hist::new();
    h.confirmed(0, 0, 0);
    h.deliver(Dlv::of(5, 5, 5));
    h.drain(&[Q0], false);
    assert_eq!(run(&h).verdict(), Verdict::Invalid);
}

#[test]
fn a_torn_history_is_unknown() {
    let mut read = clean().build();
    read.torn_tail = true;
    let report = crate::checker::check(&read, &Default::default());
    assert_eq!(report.verdict(), Verdict::Unknown);
}

#[test]
fn digests_must_agree_at_equal_applied_index() {
    let digest = |node: &str, index: u64, hash: &str| Event::Digest {
        node: node.into(),
        applied_index: index,
        hash: hash.into(),
    };
    let mut h = clean();
    h.push(digest("n1", 10, "aa"))
        .push(digest("n2", 10, "aa"))
        .push(digest("n3", 9, "bb"));
    assert_eq!(run(&h).verdict(), Verdict::Valid);
    h.push(digest("n3", 10, "cc"));
    let report = run(&h);
    assert_eq!(report.digest_mismatch, 2);
    assert_eq!(report.verdict(), Verdict::Invalid);
}

#[test]
fn the_report_serializes_with_its_verdict() {
    let report = run(&clean());
    let json = serde_json::to_value(&report).expect("serialize");
    assert_eq!(json["lost"], 0);
    assert_eq!(json["verdict"], "valid");
    assert_eq!(json["jepsen"]["attempt_count"], 3);
}
