//! Duplicates and the redelivered flag (CHECKER.md "Counts and verdicts").
//!
//! Every valid delivery of a message after its first is one duplicate, split by cause:
//! `republish` when it is a copy of an attempt not delivered before (two attempts of one mid
//! both enqueued; a `dedup_violation` too when dedup is on), `ack_lost` when the same attempt
//! comes again after a consumer had acked an earlier delivery of it, else `redelivery` (it was
//! never acked: consumer or node loss). Separately, a repeat of the same attempt must carry
//! `redelivered=true` and an `x-delivery-count` that does not go down.

use std::collections::BTreeMap;

use super::report::Report;
use super::sets::{AttemptKey, Delivery, MsgKey, Sets};
use super::CheckOptions;
use crate::history::SettleKind;

/// Fills the duplicate counts, `dedup_violation`, `ack_lost_committed` and
/// `bad_redelivered_flag`.
pub fn check_duplicates(sets: &Sets, opts: &CheckOptions, report: &mut Report) {
    let mut seen_msgs: BTreeMap<MsgKey, ()> = BTreeMap::new();
    let mut earlier: BTreeMap<AttemptKey, Vec<&Delivery>> = BTreeMap::new();
    for d in sets.valid_deliveries() {
        let id = format!("p{}:s{}:m{}", d.pid, d.seq, d.mid);
        let repeats_msg = seen_msgs.insert(d.msg(), ()).is_some();
        let before = earlier.entry(d.attempt()).or_default();
        if !before.is_empty() {
            check_flag(d, before, &id, report);
        }
        if repeats_msg {
            report.duplicates += 1;
            if before.is_empty() {
                report.dup_republish += 1;
                report.example("dup_republish", id.clone());
                if opts.dedup {
                    report.dedup_violation += 1;
                    report.example("dedup_violation", id.clone());
                }
            } else if let Some(committed) = acked_before(sets, before, d.t_ns) {
                report.dup_ack_lost += 1;
                report.example("dup_ack_lost", id.clone());
                if committed {
                    report.ack_lost_committed += 1;
                    report.example("ack_lost_committed", id.clone());
                }
            } else {
                report.dup_redelivery += 1;
                report.example("dup_redelivery", id.clone());
            }
        }
        before.push(d);
    }
}

/// A repeat of an attempt must say it may have been delivered before.
fn check_flag(d: &Delivery, before: &[&Delivery], id: &str, report: &mut Report) {
    let count_went_down = match (
        before.last().and_then(|p| p.delivery_count),
        d.delivery_count,
    ) {
        (Some(previous), Some(now)) => now < previous,
        _ => false,
    };
    if !d.redelivered || count_went_down {
        report.bad_redelivered_flag += 1;
        report.example("bad_redelivered_flag", id.to_string());
    }
}

/// Whether any earlier delivery of this attempt was acked before `t_ns`: `Some(committed)`,
/// `committed` when a `tx.commit-ok` on that channel followed the ack, also before `t_ns`.
fn acked_before(sets: &Sets, before: &[&Delivery], t_ns: u64) -> Option<bool> {
    let mut acked = None;
    for p in before {
        let Some((t_settle, kind)) = sets.settles.get(&(p.cid, p.ch, p.tag)) else {
            continue;
        };
        if *kind != SettleKind::Ack || *t_settle > t_ns {
            continue;
        }
        let committed = sets
            .tx_commits
            .get(&p.ch)
            .is_some_and(|ts| ts.iter().any(|t| *t >= *t_settle && *t <= t_ns));
        acked = Some(acked.unwrap_or(false) || committed);
    }
    acked
}
