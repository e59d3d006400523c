//! Chaos harness and checker (issue 4), and the `warren-bench` load generator (issue 5)
//! that shares its workload.
//!
//! `node` starts the real `warren` binary for process tests; `bench` is the load generator
//! behind `src/bin/warren-bench.rs`.

pub mod bench;
pub mod node;
