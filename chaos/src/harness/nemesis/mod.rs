//! The nemeses: one fault each, injected, held and healed by one async function that returns
//! what it did (targets and a detail line) for the history's `Event::Nemesis`.
//!
//! A nemesis must leave the cluster healed when it returns (processes running, partitions
//! gone, disks mounted), so the scheduler's quiet period is really quiet. Nodes it stops on
//! purpose are marked down for the watchdog while they are.

mod disk_faults;
mod kill;
mod latency;
mod partition;
mod pause;
mod power;
mod repair;
mod sequences;
mod target;

use std::time::Duration;

use crate::history::History;

use super::cluster::Cluster;
use super::rng::Rng;

/// Every fault the harness injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    KillLeader,
    KillFollower,
    PauseLeader,
    IsolateLeader,
    IsolateFollower,
    Bridge,
    Flapping,
    /// The leader's connections to its peers through a delay proxy.
    Latency,
    PowerCut,
    TruncateTail,
    /// A torn record at the end of a stopped node's log: cut away at start.
    TornTail,
    /// A flipped bit in a stopped node's log: it refuses to start; repaired from its peers.
    Bitflip,
    Eio,
    DiskFull,
    PartKill,
    PauseKill,
    /// kill -9 and restart of a RAM node (a new incarnation).
    RamRestart,
    /// Every node at once: the positive control (with `--control eatmydata`, lost > 0).
    PowerCutAll,
}

const ALL: [Fault; 17] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::PauseLeader,
    Fault::IsolateLeader,
    Fault::IsolateFollower,
    Fault::Bridge,
    Fault::Flapping,
    Fault::Latency,
    Fault::PowerCut,
    Fault::TruncateTail,
    Fault::TornTail,
    Fault::Bitflip,
    Fault::Eio,
    Fault::DiskFull,
    Fault::PartKill,
    Fault::PauseKill,
    Fault::RamRestart,
];

/// The CI round's faults (issue 4); `ram-restart` is dropped from a run without RAM nodes.
const CI: [Fault; 8] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::PauseLeader,
    Fault::IsolateLeader,
    Fault::Bridge,
    Fault::PowerCut,
    Fault::TruncateTail,
    Fault::RamRestart,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillFollower => "kill-follower",
            Fault::PauseLeader => "pause-leader",
            Fault::IsolateLeader => "isolate-leader",
            Fault::IsolateFollower => "isolate-follower",
            Fault::Bridge => "bridge",
            Fault::Flapping => "flapping",
            Fault::Latency => "latency",
            Fault::PowerCut => "power-cut",
            Fault::TruncateTail => "truncate-tail",
            Fault::TornTail => "torn-tail",
            Fault::Bitflip => "bitflip",
            Fault::Eio => "eio",
            Fault::DiskFull => "disk-full",
            Fault::PartKill => "part-kill",
            Fault::PauseKill => "pause-kill",
            Fault::RamRestart => "ram-restart",
            Fault::PowerCutAll => "power-cut-all",
        }
    }

    /// Parses `--nemesis`: comma-separated names, `ci`, `all`, or `none`.
    pub fn parse_list(text: &str) -> anyhow::Result<Vec<Fault>> {
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "ci" => out.extend(CI),
                "all" => out.extend(ALL),
                "none" => {}
                _ => {
                    let known = ALL.iter().chain([&Fault::PowerCutAll]);
                    let fault = known.clone().find(|f| f.name() == word).ok_or_else(|| {
                        let names: Vec<&str> = known.map(|f| f.name()).collect();
                        anyhow::anyhow!(
                            "unknown nemesis {word:?}; known: ci, all, none, {}",
                            names.join(", ")
                        )
                    })?;
                    out.push(*fault);
                }
            }
        }
        out.dedup();
        Ok(out)
    }
}

/// What a fault needs: the cluster, the history's clock (for log markers) and the run's
/// random source.
pub struct Ctx<'a> {
    pub cluster: &'a Cluster,
    pub history: &'a History,
    pub rng: &'a mut Rng,
}

/// What a fault did, for `Event::Nemesis`.
pub struct Outcome {
    pub targets: Vec<String>,
    pub detail: String,
}

/// Injects `fault`, holds it about `hold`, heals it.
pub async fn inject(fault: Fault, ctx: &mut Ctx<'_>, hold: Duration) -> anyhow::Result<Outcome> {
    match fault {
        Fault::KillLeader => kill::kill_leader(ctx, hold).await,
        Fault::KillFollower => kill::kill_follower(ctx, hold).await,
        Fault::PauseLeader => pause::pause_leader(ctx, hold).await,
        Fault::IsolateLeader => partition::isolate_leader(ctx, hold).await,
        Fault::IsolateFollower => partition::isolate_follower(ctx, hold).await,
        Fault::Bridge => partition::bridge(ctx, hold).await,
        Fault::Flapping => partition::flapping(ctx, hold).await,
        Fault::Latency => latency::latency(ctx, hold).await,
        Fault::PowerCut => power::power_cut(ctx, hold).await,
        Fault::PowerCutAll => power::power_cut_all(ctx, hold).await,
        Fault::Eio => power::eio(ctx, hold).await,
        Fault::TruncateTail => disk_faults::truncate_tail(ctx, hold).await,
        Fault::TornTail => disk_faults::torn_tail(ctx, hold).await,
        Fault::Bitflip => disk_faults::bitflip(ctx, hold).await,
        Fault::DiskFull => disk_faults::disk_full(ctx, hold).await,
        Fault::PartKill => sequences::part_kill(ctx, hold).await,
        Fault::PauseKill => sequences::pause_kill(ctx, hold).await,
        Fault::RamRestart => kill::ram_restart(ctx, hold).await,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_unknown_names_are_refused() {
        assert_eq!(Fault::parse_list("ci").expect("ci").len(), 8);
        assert_eq!(Fault::parse_list("all").expect("all").len(), ALL.len());
        let two = Fault::parse_list("kill-leader, power-cut-all").expect("two");
        assert_eq!(two, vec![Fault::KillLeader, Fault::PowerCutAll]);
        assert!(Fault::parse_list("none").expect("none").is_empty());
        assert!(Fault::parse_list("kill-everything").is_err());
    }
}
