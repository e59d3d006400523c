//! The chaos checker (`../shared/CHECKER.md`): reads a run's history and says whether it is
//! valid, counting every class of the spec and the availability figures.
//!
//! The checker trusts nothing the workload believed: it derives the sets from the history
//! alone (`sets`), then each family of checks fills its part of the `Report`: set classes
//! (`sets_check`), duplicates and the redelivered flag (`duplicates`), ordering (`ordering`),
//! drain and digests (`drain`), the Jepsen line (`jepsen`) and availability (`availability`).
//! It never panics on a history: a malformed history is the reader's error, and odd lines
//! (an outcome for an attempt never invoked) are ignored in a direction that cannot hide a
//! loss.

pub mod availability;
pub mod drain;
pub mod duplicates;
pub mod jepsen;
pub mod ordering;
pub mod report;
pub mod sets;
pub mod sets_check;

#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Serialize;

use crate::history::{self, ReadHistory};

pub use report::{Report, Verdict};

/// How to judge a history.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckOptions {
    /// Warren's publish dedup was on for the run: two attempts of one message both delivered
    /// is then a `dedup_violation`, not an allowed republish duplicate.
    pub dedup: bool,
}

/// Judges a history.
pub fn check(history: &ReadHistory, opts: &CheckOptions) -> Report {
    let sets = sets::Sets::derive(history);
    let mut report = Report {
        torn_tail: history.torn_tail,
        ..Report::default()
    };
    sets_check::check_sets(&sets, &mut report);
    duplicates::check_duplicates(&sets, opts, &mut report);
    ordering::check_ordering(&sets, &mut report);
    drain::check_drain(&sets, &mut report);
    drain::check_digests(&sets, &mut report);
    report.jepsen = jepsen::JepsenLine::from_sets(&sets);
    report.availability = availability::Availability::from_sets(&sets);
    report.verdict = Some(report.verdict());
    report
}

/// Reads a history file and judges it (the `warren-chaos check` entry).
pub fn check_file(path: &Path, opts: &CheckOptions) -> anyhow::Result<Report> {
    let history = history::read(path)?;
    Ok(check(&history, opts))
}
