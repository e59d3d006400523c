//! The nemesis schedule: quiet, fault, heal, again, until the run's duration is up. The seed
//! decides everything: the order (each listed fault once per shuffled round, so a short run
//! still sees every fault), the targets and the durations.

use std::time::Duration;

use tokio::time::Instant;

use crate::history::{Event, History};

use super::cluster::Cluster;
use super::nemesis::{self, Ctx, Fault};
use super::net;
use super::rng::Rng;

/// A range of milliseconds, parsed from `LO-HI` seconds (`5-10`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanMs {
    pub lo: u64,
    pub hi: u64,
}

impl std::str::FromStr for SpanMs {
    type Err = String;

    fn from_str(text: &str) -> Result<SpanMs, String> {
        let (lo, hi) = text.split_once('-').unwrap_or((text, text));
        let secs = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|e| format!("{s:?}: {e}"))
                .map(|v| (v * 1000.0) as u64)
        };
        let (lo, hi) = (secs(lo)?, secs(hi)?);
        if lo > hi {
            return Err(format!("{text}: low end above high end"));
        }
        Ok(SpanMs { lo, hi })
    }
}

pub struct Schedule {
    pub faults: Vec<Fault>,
    pub duration: Duration,
    pub quiet: SpanMs,
    pub hold: SpanMs,
}

/// Runs faults until `duration` has passed; records `faults_start` and one `nemesis` event per
/// fault. A fault that fails half-way is a finding; the partitions are healed and the run goes
/// on (the final heal restores the rest).
pub async fn run(
    cluster: &Cluster,
    history: &History,
    rng: &mut Rng,
    schedule: &Schedule,
) -> anyhow::Result<()> {
    history.record(Event::FaultsStart)?;
    let deadline = Instant::now() + schedule.duration;
    let mut round: Vec<Fault> = Vec::new();
    loop {
        let quiet = rng.duration_ms(schedule.quiet.lo, schedule.quiet.hi);
        tokio::time::sleep_until(deadline.min(Instant::now() + quiet)).await;
        if Instant::now() >= deadline || schedule.faults.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return Ok(());
        }
        if round.is_empty() {
            round = schedule.faults.clone();
            rng.shuffle(&mut round);
        }
        let Some(fault) = round.pop() else {
            continue;
        };
        let hold = rng.duration_ms(schedule.hold.lo, schedule.hold.hi);
        one_fault(cluster, history, rng, fault, hold).await?;
    }
}

async fn one_fault(
    cluster: &Cluster,
    history: &History,
    rng: &mut Rng,
    fault: Fault,
    hold: Duration,
) -> anyhow::Result<()> {
    let t_start = history.now_ns();
    let mut ctx = Ctx {
        cluster,
        history,
        rng,
    };
    let (targets, detail) = match nemesis::inject(fault, &mut ctx, hold).await {
        Ok(outcome) => (outcome.targets, outcome.detail),
        Err(e) => {
            cluster.finding(format!("nemesis {} failed: {e:#}", fault.name()));
            let _ = net::heal(cluster).await;
            (Vec::new(), format!("failed: {e:#}"))
        }
    };
    let t_end = history.now_ns();
    println!(
        "warren-chaos: {:>7.1}s {:<16} {:?} {detail}",
        t_start as f64 / 1e9,
        fault.name(),
        targets
    );
    history.record(Event::Nemesis {
        t_start,
        t_end,
        f: fault.name().to_string(),
        targets,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_in_seconds() {
        assert_eq!(
            "5-10".parse(),
            Ok(SpanMs {
                lo: 5000,
                hi: 10000
            })
        );
        assert_eq!("0.5".parse(), Ok(SpanMs { lo: 500, hi: 500 }));
        assert!("10-5".parse::<SpanMs>().is_err());
        assert!("x".parse::<SpanMs>().is_err());
    }
}
