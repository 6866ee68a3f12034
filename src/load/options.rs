//! How to load: the options a command gives, their defaults, and what the files of one load share.

use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;

use super::sent_keys::SentKeys;
use crate::ingest::clean::Cleaner;
use crate::ingest::personal_data::PersonalDataHasher;
use crate::transform::ViewSet;

/// Default number of lines per batch (one transaction each).
pub const DEFAULT_BATCH_LINES: u64 = 200_000;
/// Default age at which a batch with lines commits.
pub const DEFAULT_BATCH_SECONDS: f64 = 10.0;
/// Default longest accepted line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Lines per batch (one transaction each).
    pub batch_lines: u64,
    /// Longest accepted line in bytes.
    pub max_line_bytes: usize,
    /// Load files even when their content was loaded before (dedup still applies).
    pub force: bool,
    /// A batch also commits once it is this old (and has lines), so reports follow a live
    /// stream on standard input.
    pub batch_seconds: f64,
    /// Store keyed hashes of `ip` and `email` (without it, neither is stored in any form).
    pub personal_data: Option<PersonalDataHasher>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            batch_lines: DEFAULT_BATCH_LINES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            force: false,
            batch_seconds: DEFAULT_BATCH_SECONDS,
            personal_data: None,
        }
    }
}

/// What the files of one `load_files` call share.
pub(super) struct FileLoad<'a> {
    pub(super) run_id: i64,
    pub(super) cleaner: &'a Cleaner,
    pub(super) options: &'a LoadOptions,
    /// In a bulk load (rows straight into `elt.events`, see `bulk`), the filter of the keys
    /// sent so far, shared by the files' reader threads one after the other.
    pub(super) bulk: Option<Arc<Mutex<SentKeys>>>,
    pub(super) progress: &'a ProgressBar,
    /// The views whose stale-keys queries the batches run.
    pub(super) views: &'a ViewSet,
    /// Refresh after every batch of a stream.
    pub(super) refresh_streams: bool,
}
