//! The checker's report: every count of CHECKER.md ("Counts and verdicts"), the
//! availability figures, example ids per class, the verdict and the printed table.
//!
//! `Report` is serialized as the run's `verdict.json`: its field names are a compatibility
//! boundary for scripts, so fields are only ever added.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::availability::Availability;
use super::jepsen::JepsenLine;

/// How many ids of each class the report keeps and prints (as Jepsen does).
pub const EXAMPLES_MAX: usize = 32;

/// The verdict of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid,
    /// The history cannot prove validity (incomplete drain, torn history), and shows no
    /// violation that does not depend on the drain.
    Unknown,
}

/// Every count of CHECKER.md. Set sizes count messages `(pid, mid)` unless stated.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub torn_tail: bool,
    /// `|A|`, `|C|`, `|N|`, `|R|`, `|U|`, `|D|`.
    pub attempted: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub unknown: u64,
    pub delivered: u64,
    /// Delivery lines, valid or not.
    pub deliveries: u64,
    /// `C - D`; must be 0 (after a complete drain).
    pub lost: u64,
    pub lost_prefix: u64,
    pub lost_middle: u64,
    pub lost_postfix: u64,
    /// Deliveries never invoked, with the wrong mid or queue, or a bad CRC; must be 0.
    pub unexpected: u64,
    /// `D ∩ U`: allowed.
    pub recovered: u64,
    /// `D ∩ N`; must be 0.
    pub nacked_delivered: u64,
    /// `|R|` and `D ∩ R`; both must be 0.
    pub returned: u64,
    pub returned_delivered: u64,
    /// `Σ max(0, k(m) - 1)` = redelivery + republish + ack_lost.
    pub duplicates: u64,
    pub dup_redelivery: u64,
    pub dup_republish: u64,
    pub dup_ack_lost: u64,
    /// Lost acks that a `tx.commit-ok` had covered; must be 0.
    pub ack_lost_committed: u64,
    /// Republish duplicates while dedup is on; must be 0.
    pub dedup_violation: u64,
    /// Same attempt delivered again with `redelivered=false`, or `x-delivery-count` going
    /// down; must be 0.
    pub bad_redelivered_flag: u64,
    /// Adjacent `seq` decreases per (publishing channel, queue, consuming channel), first
    /// deliveries only; must be 0. `order_inversions` counts all inverted pairs.
    pub order_violations: u64,
    pub order_inversions: u64,
    /// A `drain_start` was recorded.
    pub drain_seen: bool,
    /// Queues whose drain did not complete (or never ended, or left messages).
    pub drain_incomplete: u64,
    /// Node pairs with equal applied index and different state hashes; must be 0.
    pub digest_mismatch: u64,
    pub jepsen: JepsenLine,
    pub availability: Availability,
    /// The first `EXAMPLES_MAX` ids of every non-empty class.
    pub examples: BTreeMap<String, Vec<String>>,
    pub verdict: Option<Verdict>,
}

impl Report {
    /// Valid only if the drain completed, the history is whole and every must-be-0 class is
    /// 0. A violation that holds whatever the drain found (an unexpected delivery, a nacked
    /// message delivered, a reordering) is Invalid even when the drain is incomplete; a loss
    /// is only proven by a complete drain, so with an incomplete one it gives Unknown.
    pub fn verdict(&self) -> Verdict {
        let violations = [
            self.unexpected,
            self.nacked_delivered,
            self.returned,
            self.returned_delivered,
            self.dedup_violation,
            self.bad_redelivered_flag,
            self.order_violations,
            self.digest_mismatch,
            self.ack_lost_committed,
        ];
        if violations.iter().any(|&n| n > 0) {
            return Verdict::Invalid;
        }
        if self.torn_tail || !self.drain_seen || self.drain_incomplete > 0 {
            return Verdict::Unknown;
        }
        if self.lost > 0 {
            return Verdict::Invalid;
        }
        Verdict::Valid
    }

    /// Keeps an example id of a class (the first `EXAMPLES_MAX` only).
    pub fn example(&mut self, class: &str, id: String) {
        let ids = self.examples.entry(class.to_string()).or_default();
        if ids.len() < EXAMPLES_MAX {
            ids.push(id);
        }
    }

    /// The table, then the first ids of every non-empty class.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{:<24} {:>10}  rule", "class", "count");
        for (name, count, rule) in self.rows() {
            let mark = if rule == "must be 0" && count > 0 {
                "  <-- VIOLATION"
            } else {
                ""
            };
            let _ = writeln!(out, "{name:<24} {count:>10}  {rule}{mark}");
        }
        let _ = writeln!(out, "jepsen total-queue: {}", self.jepsen.render());
        out.push_str(&self.availability.render());
        if self.torn_tail {
            out.push_str("history: torn last line (the writer was killed)\n");
        }
        if !self.drain_seen {
            out.push_str("drain: none recorded (a run without a drain cannot pass)\n");
        }
        for (class, ids) in &self.examples {
            let _ = writeln!(out, "{class}: {}", ids.join(" "));
        }
        let _ = writeln!(out, "verdict: {:?}", self.verdict());
        out
    }

    fn rows(&self) -> Vec<(&'static str, u64, &'static str)> {
        const ZERO: &str = "must be 0";
        vec![
            ("attempted", self.attempted, ""),
            ("confirmed", self.confirmed, ""),
            ("nacked", self.nacked, ""),
            ("unknown", self.unknown, ""),
            ("delivered", self.delivered, ""),
            ("deliveries", self.deliveries, ""),
            ("lost", self.lost, ZERO),
            ("  lost_prefix", self.lost_prefix, ""),
            ("  lost_middle", self.lost_middle, ""),
            ("  lost_postfix", self.lost_postfix, ""),
            ("unexpected", self.unexpected, ZERO),
            ("recovered", self.recovered, "allowed"),
            ("nacked_delivered", self.nacked_delivered, ZERO),
            ("returned", self.returned, ZERO),
            ("returned_delivered", self.returned_delivered, ZERO),
            ("duplicates", self.duplicates, "allowed"),
            ("  dup_redelivery", self.dup_redelivery, ""),
            ("  dup_republish", self.dup_republish, ""),
            ("  dup_ack_lost", self.dup_ack_lost, ""),
            ("ack_lost_committed", self.ack_lost_committed, ZERO),
            ("dedup_violation", self.dedup_violation, ZERO),
            ("bad_redelivered_flag", self.bad_redelivered_flag, ZERO),
            ("order_violations", self.order_violations, ZERO),
            ("  order_inversions", self.order_inversions, ""),
            ("drain_incomplete", self.drain_incomplete, "unknown if > 0"),
            ("digest_mismatch", self.digest_mismatch, ZERO),
        ]
    }
}
