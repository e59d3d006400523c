//! The chaos harness (docs/chaos.md): what `warren-chaos` does inside the topology chaos/run
//! builds (network namespaces, a bridge, HAProxy, one XFS loop image per node).
//!
//! `run` drives a run: `cluster` and `node` know the nodes' processes and files, `status`
//! and `poller` ask the nodes for their Raft view, `nemesis` injects faults through `net`
//! (iptables) and `disk` (XFS shutdown, fill, truncate), `schedule` picks them by seed,
//! `watchdog` reports nodes that die on their own, `heal` undoes everything, `verdict` runs
//! the checker. The harness never edits a history's meaning: it records what it did.

pub mod args;
pub mod cluster;
pub mod corrupt;
pub mod delay_proxy;
pub mod disk;
pub mod exec;
pub mod heal;
pub mod nemesis;
pub mod net;
pub mod node;
pub mod poller;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod status;
pub mod verdict;
pub mod watchdog;
