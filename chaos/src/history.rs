//! The chaos run's history: one JSON object per line, in the order events happened
//! (`../shared/CHECKER.md`, "History").
//!
//! Every line carries `t`, nanoseconds since the run started on the monotonic clock, and
//! `wall_ns`, the Unix time in nanoseconds, so a history can be lined up with node logs. The
//! workload, the nemesis scheduler and the cluster poller all record through one `History`
//! handle, so a single clock orders everything. Writes are line-buffered in one task and
//! flushed on `close`; a reader (the checker) accepts a torn last line from a killed harness
//! and reports it rather than panicking.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Why a publish's outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownWhy {
    /// No confirm within the confirm timeout.
    Timeout,
    ChannelClosed,
    ConnLost,
}

/// How a consumer settled a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettleKind {
    Ack,
    Nack,
    Reject,
}

/// When a delivery was received: during the workload, or while draining after the final heal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Run,
    Drain,
}

/// One history event. The field names are CHECKER.md's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A publish attempt: `pid` producer, `seq` attempt number (a new one per republish),
    /// `mid` logical message id (kept on republish), on connection `conn`, channel `ch`
    /// (channel incarnations are numbered per client, never reused).
    PublishInvoke {
        client: String,
        conn: u64,
        ch: u64,
        pid: u64,
        seq: u64,
        mid: u64,
        queue: String,
        node: String,
    },
    PublishOk {
        pid: u64,
        seq: u64,
    },
    PublishNack {
        pid: u64,
        seq: u64,
    },
    PublishReturned {
        pid: u64,
        seq: u64,
        reply_code: u16,
    },
    PublishUnknown {
        pid: u64,
        seq: u64,
        why: UnknownWhy,
    },
    /// A delivery. `pid`, `seq`, `mid` come from the body; `body_ok` is false when the body's
    /// CRC32C (or its header) does not check.
    Deliver {
        cid: u64,
        conn: u64,
        ch: u64,
        queue: String,
        node: String,
        pid: u64,
        seq: u64,
        mid: u64,
        redelivered: bool,
        delivery_count: Option<u32>,
        tag: u64,
        body_ok: bool,
        phase: Phase,
    },
    Settle {
        cid: u64,
        ch: u64,
        tag: u64,
        kind: SettleKind,
        requeue: bool,
    },
    TxCommitOk {
        ch: u64,
    },
    /// A fault, recorded when it ends (`t_start`, `t_end` on the history's clock).
    Nemesis {
        t_start: u64,
        t_end: u64,
        f: String,
        targets: Vec<String>,
        detail: String,
    },
    /// A `cluster-status` sample as seen from `node`.
    Cluster {
        node: String,
        leader: Option<String>,
        term: u64,
        applied_index: u64,
    },
    FaultsStart,
    FinalHeal,
    DrainStart,
    DrainEnd {
        queue: String,
        complete: bool,
        ready: u64,
        unacked: u64,
    },
    /// A node's state hash at an applied index, taken after the drain.
    Digest {
        node: String,
        applied_index: u64,
        hash: String,
    },
}

/// One line of the history: the event and when it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub t: u64,
    pub wall_ns: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The run's history file. Cloning shares the file and the clock.
#[derive(Clone)]
pub struct History {
    start: Instant,
    out: Arc<Mutex<std::io::BufWriter<std::fs::File>>>,
}

impl History {
    /// Creates (truncates) the history file; the run's clock starts now.
    pub fn create(path: &Path) -> anyhow::Result<History> {
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("create history {}: {e}", path.display()))?;
        Ok(History {
            start: Instant::now(),
            out: Arc::new(Mutex::new(std::io::BufWriter::new(file))),
        })
    }

    /// Nanoseconds since the run started.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Appends one event stamped now. A write error is returned: a history with a hole
    /// cannot be checked, so the harness stops rather than carry on.
    pub fn record(&self, event: Event) -> anyhow::Result<()> {
        let line = Line {
            t: self.now_ns(),
            wall_ns: wall_ns(),
            event,
        };
        let mut text = serde_json::to_string(&line)?;
        text.push('\n');
        let mut out = self
            .out
            .lock()
            .map_err(|_| anyhow::anyhow!("history writer poisoned"))?;
        out.write_all(text.as_bytes())?;
        Ok(())
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&self) -> anyhow::Result<()> {
        let mut out = self
            .out
            .lock()
            .map_err(|_| anyhow::anyhow!("history writer poisoned"))?;
        out.flush()?;
        Ok(())
    }
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A history read back: its lines, and whether the last line was torn (a killed writer).
#[derive(Debug)]
pub struct ReadHistory {
    pub lines: Vec<Line>,
    pub torn_tail: bool,
}

/// Reads a history file. A malformed line other than the last is an error naming its number.
pub fn read(path: &Path) -> anyhow::Result<ReadHistory> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("open history {}: {e}", path.display()))?;
    let raw: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()?;
    let mut lines = Vec::with_capacity(raw.len());
    let mut torn_tail = false;
    for (i, text) in raw.iter().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(text) {
            Ok(line) => lines.push(line),
            Err(_) if i + 1 == raw.len() => torn_tail = true,
            Err(e) => anyhow::bail!("{} line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(ReadHistory { lines, torn_tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_a_torn_tail_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        let history = History::create(&path).expect("create");
        let events = vec![
            Event::FaultsStart,
            Event::PublishInvoke {
                client: "p0".into(),
                conn: 1,
                ch: 1,
                pid: 0,
                seq: 7,
                mid: 3,
                queue: "q0".into(),
                node: "n1".into(),
            },
            Event::PublishUnknown {
                pid: 0,
                seq: 7,
                why: UnknownWhy::ConnLost,
            },
            Event::DrainEnd {
                queue: "q0".into(),
                complete: true,
                ready: 0,
                unacked: 0,
            },
        ];
        for event in &events {
            history.record(event.clone()).expect("record");
        }
        history.flush().expect("flush");
        let back = read(&path).expect("read");
        assert!(!back.torn_tail);
        let got: Vec<Event> = back.lines.iter().map(|l| l.event.clone()).collect();
        assert_eq!(got, events);
        assert!(back.lines.windows(2).all(|w| w[0].t <= w[1].t));

        let mut text = std::fs::read_to_string(&path).expect("read text");
        text.push_str("{\"t\":1,\"wall_ns\":2,\"type\":\"publish_o");
        std::fs::write(&path, text).expect("write torn");
        let back = read(&path).expect("read torn");
        assert!(back.torn_tail);
        assert_eq!(back.lines.len(), events.len());
    }
}
