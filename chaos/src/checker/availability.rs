//! Availability and recovery (CHECKER.md): reported per fault class, never pass/fail.
//!
//! Fault windows are the `nemesis` lines' `[t_start, t_end]`. An attempt counts as "in a
//! fault" when it was invoked inside a window. A nemesis is a **leader kill** when its `f`
//! contains "kill" and either contains "leader" (`kill-leader`, `pause-kill-leader`, ...) or
//! one of its `targets` equals the leader of the last `cluster` sample before it started
//! (so `kill` with the leader as target counts too). For each, `t_elect` is the first
//! sample after the kill with a leader at a higher term than any seen before it, and
//! `t_first_confirm` the first `publish_ok` of an attempt invoked at or after the kill.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::sets::{Sets, Window};

/// p50/p99/max of a sample, in milliseconds; `None` when empty.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub n: u64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    pub fn of(mut values: Vec<f64>) -> Percentiles {
        values.sort_by(f64::total_cmp);
        let rank = |q: f64| -> Option<f64> {
            let last = values.len().checked_sub(1)?;
            let index = ((q * values.len() as f64).ceil() as usize).saturating_sub(1);
            values.get(index.min(last)).copied()
        };
        Percentiles {
            n: values.len() as u64,
            p50: rank(0.50),
            p99: rank(0.99),
            max: values.last().copied(),
        }
    }

    fn render(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        format!(
            "n {} p50 {} p99 {} max {} ms",
            self.n,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// One leader kill and how long recovery took.
#[derive(Clone, Debug, Serialize)]
pub struct LeaderKill {
    pub t_ms: f64,
    pub f: String,
    pub targets: Vec<String>,
    pub t_elect_ms: Option<f64>,
    pub t_first_confirm_ms: Option<f64>,
    /// The slowest producer's first confirm after the kill (reconnect included).
    pub t_first_confirm_slowest_producer_ms: Option<f64>,
    /// Producers that invoked after the kill and never got a confirm again.
    pub producers_without_confirm: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Availability {
    pub invoked_fault: u64,
    pub confirmed_fault: u64,
    pub avail_fault: Option<f64>,
    pub invoked_heal: u64,
    pub confirmed_heal: u64,
    pub avail_heal: Option<f64>,
    pub fault_s: f64,
    pub heal_s: f64,
    pub deliveries_per_s_fault: Option<f64>,
    pub deliveries_per_s_heal: Option<f64>,
    pub leader_kills: Vec<LeaderKill>,
    pub t_elect_ms: Percentiles,
    pub t_first_confirm_ms: Percentiles,
    /// Over kills, the slowest producer's first confirm (its reconnect included).
    pub t_first_confirm_slowest_producer_ms: Percentiles,
    pub max_unavailability_ms: Option<f64>,
    pub longest_confirm_gap_ms: Option<f64>,
    pub confirm_latency_fault_ms: Percentiles,
    pub confirm_latency_heal_ms: Percentiles,
    pub publish_unknown: u64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Availability {
    pub fn from_sets(sets: &Sets) -> Availability {
        let mut a = Availability {
            publish_unknown: sets.n_publish_unknown,
            ..Availability::default()
        };
        a.confirms(sets);
        a.rates(sets);
        a.leader_kills = leader_kills(sets);
        let elect = a.leader_kills.iter().filter_map(|k| k.t_elect_ms).collect();
        a.t_elect_ms = Percentiles::of(elect);
        let first = a.leader_kills.iter().filter_map(|k| k.t_first_confirm_ms);
        a.t_first_confirm_ms = Percentiles::of(first.collect());
        let slowest = a
            .leader_kills
            .iter()
            .filter_map(|k| k.t_first_confirm_slowest_producer_ms);
        a.t_first_confirm_slowest_producer_ms = Percentiles::of(slowest.collect());
        a
    }

    /// Availability and latency of confirms in and out of faults, the longest wait of a
    /// message for its confirm (retries included) and the longest confirm gap.
    fn confirms(&mut self, sets: &Sets) {
        let (mut latency_fault, mut latency_heal, mut oks) = (vec![], vec![], vec![]);
        let mut first_by_msg: BTreeMap<(u64, u64), (u64, Option<u64>)> = BTreeMap::new();
        for ((pid, _), attempt) in &sets.attempts {
            let ok = attempt.t_ok_ns.filter(|_| !attempt.returned);
            let fault = sets.in_fault(attempt.t_invoke_ns);
            let (invoked, confirmed, latency) = if fault {
                (
                    &mut self.invoked_fault,
                    &mut self.confirmed_fault,
                    &mut latency_fault,
                )
            } else {
                (
                    &mut self.invoked_heal,
                    &mut self.confirmed_heal,
                    &mut latency_heal,
                )
            };
            *invoked += 1;
            if let Some(t_ok) = ok {
                *confirmed += 1;
                latency.push(ms(t_ok.saturating_sub(attempt.t_invoke_ns)));
                oks.push(t_ok);
            }
            let first = first_by_msg
                .entry((*pid, attempt.mid))
                .or_insert((attempt.t_invoke_ns, None));
            first.0 = first.0.min(attempt.t_invoke_ns);
            if let Some(t_ok) = ok {
                first.1 = Some(first.1.map_or(t_ok, |t: u64| t.min(t_ok)));
            }
        }
        self.avail_fault = ratio(self.confirmed_fault, self.invoked_fault);
        self.avail_heal = ratio(self.confirmed_heal, self.invoked_heal);
        self.confirm_latency_fault_ms = Percentiles::of(latency_fault);
        self.confirm_latency_heal_ms = Percentiles::of(latency_heal);
        self.max_unavailability_ms = first_by_msg
            .values()
            .filter_map(|(t_invoke, t_ok)| t_ok.map(|t| ms(t.saturating_sub(*t_invoke))))
            .max_by(f64::total_cmp);
        oks.sort_unstable();
        self.longest_confirm_gap_ms = oks
            .windows(2)
            .map(|w| ms(w[1] - w[0]))
            .max_by(f64::total_cmp);
    }

    /// Run-phase deliveries per second in and out of faults, over the run (first invoke to
    /// the drain's start).
    fn rates(&mut self, sets: &Sets) {
        let Some(start) = sets.attempts.values().map(|a| a.t_invoke_ns).min() else {
            return;
        };
        let end = sets.t_drain_start_ns.unwrap_or(sets.t_last_ns).max(start);
        let fault_ns = union_ns(&sets.windows, start, end);
        let heal_ns = (end - start).saturating_sub(fault_ns);
        self.fault_s = fault_ns as f64 / 1e9;
        self.heal_s = heal_ns as f64 / 1e9;
        let run = sets
            .deliveries
            .iter()
            .filter(|d| d.phase == crate::history::Phase::Run);
        let (in_fault, out): (Vec<_>, Vec<_>) = run.partition(|d| sets.in_fault(d.t_ns));
        let per_s = |n: usize, s: f64| (s > 0.0).then(|| n as f64 / s);
        self.deliveries_per_s_fault = per_s(in_fault.len(), self.fault_s);
        self.deliveries_per_s_heal = per_s(out.len(), self.heal_s);
    }

    pub fn render(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        let rate = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}/s"));
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "availability: fault {} ({}/{} over {:.1} s), heal {} ({}/{} over {:.1} s)",
            pct(self.avail_fault),
            self.confirmed_fault,
            self.invoked_fault,
            self.fault_s,
            pct(self.avail_heal),
            self.confirmed_heal,
            self.invoked_heal,
            self.heal_s
        );
        let _ = writeln!(
            out,
            "deliveries: fault {}, heal {}",
            rate(self.deliveries_per_s_fault),
            rate(self.deliveries_per_s_heal)
        );
        let _ = writeln!(out, "leader kills: {}", self.leader_kills.len());
        let _ = writeln!(out, "  t_elect:         {}", self.t_elect_ms.render());
        let _ = writeln!(
            out,
            "  t_first_confirm: {}",
            self.t_first_confirm_ms.render()
        );
        let _ = writeln!(
            out,
            "max_unavailability {}, longest confirm gap {}, publish_unknown {}",
            ms(self.max_unavailability_ms),
            ms(self.longest_confirm_gap_ms),
            self.publish_unknown
        );
        let _ = writeln!(
            out,
            "confirm latency fault: {}",
            self.confirm_latency_fault_ms.render()
        );
        let _ = writeln!(
            out,
            "confirm latency heal:  {}",
            self.confirm_latency_heal_ms.render()
        );
        out
    }
}

/// Total time covered by `windows` within `[start, end]`.
fn union_ns(windows: &[Window], start: u64, end: u64) -> u64 {
    let mut spans: Vec<(u64, u64)> = windows
        .iter()
        .map(|w| (w.t_start_ns.max(start), w.t_end_ns.min(end)))
        .filter(|(a, b)| a < b)
        .collect();
    spans.sort_unstable();
    let (mut total, mut reach) = (0, start);
    for (a, b) in spans {
        let a = a.max(reach);
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total
}

/// One producer's attempts in invoke order (`seq` order), with, from each attempt on, the
/// earliest confirm among it and the later ones: "first confirm after t" by binary search.
struct ProducerConfirms {
    t_invoke_ns: Vec<u64>,
    first_ok_ns_from: Vec<Option<u64>>,
}

impl ProducerConfirms {
    fn index(sets: &Sets) -> BTreeMap<u64, ProducerConfirms> {
        let mut by_pid: BTreeMap<u64, Vec<(u64, Option<u64>)>> = BTreeMap::new();
        for ((pid, _), a) in &sets.attempts {
            let ok = a.t_ok_ns.filter(|_| !a.returned);
            by_pid.entry(*pid).or_default().push((a.t_invoke_ns, ok));
        }
        let mut index = BTreeMap::new();
        for (pid, mut attempts) in by_pid {
            attempts.sort_by_key(|(t, _)| *t);
            let mut first_ok_ns_from = vec![None; attempts.len()];
            let mut earliest: Option<u64> = None;
            for (i, (_, ok)) in attempts.iter().enumerate().rev() {
                earliest = match (earliest, ok) {
                    (Some(e), Some(o)) => Some(e.min(*o)),
                    (e, o) => e.or(*o),
                };
                first_ok_ns_from[i] = earliest;
            }
            let t_invoke_ns = attempts.iter().map(|(t, _)| *t).collect();
            index.insert(
                pid,
                ProducerConfirms {
                    t_invoke_ns,
                    first_ok_ns_from,
                },
            );
        }
        index
    }

    /// `None` if the producer invoked nothing at or after `t_ns`, else its first confirm of
    /// an attempt invoked since (`Some(None)`: none confirmed).
    fn first_ok_from(&self, t_ns: u64) -> Option<Option<u64>> {
        let from = self.t_invoke_ns.partition_point(|t| *t < t_ns);
        self.first_ok_ns_from.get(from).copied()
    }
}

/// Every leader kill with its recovery times.
fn leader_kills(sets: &Sets) -> Vec<LeaderKill> {
    let by_producer = ProducerConfirms::index(sets);
    let mut kills = vec![];
    for w in &sets.windows {
        let before = sets.samples.iter().filter(|s| s.t_ns < w.t_start_ns);
        let term_before = before.clone().map(|s| s.term).max().unwrap_or(0);
        let leader_before = before.clone().next_back().and_then(|s| s.leader.clone());
        let names_leader = w.f.contains("leader");
        let targets_leader = leader_before
            .as_ref()
            .is_some_and(|l| w.targets.contains(l));
        if !w.f.contains("kill") || !(names_leader || targets_leader) {
            continue;
        }
        let t_k = w.t_start_ns;
        let t_elect_ms = sets
            .samples
            .iter()
            .find(|s| s.t_ns >= t_k && s.leader.is_some() && s.term > term_before)
            .map(|s| ms(s.t_ns - t_k));
        // Per producer that invoked at or after the kill: its first confirm since then.
        let first_by_pid: Vec<Option<u64>> = by_producer
            .values()
            .filter_map(|p| p.first_ok_from(t_k))
            .collect();
        let confirmed = first_by_pid.iter().flatten();
        kills.push(LeaderKill {
            t_ms: ms(t_k),
            f: w.f.clone(),
            targets: w.targets.clone(),
            t_elect_ms,
            t_first_confirm_ms: confirmed.clone().min().map(|t| ms(t - t_k)),
            t_first_confirm_slowest_producer_ms: confirmed.max().map(|t| ms(t - t_k)),
            producers_without_confirm: first_by_pid.iter().filter(|t| t.is_none()).count() as u64,
        });
    }
    kills
}
