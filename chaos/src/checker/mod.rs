//! The chaos checker (CHECKER.md): reads a run's history and says whether it is valid.

use std::path::Path;

use serde::Serialize;

use crate::history::{self, ReadHistory};

/// How to judge a history.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckOptions {
    /// Warren's publish dedup was on: two delivered attempts of one mid are a violation.
    pub dedup: bool,
}

/// The verdict of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

/// Every count of CHECKER.md (skeleton).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub lost: u64,
}

impl Report {
    pub fn verdict(&self) -> Verdict {
        Verdict::Unknown
    }

    pub fn render(&self) -> String {
        format!("lost {}\n", self.lost)
    }
}

/// Judges a history.
pub fn check(_history: &ReadHistory, _opts: &CheckOptions) -> Report {
    Report::default()
}

/// Reads a history file and judges it.
pub fn check_file(path: &Path, opts: &CheckOptions) -> anyhow::Result<Report> {
    let history = history::read(path)?;
    Ok(check(&history, opts))
}
