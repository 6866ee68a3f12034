//! The per-line tally: how many lines got each outcome, shared by `check` and the loader's reader.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use super::clean::{Cleaner, LineOutcome};
use super::lines::LineReader;
use super::source;

/// Lines counted by the outcome the cleaner gave them. Whether a valid line is loaded or a
/// duplicate is for the database to say, so both are `valid` here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineTally {
    pub lines: u64,
    pub blank: u64,
    pub valid: u64,
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
}

impl LineTally {
    /// Counts one line's outcome.
    pub fn count(&mut self, outcome: &LineOutcome<'_>) {
        self.lines += 1;
        match outcome {
            LineOutcome::Blank => self.blank += 1,
            LineOutcome::Event(_) => self.valid += 1,
            LineOutcome::Rejected { reason, .. } => {
                *self.rejected_by_reason.entry(reason.code()).or_default() += 1
            }
        }
    }

    /// Rejected lines, all reasons together.
    pub fn rejected(&self) -> u64 {
        self.rejected_by_reason.values().sum()
    }
}

/// Reads and classifies every line of `path` without a database (`campaign-elt check`).
pub fn tally_file(path: &Path, cleaner: &Cleaner, max_line_bytes: usize) -> Result<LineTally> {
    let mut reader = LineReader::new(source::open_input(path)?, max_line_bytes);
    let mut tally = LineTally::default();
    let mut last_line = 0;
    while let Some(line) = reader
        .next_line()
        .with_context(|| format!("{}: read error after line {last_line}", path.display()))?
    {
        last_line = line.number;
        let outcome = cleaner.classify(&line);
        if let LineOutcome::Rejected { reason, detail } = &outcome {
            tracing::debug!(
                "{}:{}: {}: {detail}",
                path.display(),
                line.number,
                reason.code()
            );
        }
        tally.count(&outcome);
    }
    Ok(tally)
}
