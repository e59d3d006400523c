//! The checker's teeth (CHECKER.md "Self-tests and teeth"): one synthetic history per class,
//! each of which the checker must flag, and a clean one it must pass.

mod availability;
mod builder;
mod classes;
mod duplicates;
mod ordering;

use super::{check, CheckOptions, Report};
use builder::Hist;

/// Checks with dedup off.
fn run(hist: &Hist) -> Report {
    check(&hist.build(), &CheckOptions::default())
}
