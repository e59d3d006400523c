//! A small builder of synthetic histories for the checker's tests: each call appends one
//! event one microsecond after the previous, with defaults for the fields a test does not
//! care about (queue "q0", producer channel `conn 1 / ch pid+1`, consumer 0 on `conn 100 /
//! ch 100`).

use crate::history::{Event, Line, Phase, ReadHistory, SettleKind, UnknownWhy};

pub const Q0: &str = "q0";

/// A delivery to append; start from `Dlv::of` and change what the test is about.
#[derive(Clone, Debug)]
pub struct Dlv {
    pub cid: u64,
    pub conn: u64,
    pub ch: u64,
    pub queue: String,
    pub pid: u64,
    pub seq: u64,
    pub mid: u64,
    pub redelivered: bool,
    pub delivery_count: Option<u32>,
    pub body_ok: bool,
    pub phase: Phase,
}

impl Dlv {
    pub fn of(pid: u64, seq: u64, mid: u64) -> Dlv {
        Dlv {
            cid: 0,
            conn: 100,
            ch: 100,
            queue: Q0.to_string(),
            pid,
            seq,
            mid,
            redelivered: false,
            delivery_count: None,
            body_ok: true,
            phase: Phase::Run,
        }
    }

    pub fn redelivered(mut self) -> Dlv {
        self.redelivered = true;
        self
    }

    /// Received by consumer `cid` on connection `conn`, channel `ch`.
    pub fn on(mut self, cid: u64, conn: u64, ch: u64) -> Dlv {
        (self.cid, self.conn, self.ch) = (cid, conn, ch);
        self
    }

    pub fn queue(mut self, queue: &str) -> Dlv {
        self.queue = queue.to_string();
        self
    }

    pub fn corrupt(mut self) -> Dlv {
        self.body_ok = false;
        self
    }

    pub fn count(mut self, delivery_count: u32) -> Dlv {
        self.delivery_count = Some(delivery_count);
        self
    }
}

#[derive(Default)]
pub struct Hist {
    lines: Vec<Line>,
    t_ns: u64,
    next_tag: u64,
}

impl Hist {
    pub fn new() -> Hist {
        Hist::default()
    }

    /// The next event happens at `t_ns` (the clock never goes backwards).
    pub fn at(&mut self, t_ns: u64) -> &mut Hist {
        self.t_ns = self.t_ns.max(t_ns.saturating_sub(1_000));
        self
    }

    pub fn push(&mut self, event: Event) -> &mut Hist {
        self.t_ns += 1_000;
        self.lines.push(Line {
            t: self.t_ns,
            wall_ns: self.t_ns,
            event,
        });
        self
    }

    /// A `publish_invoke` on an explicit connection and channel, to `queue`.
    pub fn invoke_on(&mut self, pid: u64, seq: u64, mid: u64, conn: u64, ch: u64) -> &mut Hist {
        self.push(Event::PublishInvoke {
            client: format!("p{pid}"),
            conn,
            ch,
            pid,
            seq,
            mid,
            queue: Q0.to_string(),
            node: "n1".to_string(),
        })
    }

    pub fn invoke(&mut self, pid: u64, seq: u64, mid: u64) -> &mut Hist {
        self.invoke_on(pid, seq, mid, 1, pid + 1)
    }

    pub fn ok(&mut self, pid: u64, seq: u64) -> &mut Hist {
        self.push(Event::PublishOk { pid, seq })
    }

    pub fn nack(&mut self, pid: u64, seq: u64) -> &mut Hist {
        self.push(Event::PublishNack { pid, seq })
    }

    pub fn returned(&mut self, pid: u64, seq: u64) -> &mut Hist {
        self.push(Event::PublishReturned {
            pid,
            seq,
            reply_code: 312,
        })
    }

    pub fn unknown(&mut self, pid: u64, seq: u64) -> &mut Hist {
        self.push(Event::PublishUnknown {
            pid,
            seq,
            why: UnknownWhy::Timeout,
        })
    }

    /// An attempt that is invoked and confirmed.
    pub fn confirmed(&mut self, pid: u64, seq: u64, mid: u64) -> &mut Hist {
        self.invoke(pid, seq, mid).ok(pid, seq)
    }

    /// Appends a delivery and its ack; returns the delivery tag.
    pub fn deliver(&mut self, d: Dlv) -> u64 {
        let tag = self.deliver_unsettled(d.clone());
        self.push(Event::Settle {
            cid: d.cid,
            ch: d.ch,
            tag,
            kind: SettleKind::Ack,
            requeue: false,
        });
        tag
    }

    /// Appends a delivery that is never settled (the consumer died first).
    pub fn deliver_unsettled(&mut self, d: Dlv) -> u64 {
        self.next_tag += 1;
        let tag = self.next_tag;
        self.push(Event::Deliver {
            cid: d.cid,
            conn: d.conn,
            ch: d.ch,
            queue: d.queue,
            node: "n1".to_string(),
            pid: d.pid,
            seq: d.seq,
            mid: d.mid,
            redelivered: d.redelivered,
            delivery_count: d.delivery_count,
            tag,
            body_ok: d.body_ok,
            phase: d.phase,
        });
        tag
    }

    /// A drain of the given queues, each ending as `complete`.
    pub fn drain(&mut self, queues: &[&str], complete: bool) -> &mut Hist {
        self.push(Event::DrainStart);
        for queue in queues {
            self.push(Event::DrainEnd {
                queue: queue.to_string(),
                complete,
                ready: 0,
                unacked: 0,
            });
        }
        self
    }

    /// A complete drain of "q0".
    pub fn drained(&mut self) -> &mut Hist {
        self.drain(&[Q0], true)
    }

    pub fn build(&self) -> ReadHistory {
        ReadHistory {
            lines: self.lines.clone(),
            torn_tail: false,
        }
    }
}
