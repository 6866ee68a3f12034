//! The run summary: what happened to every line, printed on stderr or as versioned JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::ingest::tally::LineTally;
use crate::names::FileStatus;

/// Seconds per named step, summed over the step's repetitions (batches, files).
pub type StepSeconds = BTreeMap<String, f64>;

/// Adds `seconds` to `step` in `steps`.
pub fn add_step_seconds(steps: &mut StepSeconds, step: &str, seconds: f64) {
    *steps.entry(step.to_owned()).or_default() += seconds;
}

/// Version of the `--json` summary layout; bumped on any incompatible change.
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// Line outcomes: `lines = loaded + duplicates + rejected + blank`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LineCounts {
    pub lines: u64,
    pub loaded: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub blank: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
}

impl LineCounts {
    pub fn add(&mut self, other: &LineCounts) {
        self.lines += other.lines;
        self.loaded += other.loaded;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.blank += other.blank;
        for (reason, count) in &other.rejected_by_reason {
            *self.rejected_by_reason.entry(reason.clone()).or_default() += count;
        }
    }

    /// A committed batch's counts: the reader's tally, of whose valid lines `loaded` were new
    /// events and the rest duplicates.
    pub fn of_batch(tally: &LineTally, loaded: u64) -> LineCounts {
        LineCounts {
            lines: tally.lines,
            loaded,
            duplicates: tally.valid - loaded,
            rejected: tally.rejected(),
            blank: tally.blank,
            rejected_by_reason: tally
                .rejected_by_reason
                .iter()
                .map(|(reason, count)| (reason.to_string(), *count))
                .collect(),
        }
    }

    /// Every line has exactly one outcome.
    pub fn is_balanced(&self) -> bool {
        self.lines == self.loaded + self.duplicates + self.rejected + self.blank
            && self.rejected == self.rejected_by_reason.values().sum::<u64>()
    }
}

/// What happened to one input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    pub path: String,
    pub status: FileStatus,
    pub load_id: Option<i64>,
    /// Lines of this file committed by an earlier, interrupted run and not read again.
    pub lines_resumed: u64,
    pub counts: LineCounts,
    pub note: Option<String>,
}

/// One data test that returned offending rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataTestFailure {
    pub name: String,
    pub offending_rows: u64,
    /// The first offending rows, as JSON text.
    pub sample: Vec<String>,
}

/// What the data tests of one command found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataTestsSummary {
    pub run: u64,
    /// Of those, the tests that read only the keys refreshed since they last passed.
    pub on_refreshed_keys: u64,
    /// How many keys those tests read (`None` when every test read every row).
    pub tested_keys: Option<i64>,
    pub failures: Vec<DataTestFailure>,
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RefreshSummary {
    pub refresh_id: i64,
    pub full_refresh: bool,
    pub recomputed_keys: i64,
    /// Rows of `elt.events` the refresh read (PostgreSQL's counters: sequential and index fetches).
    pub events_read: i64,
    pub rebuilt_relations: Vec<String>,
    pub dropped_relations: Vec<String>,
    /// Report rows an earlier refresh had published that this one changed or removed
    /// (`elt.restatements`; a summary row counts its rows).
    pub restated_rows: i64,
    /// Why the incremental models read their stale keys' events in one scan instead of through
    /// the index: the stale keys were a large share of an incremental relation's rows (see
    /// `SCAN_AT_STALE_SHARE`).
    pub stale_keys_read_by_scan: Option<String>,
    /// Seconds per part (`claim_stale_keys`, each relation, `record`); the run's summary lists
    /// them as `refresh.<part>` in its `step_seconds`.
    #[serde(skip)]
    pub step_seconds: StepSeconds,
}

/// Everything a command did, for the operator and for scripts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    pub schema_version: u32,
    pub command: String,
    pub run_id: Option<i64>,
    pub files: Vec<FileSummary>,
    pub totals: LineCounts,
    pub files_loaded: u64,
    pub files_skipped: u64,
    pub lines_resumed: u64,
    pub unloaded: Option<UnloadSummary>,
    pub refresh: Option<RefreshSummary>,
    pub refresh_error: Option<String>,
    pub data_test_failures: Vec<DataTestFailure>,
    pub data_tests_run: u64,
    /// Data tests that read only the rows of the keys refreshed since they last passed (the
    /// others read every row).
    pub data_tests_on_refreshed_keys: u64,
    /// The number of keys those tests read.
    pub data_tested_keys: Option<i64>,
    pub exit_code: i32,
    /// Wall-clock seconds per step (`migrate`, `load`, `unload`, `refresh`, `data_tests`), and
    /// within `load` and `refresh` per part, as `load.copy`, `load.merge`, `load.stale_keys`
    /// (where a batch queues keys for recomputation), `load.ledger_and_commit` (summed over
    /// batches), `load.bulk_finish`, `refresh.claim_stale_keys`, `refresh.<schema>.<relation>
    /// delta` (a model adding its delta), `refresh.<schema>.<relation>` and `refresh.record`.
    pub step_seconds: StepSeconds,
    pub elapsed_seconds: f64,
}

impl RunSummary {
    /// Takes in what the data tests found.
    pub fn add_data_tests(&mut self, tests: DataTestsSummary) {
        self.data_tests_run = tests.run;
        self.data_tests_on_refreshed_keys = tests.on_refreshed_keys;
        self.data_tested_keys = tests.tested_keys;
        self.data_test_failures = tests.failures;
    }

    pub fn new(command: &str) -> Self {
        Self {
            schema_version: SUMMARY_SCHEMA_VERSION,
            command: command.to_owned(),
            ..Default::default()
        }
    }

    pub fn add_file(&mut self, file: FileSummary) {
        self.totals.add(&file.counts);
        self.lines_resumed += file.lines_resumed;
        match file.status {
            FileStatus::Skipped => self.files_skipped += 1,
            FileStatus::Loaded => self.files_loaded += 1,
            FileStatus::Checked => {}
        }
        self.files.push(file);
    }

    /// The human summary for stderr.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let totals = &self.totals;
        if self.command == "check" {
            let _ = writeln!(
                out,
                "{} file(s) checked, lines {}: valid {}, rejected {}, blank {}",
                self.files.len(),
                totals.lines,
                totals.loaded,
                totals.rejected,
                totals.blank
            );
            for (reason, count) in &totals.rejected_by_reason {
                let _ = writeln!(out, "  rejected {reason}: {count}");
            }
        } else if !self.files.is_empty() || self.command == "load" || self.command == "run" {
            let _ = writeln!(
                out,
                "{} file(s) loaded, {} skipped (already loaded), {} line(s) resumed past",
                self.files_loaded, self.files_skipped, self.lines_resumed
            );
            let _ = writeln!(
                out,
                "lines {}: loaded {}, duplicates {}, rejected {}, blank {}",
                totals.lines, totals.loaded, totals.duplicates, totals.rejected, totals.blank
            );
            for (reason, count) in &totals.rejected_by_reason {
                let _ = writeln!(out, "  rejected {reason}: {count}");
            }
        }
        if let Some(refresh) = &self.refresh {
            let _ = writeln!(
                out,
                "refresh {}: {} key(s) recomputed{}, {} event row(s) read, {} published row(s) restated{}",
                refresh.refresh_id,
                refresh.recomputed_keys,
                match (&refresh.stale_keys_read_by_scan, refresh.full_refresh) {
                    (_, true) => " (full refresh)".to_owned(),
                    (Some(reason), false) => format!(" (events read in one scan: {reason})"),
                    (None, false) => String::new(),
                },
                refresh.events_read,
                refresh.restated_rows,
                if refresh.rebuilt_relations.is_empty() {
                    String::new()
                } else {
                    format!(", rebuilt {}", refresh.rebuilt_relations.join(", "))
                }
            );
        }
        if let Some(error) = &self.refresh_error {
            let _ = writeln!(out, "refresh failed: {error}");
        }
        if self.data_tests_run > 0 {
            let scope = match (self.data_tests_on_refreshed_keys, self.data_tested_keys) {
                (0, _) | (_, None) => String::new(),
                (tests, Some(keys)) => format!(
                    " ({tests} on the {keys} key(s) refreshed since they last passed, the rest on every row)"
                ),
            };
            let _ = writeln!(
                out,
                "data tests: {} run, {} failed{scope}",
                self.data_tests_run,
                self.data_test_failures.len()
            );
        }
        for failure in &self.data_test_failures {
            let _ = writeln!(
                out,
                "  data test {} failed: {} offending row(s)",
                failure.name, failure.offending_rows
            );
            for row in &failure.sample {
                let _ = writeln!(out, "    {row}");
            }
        }
        let _ = write!(
            out,
            "finished in {:.2} s, exit code {}",
            self.elapsed_seconds, self.exit_code
        );
        out
    }
}

/// What `unload` removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnloadSummary {
    pub load_id: i64,
    pub path: String,
    pub removed_events: i64,
    pub removed_rejects: i64,
    pub queued_keys: i64,
    /// Later loads that counted duplicates: some may have duplicated this load's events, which
    /// stay absent until those files are loaded again with --force.
    pub later_loads_with_duplicates: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let mut a = LineCounts {
            lines: 3,
            loaded: 1,
            duplicates: 1,
            rejected: 1,
            blank: 0,
            ..Default::default()
        };
        a.rejected_by_reason.insert("invalid_json".into(), 1);
        let mut total = LineCounts::default();
        total.add(&a);
        total.add(&a);
        assert_eq!(total.lines, 6);
        assert_eq!(total.rejected_by_reason["invalid_json"], 2);
        assert!(total.is_balanced());
        total.blank += 1;
        assert!(!total.is_balanced());
    }
}
