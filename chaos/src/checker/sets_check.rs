//! The set classes of CHECKER.md: lost (with NATS's prefix/middle/postfix breakout),
//! unexpected, recovered, nacked_delivered, returned and returned_delivered.

use std::collections::{BTreeMap, BTreeSet};

use super::report::Report;
use super::sets::{MsgKey, Sets};

/// Fills the set sizes and set classes of `report`.
pub fn check_sets(sets: &Sets, report: &mut Report) {
    let attempted = sets.attempted();
    let confirmed = sets.confirmed();
    let nacked = sets.nacked();
    let returned = sets.returned();
    let delivered = sets.delivered();
    let unknown: BTreeSet<MsgKey> = attempted
        .iter()
        .filter(|m| !confirmed.contains(m) && !nacked.contains(m) && !returned.contains(m))
        .copied()
        .collect();
    report.attempted = attempted.len() as u64;
    report.confirmed = confirmed.len() as u64;
    report.nacked = nacked.len() as u64;
    report.unknown = unknown.len() as u64;
    report.delivered = delivered.len() as u64;
    report.deliveries = sets.deliveries.len() as u64;

    for d in &sets.deliveries {
        if let Some(why) = d.unexpected {
            report.unexpected += 1;
            report.example(
                "unexpected",
                format!("p{}:s{}:m{}({why})", d.pid, d.seq, d.mid),
            );
        }
    }
    report.recovered = count_both(report, "recovered", &delivered, &unknown);
    report.nacked_delivered = count_both(report, "nacked_delivered", &delivered, &nacked);
    report.returned_delivered = count_both(report, "returned_delivered", &delivered, &returned);
    report.returned = returned.len() as u64;
    for m in &returned {
        report.example("returned", msg_id(*m));
    }
    check_lost(sets, &confirmed, &delivered, report);
}

/// `|a ∩ b|`, keeping examples under `class`.
fn count_both(report: &mut Report, class: &str, a: &BTreeSet<MsgKey>, b: &BTreeSet<MsgKey>) -> u64 {
    let both: Vec<MsgKey> = a.intersection(b).copied().collect();
    for m in &both {
        report.example(class, msg_id(*m));
    }
    both.len() as u64
}

/// `C - D`, each lost message placed by the `seq` of its first confirmed attempt against the
/// first and last delivered `seq` of its producer. A producer with no delivery at all has
/// everything after its (absent) last delivery: postfix.
fn check_lost(
    sets: &Sets,
    confirmed: &BTreeSet<MsgKey>,
    delivered: &BTreeSet<MsgKey>,
    report: &mut Report,
) {
    let mut span: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for d in sets.valid_deliveries() {
        let entry = span.entry(d.pid).or_insert((d.seq, d.seq));
        entry.0 = entry.0.min(d.seq);
        entry.1 = entry.1.max(d.seq);
    }
    for m in confirmed.difference(delivered) {
        report.lost += 1;
        report.example("lost", msg_id(*m));
        let seq = confirmed_seq(sets, *m).unwrap_or(0);
        match span.get(&m.0) {
            Some((first, _)) if seq < *first => report.lost_prefix += 1,
            Some((_, last)) if seq <= *last => report.lost_middle += 1,
            _ => report.lost_postfix += 1,
        }
    }
}

/// The `seq` of a message's first attempt with a `publish_ok`.
fn confirmed_seq(sets: &Sets, (pid, mid): MsgKey) -> Option<u64> {
    sets.seqs_of.get(&(pid, mid))?.iter().copied().find(|seq| {
        sets.attempts
            .get(&(pid, *seq))
            .is_some_and(|a| a.t_ok_ns.is_some())
    })
}

/// How a message is named in the report: `p<pid>:m<mid>`.
pub fn msg_id((pid, mid): MsgKey) -> String {
    format!("p{pid}:m{mid}")
}
