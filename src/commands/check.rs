//! `check FILE…`: classifies the lines of files without a database (a dry run of the cleaner).

use std::io::Write;
use std::time::Instant;

use anyhow::Result;

use super::output;
use super::pipeline::requested_settings;
use crate::cli::{CheckArgs, GlobalArgs};
use crate::exit;
use crate::ingest::clean::Cleaner;
use crate::ingest::tally::tally_file;
use crate::names::FileStatus;
use crate::report::summary::{FileSummary, LineCounts, RunSummary};

pub(super) fn check(global: &GlobalArgs, args: &CheckArgs, stdout: &mut dyn Write) -> Result<i32> {
    let started = Instant::now();
    let settings = requested_settings(&args.settings).apply_to(&Default::default());
    settings.validate()?;
    let cleaner = Cleaner::new(settings.accepted_event_types.clone(), settings.zone());
    let mut summary = RunSummary::new("check");
    for path in &args.files {
        let tally = tally_file(path, &cleaner, args.max_line_bytes)?;
        summary.add_file(FileSummary {
            path: path.display().to_string(),
            status: FileStatus::Checked,
            load_id: None,
            lines_resumed: 0,
            // Duplicates are decided by the database: every valid line counts as loaded here.
            counts: LineCounts::of_batch(&tally, tally.valid),
            note: None,
        });
    }
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    output::emit(global, stdout, &summary, &summary.render())?;
    Ok(exit::SUCCESS)
}
