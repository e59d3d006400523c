//! Chaos harness and checker (issue 4), and the `warren-bench` load generator (issue 5)
//! that shares its workload.
//!
//! `harness` is the chaos harness behind `src/bin/warren-chaos.rs` (docs/chaos.md).
//! `history` is the chaos run's JSON-lines record, shared by the workload, the nemeses and
//! the checker. `workload` is the chaos run's clients (confirming producers that republish,
//! manual-ack consumers) and the final drain; `checker` judges a history against
//! `../shared/CHECKER.md`. `node` starts the real `warren` binary for process tests; `bench`
//! is the load generator behind `src/bin/warren-bench.rs`.

pub mod bench;
pub mod checker;
pub mod harness;
pub mod history;
pub mod node;
pub mod workload;
