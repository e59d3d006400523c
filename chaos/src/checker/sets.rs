//! The derived sets of CHECKER.md ("Drain, then derived sets"), read once from a history:
//! attempts by `(pid, seq)`, logical messages by `(pid, mid)`, and every delivery classified
//! as valid or unexpected.
//!
//! A message is keyed by `(pid, mid)`, not `mid` alone: a workload may number mids per
//! producer, and a republish always comes from the same producer. Only valid deliveries (an
//! invoked attempt, the right mid and queue, a good CRC) count in `D`, so a corrupt body can
//! never "deliver" a message and hide a loss.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{Event, Phase, ReadHistory, SettleKind};

/// A logical message: `(pid, mid)`.
pub type MsgKey = (u64, u64);
/// A publish attempt: `(pid, seq)`.
pub type AttemptKey = (u64, u64);

/// One publish attempt and its outcomes.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub mid: u64,
    pub queue: String,
    pub conn: u64,
    pub ch: u64,
    pub t_invoke_ns: u64,
    /// Time of the `publish_ok`, if any.
    pub t_ok_ns: Option<u64>,
    pub nacked: bool,
    pub returned: bool,
    pub unknown: bool,
}

/// One `deliver` line.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub t_ns: u64,
    pub cid: u64,
    pub conn: u64,
    pub ch: u64,
    pub queue: String,
    pub pid: u64,
    pub seq: u64,
    pub mid: u64,
    pub redelivered: bool,
    pub delivery_count: Option<u32>,
    pub tag: u64,
    pub phase: Phase,
    /// Why it is unexpected; `None` for a valid delivery.
    pub unexpected: Option<&'static str>,
}

impl Delivery {
    pub fn msg(&self) -> MsgKey {
        (self.pid, self.mid)
    }

    pub fn attempt(&self) -> AttemptKey {
        (self.pid, self.seq)
    }
}

/// A fault window from a `nemesis` line.
#[derive(Clone, Debug)]
pub struct Window {
    pub t_start_ns: u64,
    pub t_end_ns: u64,
    pub f: String,
    pub targets: Vec<String>,
}

/// A `cluster` sample.
#[derive(Clone, Debug)]
pub struct Sample {
    pub t_ns: u64,
    pub leader: Option<String>,
    pub term: u64,
}

/// Everything the checks need, derived from one history.
#[derive(Debug, Default)]
pub struct Sets {
    pub attempts: BTreeMap<AttemptKey, Attempt>,
    /// Attempts of each message, in invoke order.
    pub seqs_of: BTreeMap<MsgKey, Vec<u64>>,
    pub deliveries: Vec<Delivery>,
    /// `(cid, ch, tag)` -> time and kind of its settle.
    pub settles: BTreeMap<(u64, u64, u64), (u64, SettleKind)>,
    /// `tx_commit_ok` times per channel.
    pub tx_commits: BTreeMap<u64, Vec<u64>>,
    pub windows: Vec<Window>,
    pub samples: Vec<Sample>,
    /// Last `drain_end` per queue: complete, ready, unacked.
    pub drain_ends: BTreeMap<String, (bool, u64, u64)>,
    pub t_drain_start_ns: Option<u64>,
    /// `(node, applied_index, hash)` of every `digest` line.
    pub digests: Vec<(String, u64, String)>,
    pub n_publish_unknown: u64,
    pub t_last_ns: u64,
    /// The fault windows merged and sorted, for `in_fault` by binary search.
    fault_spans: Vec<(u64, u64)>,
}

impl Sets {
    /// Reads every line of `history` into the sets.
    pub fn derive(history: &ReadHistory) -> Sets {
        let mut sets = Sets::default();
        for line in &history.lines {
            sets.t_last_ns = sets.t_last_ns.max(line.t);
            sets.add(line.t, &line.event);
        }
        let unexpected: Vec<Option<&'static str>> = sets
            .deliveries
            .iter()
            .map(|d| sets.why_unexpected(d))
            .collect();
        for (delivery, why) in sets.deliveries.iter_mut().zip(unexpected) {
            delivery.unexpected = why;
        }
        sets.fault_spans = merge_spans(&sets.windows);
        sets
    }

    fn add(&mut self, t: u64, event: &Event) {
        match event {
            Event::PublishInvoke {
                conn,
                ch,
                pid,
                seq,
                mid,
                queue,
                ..
            } => {
                let attempt = Attempt {
                    mid: *mid,
                    queue: queue.clone(),
                    conn: *conn,
                    ch: *ch,
                    t_invoke_ns: t,
                    t_ok_ns: None,
                    nacked: false,
                    returned: false,
                    unknown: false,
                };
                self.attempts.insert((*pid, *seq), attempt);
                self.seqs_of.entry((*pid, *mid)).or_default().push(*seq);
            }
            Event::PublishOk { pid, seq } => self.outcome(*pid, *seq, |a| {
                a.t_ok_ns.get_or_insert(t);
            }),
            Event::PublishNack { pid, seq } => self.outcome(*pid, *seq, |a| a.nacked = true),
            Event::PublishReturned { pid, seq, .. } => {
                self.outcome(*pid, *seq, |a| a.returned = true)
            }
            Event::PublishUnknown { pid, seq, .. } => {
                self.n_publish_unknown += 1;
                self.outcome(*pid, *seq, |a| a.unknown = true);
            }
            Event::Deliver { .. } => self.add_delivery(t, event),
            Event::Settle {
                cid, ch, tag, kind, ..
            } => {
                self.settles.entry((*cid, *ch, *tag)).or_insert((t, *kind));
            }
            Event::TxCommitOk { ch } => self.tx_commits.entry(*ch).or_default().push(t),
            Event::Nemesis {
                t_start,
                t_end,
                f,
                targets,
                ..
            } => self.windows.push(Window {
                t_start_ns: *t_start,
                t_end_ns: (*t_end).max(*t_start),
                f: f.clone(),
                targets: targets.clone(),
            }),
            Event::Cluster { leader, term, .. } => self.samples.push(Sample {
                t_ns: t,
                leader: leader.clone(),
                term: *term,
            }),
            Event::DrainStart => {
                self.t_drain_start_ns.get_or_insert(t);
            }
            Event::DrainEnd {
                queue,
                complete,
                ready,
                unacked,
            } => {
                self.drain_ends
                    .insert(queue.clone(), (*complete, *ready, *unacked));
            }
            Event::Digest {
                node,
                applied_index,
                hash,
            } => self
                .digests
                .push((node.clone(), *applied_index, hash.clone())),
            Event::FaultsStart | Event::FinalHeal => {}
        }
    }

    /// Applies an outcome to its attempt. An outcome for an attempt never invoked is ignored
    /// here: it cannot make a message confirmed, so it cannot hide a loss.
    fn outcome(&mut self, pid: u64, seq: u64, apply: impl FnOnce(&mut Attempt)) {
        if let Some(attempt) = self.attempts.get_mut(&(pid, seq)) {
            apply(attempt);
        }
    }

    fn add_delivery(&mut self, t: u64, event: &Event) {
        let Event::Deliver {
            cid,
            conn,
            ch,
            queue,
            pid,
            seq,
            mid,
            redelivered,
            delivery_count,
            tag,
            body_ok,
            phase,
            ..
        } = event
        else {
            return;
        };
        self.deliveries.push(Delivery {
            t_ns: t,
            cid: *cid,
            conn: *conn,
            ch: *ch,
            queue: queue.clone(),
            pid: *pid,
            seq: *seq,
            mid: *mid,
            redelivered: *redelivered,
            delivery_count: *delivery_count,
            tag: *tag,
            phase: *phase,
            // Corrupt bodies are marked here (the flag is not kept); the rest in `derive`.
            unexpected: (!body_ok).then_some("corrupt_body"),
        });
    }

    fn why_unexpected(&self, d: &Delivery) -> Option<&'static str> {
        if d.unexpected.is_some() {
            return d.unexpected;
        }
        let Some(attempt) = self.attempts.get(&d.attempt()) else {
            return Some("never_invoked");
        };
        if attempt.mid != d.mid {
            return Some("mid_mismatch");
        }
        if attempt.queue != d.queue {
            return Some("wrong_queue");
        }
        None
    }

    /// Valid deliveries, in history order.
    pub fn valid_deliveries(&self) -> impl Iterator<Item = &Delivery> {
        self.deliveries.iter().filter(|d| d.unexpected.is_none())
    }

    /// `A`: every attempted message.
    pub fn attempted(&self) -> BTreeSet<MsgKey> {
        self.seqs_of.keys().copied().collect()
    }

    /// `R`: messages with a `basic.return`.
    pub fn returned(&self) -> BTreeSet<MsgKey> {
        self.msgs_where(|a| a.returned)
    }

    /// `C`: messages with at least one `publish_ok`, minus `R`.
    pub fn confirmed(&self) -> BTreeSet<MsgKey> {
        let returned = self.returned();
        let mut confirmed = self.msgs_where(|a| a.t_ok_ns.is_some());
        confirmed.retain(|m| !returned.contains(m));
        confirmed
    }

    /// `N`: messages all of whose attempts were nacked.
    pub fn nacked(&self) -> BTreeSet<MsgKey> {
        self.seqs_of
            .iter()
            .filter(|((pid, _), seqs)| {
                seqs.iter()
                    .all(|seq| self.attempts.get(&(*pid, *seq)).is_some_and(|a| a.nacked))
            })
            .map(|(key, _)| *key)
            .collect()
    }

    /// `D`: messages with at least one valid delivery.
    pub fn delivered(&self) -> BTreeSet<MsgKey> {
        self.valid_deliveries().map(Delivery::msg).collect()
    }

    fn msgs_where(&self, keep: impl Fn(&Attempt) -> bool) -> BTreeSet<MsgKey> {
        self.attempts
            .iter()
            .filter(|(_, a)| keep(a))
            .map(|((pid, _), a)| (*pid, a.mid))
            .collect()
    }

    /// Whether `t_ns` falls inside any fault window (both ends included).
    pub fn in_fault(&self, t_ns: u64) -> bool {
        let after = self
            .fault_spans
            .partition_point(|(start, _)| *start <= t_ns);
        after > 0 && t_ns <= self.fault_spans[after - 1].1
    }
}

/// Windows as sorted, disjoint `[start, end]` spans (overlapping or touching ones merged).
fn merge_spans(windows: &[Window]) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = windows.iter().map(|w| (w.t_start_ns, w.t_end_ns)).collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}
