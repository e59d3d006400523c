//! Availability and recovery figures.

use super::builder::{Dlv, Hist};
use super::run;
use crate::history::Event;

const MS: u64 = 1_000_000;

fn sample(leader: &str, term: u64) -> Event {
    Event::Cluster {
        node: "n1".into(),
        leader: Some(leader.into()),
        term,
        applied_index: 0,
    }
}

/// n1 leads at term 1; a kill of n1 at 100 ms to 400 ms; n2 leads at term 2 from 350 ms;
/// attempt 1 is invoked during the fault and confirmed at 500 ms.
fn killed_leader(f: &str, targets: &[&str]) -> Hist {
    let mut h = Hist::new();
    h.confirmed(0, 0, 0);
    h.push(sample("n1", 1));
    h.at(150 * MS).invoke(0, 1, 1);
    h.at(200 * MS).push(sample("n1", 1));
    h.at(350 * MS).push(sample("n2", 2));
    h.at(500 * MS).ok(0, 1);
    h.push(Event::Nemesis {
        t_start: 100 * MS,
        t_end: 400 * MS,
        f: f.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        detail: String::new(),
    });
    h.deliver(Dlv::of(0, 0, 0));
    h.deliver(Dlv::of(0, 1, 1));
    h.drained();
    h
}

#[test]
fn a_leader_kill_gives_election_and_first_confirm_times() {
    let report = run(&killed_leader("kill-leader", &["n1"]));
    let a = &report.availability;
    assert_eq!(a.leader_kills.len(), 1);
    let kill = &a.leader_kills[0];
    assert_eq!(kill.t_elect_ms, Some(250.0));
    assert_eq!(kill.t_first_confirm_ms, Some(400.0));
    assert_eq!(a.t_elect_ms.max, Some(250.0));
    assert_eq!((a.invoked_fault, a.confirmed_fault), (1, 1));
    assert_eq!((a.invoked_heal, a.confirmed_heal), (1, 1));
    assert_eq!(a.max_unavailability_ms, Some(350.0));
}

#[test]
fn a_kill_of_whoever_leads_counts_and_a_follower_kill_does_not() {
    let report = run(&killed_leader("kill", &["n1"]));
    assert_eq!(report.availability.leader_kills.len(), 1);
    let report = run(&killed_leader("kill", &["n3"]));
    assert_eq!(report.availability.leader_kills.len(), 0);
    assert_eq!(report.availability.invoked_fault, 1);
}

#[test]
fn unknown_publishes_lower_availability() {
    let mut h = Hist::new();
    h.confirmed(0, 0, 0);
    h.invoke(0, 1, 1).unknown(0, 1);
    h.deliver(Dlv::of(0, 0, 0));
    h.drained();
    let a = run(&h).availability;
    assert_eq!(a.avail_heal, Some(0.5));
    assert_eq!(a.avail_fault, None);
    assert_eq!(a.publish_unknown, 1);
}

fn window(t_start_ms: u64, t_end_ms: u64, f: &str) -> Event {
    Event::Nemesis {
        t_start: t_start_ms * MS,
        t_end: t_end_ms * MS,
        f: f.into(),
        targets: vec![],
        detail: String::new(),
    }
}

#[test]
fn overlapping_windows_merge_and_ends_are_inside() {
    let mut h = Hist::new();
    h.push(window(100, 200, "pause"))
        .push(window(150, 300, "partition"))
        .push(window(500, 600, "pause"));
    let sets = crate::checker::sets::Sets::derive(&h.build());
    let inside = |ms: u64| sets.in_fault(ms * MS);
    assert!(!inside(99) && inside(100) && inside(250) && inside(300));
    assert!(!inside(400) && inside(600) && !inside(601));
}

#[test]
fn first_confirms_after_a_kill_are_per_producer() {
    let mut h = Hist::new();
    h.at(120 * MS).invoke(0, 0, 0);
    h.at(130 * MS).ok(0, 0);
    h.at(140 * MS).invoke(1, 0, 0).unknown(1, 0);
    h.at(160 * MS).invoke(1, 1, 0);
    h.at(170 * MS).invoke(2, 0, 0);
    h.at(250 * MS).ok(1, 1);
    h.push(window(100, 400, "kill-leader"));
    let report = run(&h);
    let kill = &report.availability.leader_kills[0];
    assert_eq!(kill.t_first_confirm_ms, Some(30.0));
    assert_eq!(kill.t_first_confirm_slowest_producer_ms, Some(150.0));
    assert_eq!(kill.producers_without_confirm, 1);
    assert_eq!(kill.t_elect_ms, None, "no cluster sample, no election time");
}
