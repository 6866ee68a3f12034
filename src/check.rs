//! Check: classifies input files without a database — a dry run of the cleaner and the parser's
//! speed limit (duplicates are decided by the database, so they are not counted here).

use std::path::Path;

use anyhow::{Context, Result};

use crate::ingest::clean::{Cleaner, LineOutcome};
use crate::ingest::lines::LineReader;
use crate::ingest::source;
use crate::summary::{FileSummary, LineCounts};

/// Reads and classifies every line of `path`; `loaded` counts the lines that would be loaded
/// or found to be duplicates.
pub fn check_file(path: &Path, cleaner: &Cleaner, max_line_bytes: usize) -> Result<FileSummary> {
    let mut reader = LineReader::new(source::open_input(path)?, max_line_bytes);
    let mut counts = LineCounts::default();
    let mut last_line = 0;
    while let Some(line) = reader
        .next_line()
        .with_context(|| format!("{}: read error after line {last_line}", path.display()))?
    {
        last_line = line.number;
        counts.lines += 1;
        match cleaner.classify(&line) {
            LineOutcome::Blank => counts.blank += 1,
            LineOutcome::Event(_) => counts.loaded += 1,
            LineOutcome::Rejected { reason, detail } => {
                counts.rejected += 1;
                *counts
                    .rejected_by_reason
                    .entry(reason.code().to_owned())
                    .or_default() += 1;
                tracing::debug!(
                    "{}:{}: {}: {detail}",
                    path.display(),
                    line.number,
                    reason.code()
                );
            }
        }
    }
    Ok(FileSummary {
        path: path.display().to_string(),
        status: "checked".into(),
        load_id: None,
        lines_resumed: 0,
        counts,
        note: None,
    })
}
