//! Load: classified lines → binary COPY into staging → set-based dedup merge, batch by batch.
//!
//! One batch is one transaction: COPY of the batch's lines into `elt.staged_lines`, the merge of
//! its rejects and first-seen events, the (customer, hour) keys it makes stale, and the ledger's
//! progress. A reader thread parses and encodes while the database works on the previous chunk.
//! Into an empty events table the batches copy straight into `elt.events` and `elt.rejects`
//! instead, and the duplicates and indexes are dealt with once at the end (see [`bulk`]).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio_postgres::{Client, CopyInSink};

mod bulk;

pub use bulk::finish as finish_bulk_load;

use crate::config::connection::ConnectionSettings;
use crate::ingest::clean::{CleanEvent, Cleaner, LineOutcome};
use crate::ingest::event_id::StoredEventId;
use crate::ingest::lines::LineReader;
use crate::ingest::source;
use crate::ingest::stream::{Deadline, StreamReader};
use crate::personal_data::PersonalDataHasher;
use crate::settings::ReportSettings;
use crate::summary::{FileSummary, LineCounts};
use crate::transform::{self, RefreshOptions, ViewSet};

/// Default number of lines per batch (one transaction each).
pub const DEFAULT_BATCH_LINES: u64 = 200_000;
/// Default age at which a batch with lines commits.
pub const DEFAULT_BATCH_SECONDS: f64 = 10.0;
/// Default longest accepted line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// Encoded COPY data is handed to the database in chunks of about this size.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks for the target whose COPY is not open wait, up to about this many bytes, before the
/// COPY switches to their target (see [`copy_batch`]).
const WAITING_CHUNK_BYTES: usize = 4 << 20;
/// Chunks buffered between the reader thread and the database: bounds the loader's memory.
const CHANNEL_CHUNKS: usize = 4;
/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

const COPY_STAGED_LINES: &str =
    "copy elt.staged_lines (line_number, event_id_uuid, event_id_text, event_type, customer_id, \
     user_id, fired_at, \
     ip_hash, email_hash, reject_reason, reject_detail, raw_line, line_length) from stdin (format binary)";
const COPY_EVENTS: &str =
    "copy elt.events (event_id_uuid, event_id_text, event_type, customer_id, \
     user_id, fired_at, load_id, line_number, ip_hash, email_hash) from stdin (format binary)";
const COPY_REJECTS: &str = "copy elt.rejects (load_id, line_number, reason, detail, raw_line, \
     line_length) from stdin (format binary)";

/// The merge of one staged batch, statement by statement (all in the batch's transaction).
/// Rejects first: a reload (`--force`) of the same file does not store its rejects twice
/// (`$4`: whether an earlier load of the same path or content exists to compare with).
const MERGE_REJECTS: &str = "
insert into elt.rejects (load_id, line_number, reason, detail, raw_line, line_length)
select $1, staged.line_number, staged.reject_reason, staged.reject_detail, staged.raw_line, staged.line_length
from elt.staged_lines as staged
where staged.reject_reason is not null
    and (not $4 or not exists (
        select 1
        from elt.loads as earlier_loads
        inner join elt.rejects as earlier_rejects
            on earlier_rejects.load_id = earlier_loads.load_id
            and earlier_rejects.line_number = staged.line_number
        where (earlier_loads.path = $2 or earlier_loads.content_hash = $3)
            and earlier_loads.load_id <> $1
            and earlier_rejects.raw_line = staged.raw_line
    ))";

/// A session's scratch table for the events a batch added (or an unload removed).
const CREATE_CHANGED_EVENTS: &str = "
create temporary table if not exists changed_events (
    event_id_uuid uuid not null,
    event_id_text text collate \"C\" not null,
    event_type text collate \"C\" not null,
    customer_id bigint not null,
    user_id bigint not null,
    fired_at timestamptz not null
);
truncate changed_events;";

/// First occurrences win: within the batch the lowest line number, against earlier batches and
/// runs the primary key (the event already there was loaded first).
const MERGE_EVENTS: &str = "
with first_occurrences as (
    select distinct on (event_id_uuid, event_type, event_id_text)
        event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at, line_number,
        ip_hash, email_hash
    from elt.staged_lines
    where reject_reason is null
    order by event_id_uuid, event_type, event_id_text, line_number
),
inserted as (
    insert into elt.events (event_id_uuid, event_id_text, event_type, customer_id, user_id,
        fired_at, load_id, line_number, ip_hash, email_hash)
    select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at, $1,
        line_number, ip_hash, email_hash
    from first_occurrences
    on conflict (event_id_uuid, event_type, event_id_text) do nothing
    returning event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at
)
insert into changed_events (event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at)
select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at from inserted";

/// Queues the report keys that `changed_events` makes stale: the keys of the changed events,
/// and the hours of clicks (loaded earlier) that a changed page load relates — by the same event id, or inside
/// the window after it. Both need the click at or after the page load, so only clicks at or
/// after each customer's earliest new page load are candidates: an index range scan that stays
/// small for logs in time order, instead of one probe per new page load.
const QUEUE_STALE_KEYS: &str = "
with new_page_loads as (
    select * from changed_events where event_type = 'ReferralPageLoad'
),
earliest_new_page_loads as (
    select customer_id, min(fired_at) as earliest_fired_at
    from new_page_loads
    group by customer_id
),
later_clicks as (
    select clicks.event_id_uuid, clicks.event_id_text, clicks.customer_id, clicks.user_id,
        clicks.fired_at
    from earliest_new_page_loads
    inner join elt.events as clicks
        on clicks.customer_id = earliest_new_page_loads.customer_id
        and clicks.fired_at >= earliest_new_page_loads.earliest_fired_at
    where clicks.event_type = 'ReferralRecommendClick'
),
settings as (
    select make_interval(secs => click_through_window_seconds) as click_through_window
    from elt.settings
),
neighbour_clicks as (
    select later_clicks.customer_id, later_clicks.fired_at
    from later_clicks
    inner join new_page_loads
        on new_page_loads.customer_id = later_clicks.customer_id
        and new_page_loads.user_id = later_clicks.user_id
        and new_page_loads.fired_at <= later_clicks.fired_at
    where (new_page_loads.event_id_uuid = later_clicks.event_id_uuid
            and new_page_loads.event_id_text = later_clicks.event_id_text)
        or later_clicks.fired_at <= new_page_loads.fired_at + (select click_through_window from settings)
),
stale_keys as (
    select customer_id, date_trunc('hour', fired_at, 'UTC') as hour
    from changed_events
    union
    select customer_id, date_trunc('hour', fired_at, 'UTC') as hour
    from neighbour_clicks
)
insert into elt.stale_keys (customer_id, hour)
select customer_id, hour from stale_keys
on conflict (customer_id, hour) do nothing";

/// Logs how long each statement of a batch took (`-vv`), for profiling.
struct StepTimer {
    last_line_number: u64,
    started: Instant,
}

impl StepTimer {
    fn new(last_line_number: u64) -> Self {
        Self {
            last_line_number,
            started: Instant::now(),
        }
    }

    fn step(&mut self, name: &str) {
        tracing::debug!(
            "batch to line {}: {name} took {:.3} s",
            self.last_line_number,
            self.started.elapsed().as_secs_f64()
        );
        self.started = Instant::now();
    }
}

/// The lines of one input.
type InputLines = LineReader<Box<dyn BufRead + Send>>;

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

/// Counts the reader knows for one batch; the database adds loaded vs duplicate.
#[derive(Debug, Default)]
struct BatchProgress {
    lines: u64,
    blank: u64,
    valid: u64,
    rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Byte offset just after the batch's last line.
    end_offset: u64,
    last_line_number: u64,
    at_end_of_input: bool,
    /// Whether the last line of the input ended with `\n` (meaningful at end of input).
    ends_with_newline: bool,
}

enum ReaderMessage {
    /// Encoded COPY rows of the current batch, for one target.
    Rows(CopyTarget, Bytes),
    /// The current batch is complete: every row of it was sent.
    BatchEnd(BatchProgress),
    Failed(anyhow::Error),
}

/// The run a load belongs to, where it shows progress, and how to reach its database again (a
/// bulk load builds its indexes on a second session).
pub struct LoadRun<'a> {
    pub run_id: i64,
    pub progress: &'a ProgressBar,
    pub connection: &'a ConnectionSettings,
}

/// Loads the given files in order, returning what happened to each.
/// With `stream_views`, a stream (standard input) refreshes those views after every committed
/// batch, so the reports follow a live log; a failing refresh is logged and loading goes on.
pub async fn load_files(
    client: &mut Client,
    run: &LoadRun<'_>,
    paths: &[PathBuf],
    settings: &ReportSettings,
    options: &LoadOptions,
    stream_views: Option<&ViewSet>,
) -> Result<Vec<FileSummary>> {
    let LoadRun {
        run_id,
        progress,
        connection,
    } = *run;
    let mut cleaner = Cleaner::new(settings.accepted_event_types.clone(), settings.zone());
    if options.personal_data.is_some() {
        cleaner = cleaner.capturing_personal_data();
    }
    // Into an empty events table, rows are copied without the table's indexes, which are
    // built once at the end (see `bulk`). A run that dies before that leaves the key missing;
    // the next command finishes the bulk load before anything else.
    let bulk = !options.force
        && !paths.iter().any(|path| source::is_stdin(path))
        && bulk::is_possible(client).await?;
    if bulk {
        bulk::begin(client).await?;
    }
    let shared = FileLoad {
        run_id,
        cleaner: &cleaner,
        options,
        bulk,
        progress,
    };
    let loaded = load_each_file(client, &shared, paths, stream_views).await;
    let finished = if bulk {
        let started = Instant::now();
        let finished = bulk::finish(client, connection).await;
        match (&loaded, finished) {
            (Ok(_), Err(error)) => return Err(error),
            // The load's own error says what went wrong; the next command finishes the load.
            (Err(_), Err(error)) => {
                tracing::debug!("cannot finish the bulk load now: {error:#}");
                None
            }
            (_, Ok(finished)) => {
                tracing::debug!(
                    "bulk load finished in {:.3} s: later occurrences removed per load: {finished:?}",
                    started.elapsed().as_secs_f64()
                );
                Some(finished)
            }
        }
    } else {
        None
    };
    let mut summaries = loaded?;
    // The bulk load counted its duplicates only when it finished.
    if let Some(finished) = finished {
        for summary in &mut summaries {
            let removed = summary
                .load_id
                .filter(|_| summary.status == "loaded")
                .and_then(|load_id| finished.get(&load_id));
            if let Some(&removed) = removed {
                summary.counts.loaded = summary.counts.loaded.saturating_sub(removed);
                summary.counts.duplicates += removed;
            }
        }
    }
    let loaded: u64 = summaries.iter().map(|summary| summary.counts.loaded).sum();
    refresh_statistics(client, loaded).await?;
    Ok(summaries)
}

/// What the files of one [`load_files`] call share.
struct FileLoad<'a> {
    run_id: i64,
    cleaner: &'a Cleaner,
    options: &'a LoadOptions,
    /// Whether rows go straight into `elt.events` (see [`bulk`]).
    bulk: bool,
    progress: &'a ProgressBar,
}

async fn load_each_file(
    client: &mut Client,
    shared: &FileLoad<'_>,
    paths: &[PathBuf],
    stream_views: Option<&ViewSet>,
) -> Result<Vec<FileSummary>> {
    let mut summaries = Vec::with_capacity(paths.len());
    for (position, path) in paths.iter().enumerate() {
        let summary = load_file(
            client,
            shared,
            position as i32 + 1,
            path,
            stream_views.filter(|_| source::is_stdin(path)),
        )
        .await
        .with_context(|| format!("cannot load {}", path.display()))?;
        summaries.push(summary);
    }
    Ok(summaries)
}

/// Analyzes the events table when a load changed it by more than a tenth, so that the
/// refresh right after it plans with the indexes (autovacuum would analyze it only later).
async fn refresh_statistics(client: &Client, loaded: u64) -> Result<()> {
    if loaded == 0 {
        return Ok(());
    }
    let estimated: f32 = client
        .query_one(
            "select reltuples from pg_catalog.pg_class where oid = 'elt.events'::regclass",
            &[],
        )
        .await?
        .get(0);
    if estimated <= 0.0 || loaded as f64 > 0.1 * estimated as f64 {
        client
            .batch_execute("analyze elt.events")
            .await
            .context("cannot analyze elt.events")?;
    }
    Ok(())
}

/// Size and content hash of a file, plus the hash of its first `prefix_bytes` bytes when asked
/// (to recognize a file that has grown since it was loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    size: i64,
    hash: Vec<u8>,
    prefix_hash: Option<Vec<u8>>,
}

/// Reads and hashes the file. Reading (copying from the page cache) and hashing each took about
/// half of the 0.3 s a 824 MB file took before its first line could be sent: a thread reads
/// while this one hashes, two chunks of [`source::READ_BUFFER_BYTES`] apart at most.
fn fingerprint(path: &Path, prefix_bytes: Option<u64>) -> Result<Fingerprint> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        bail!("{} is a directory", path.display());
    }
    let mut hasher = PrefixHasher::new(prefix_bytes.filter(|&bytes| bytes <= metadata.len()));
    let (sender, receiver) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(2);
    std::thread::scope(|scope| {
        scope.spawn(move || loop {
            let mut chunk = vec![0; source::READ_BUFFER_BYTES];
            let read = file.read(&mut chunk).map(|read| {
                chunk.truncate(read);
                chunk
            });
            let at_end = !matches!(&read, Ok(chunk) if !chunk.is_empty());
            if sender.send(read).is_err() || at_end {
                break;
            }
        });
        for chunk in receiver {
            let chunk = chunk.with_context(|| format!("cannot read {}", path.display()))?;
            hasher.update(&chunk);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let (hash, prefix_hash) = hasher.finalize();
    Ok(Fingerprint {
        size: metadata.len() as i64,
        hash,
        prefix_hash,
    })
}

/// A content hash that also records the hash of the first `prefix` bytes on the way.
struct PrefixHasher {
    hasher: blake3::Hasher,
    hashed: u64,
    prefix: Option<u64>,
    prefix_hash: Option<Vec<u8>>,
}

impl PrefixHasher {
    fn new(prefix: Option<u64>) -> Self {
        Self {
            hasher: blake3::Hasher::new(),
            hashed: 0,
            prefix,
            prefix_hash: None,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        if let Some(prefix) = self.prefix.filter(|_| self.prefix_hash.is_none()) {
            let before_prefix_end = (prefix - self.hashed).min(bytes.len() as u64) as usize;
            self.hasher.update(&bytes[..before_prefix_end]);
            self.hashed += before_prefix_end as u64;
            bytes = &bytes[before_prefix_end..];
            self.snapshot_at_prefix_end();
        }
        self.hasher.update(bytes);
        self.hashed += bytes.len() as u64;
    }

    fn snapshot_at_prefix_end(&mut self) {
        if self.prefix == Some(self.hashed) && self.prefix_hash.is_none() {
            self.prefix_hash = Some(self.hasher.finalize().as_bytes().to_vec());
        }
    }

    /// The whole hash, and the prefix's when the input was at least that long.
    fn finalize(mut self) -> (Vec<u8>, Option<Vec<u8>>) {
        self.snapshot_at_prefix_end();
        (self.hasher.finalize().as_bytes().to_vec(), self.prefix_hash)
    }
}

/// A ledger row, as far as deciding what to do with a file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LedgerEntry {
    load_id: i64,
    status: String,
    size_bytes: Option<i64>,
    content_hash: Option<Vec<u8>>,
    committed_offset: i64,
    committed_line_number: i64,
    first_line_number: i64,
    ends_with_newline: Option<bool>,
}

impl LedgerEntry {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        LedgerEntry {
            load_id: row.get("load_id"),
            status: row.get("status"),
            size_bytes: row.get("size_bytes"),
            content_hash: row.get("content_hash"),
            committed_offset: row.get("committed_offset"),
            committed_line_number: row.get("committed_line_number"),
            first_line_number: row.get("first_line_number"),
            ends_with_newline: row.get("ends_with_newline"),
        }
    }
}

/// What to do with one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LoadPlan {
    /// Its content was loaded before.
    Skip { load_id: i64, note: String },
    /// Load it from the first line.
    Fresh,
    /// Continue an interrupted load of the same content after its last committed batch.
    Resume {
        load_id: i64,
        offset: u64,
        next_line_number: u64,
        lines_resumed: u64,
    },
    /// The file grew since it was loaded: load only the new tail.
    Tail {
        offset: u64,
        next_line_number: u64,
        previous_load_id: i64,
    },
}

/// A load that a run began and did not finish.
fn is_interrupted(entry: &LedgerEntry) -> bool {
    entry.status == "loading" || entry.status == "failed"
}

/// Continues an interrupted load after its last committed batch.
fn resume(interrupted: &LedgerEntry) -> LoadPlan {
    LoadPlan::Resume {
        load_id: interrupted.load_id,
        offset: interrupted.committed_offset as u64,
        next_line_number: interrupted.committed_line_number as u64 + 1,
        lines_resumed: (interrupted.committed_line_number + 1 - interrupted.first_line_number)
            .max(0) as u64,
    }
}

/// Decides from the ledger what to do with a file. `same_path` holds the path's ledger rows,
/// newest first; `same_content` the rows with the file's content hash, newest first.
fn plan_load(
    fingerprint: &Fingerprint,
    same_path: &[LedgerEntry],
    same_content: &[LedgerEntry],
    force: bool,
) -> LoadPlan {
    if force {
        return LoadPlan::Fresh;
    }
    if let Some(loaded) = same_content.iter().find(|entry| entry.status == "loaded") {
        return LoadPlan::Skip {
            load_id: loaded.load_id,
            note: format!("content already loaded by load {}", loaded.load_id),
        };
    }
    if let Some(interrupted) = same_content.iter().find(|entry| is_interrupted(entry)) {
        return resume(interrupted);
    }
    if let Some(previous) = same_path
        .iter()
        .find(|entry| entry.status == "loaded" || is_interrupted(entry))
    {
        let grew = previous
            .size_bytes
            .is_some_and(|size| size < fingerprint.size)
            && previous.content_hash.is_some()
            && fingerprint.prefix_hash == previous.content_hash;
        // An interrupted load of the file before it grew: continue it, to the new end.
        if grew && is_interrupted(previous) {
            return resume(previous);
        }
        if grew {
            if previous.ends_with_newline == Some(false) {
                return LoadPlan::Skip {
                    load_id: previous.load_id,
                    note: format!(
                        "the file grew, but load {} ended in a line without a final newline that may have \
                         been cut; not loaded (use --force to load the whole file again, deduplicated)",
                        previous.load_id
                    ),
                };
            }
            return LoadPlan::Tail {
                offset: previous.committed_offset as u64,
                next_line_number: previous.committed_line_number as u64 + 1,
                previous_load_id: previous.load_id,
            };
        }
    }
    LoadPlan::Fresh
}

/// The path as recorded in the ledger: absolute, so that a file is recognized from any
/// working directory (standard input is `-`).
fn ledger_path(path: &Path) -> String {
    if source::is_stdin(path) {
        return "-".to_owned();
    }
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// Opens `path` positioned at `offset` / `next_line_number` (a line start recorded earlier).
fn open_at(
    path: &Path,
    max_line_bytes: usize,
    offset: u64,
    next_line_number: u64,
) -> Result<(InputLines, Option<Deadline>)> {
    if source::is_stdin(path) {
        let stream = StreamReader::spawn(std::io::stdin()).context("cannot read standard input")?;
        let deadline = stream.deadline();
        let input: Box<dyn BufRead + Send> = Box::new(stream);
        return Ok((LineReader::new(input, max_line_bytes), Some(deadline)));
    }
    Ok((
        open_file_at(path, max_line_bytes, offset, next_line_number)?,
        None,
    ))
}

fn open_file_at(
    path: &Path,
    max_line_bytes: usize,
    offset: u64,
    next_line_number: u64,
) -> Result<InputLines> {
    if offset == 0 {
        return Ok(LineReader::new(source::open_input(path)?, max_line_bytes));
    }
    if source::is_gzip(path) {
        // Offsets count decompressed bytes: read up to the line instead of seeking.
        let mut reader = LineReader::new(source::open_input(path)?, max_line_bytes);
        let mut last_line_number = 0;
        while reader.offset() < offset {
            match reader.next_line()? {
                Some(line) => last_line_number = line.number,
                None => bail!("{} is shorter than what was loaded from it", path.display()),
            }
        }
        if reader.offset() != offset || last_line_number + 1 != next_line_number {
            bail!("{} changed since it was loaded: line {next_line_number} does not start where it did", path.display());
        }
        return Ok(reader);
    }
    use std::io::{Seek, SeekFrom};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let input: Box<dyn BufRead + Send> = Box::new(std::io::BufReader::with_capacity(
        source::READ_BUFFER_BYTES,
        file,
    ));
    Ok(LineReader::resume(
        input,
        max_line_bytes,
        next_line_number,
        offset,
    ))
}

async fn ledger_entries(
    client: &Client,
    condition: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Vec<LedgerEntry>> {
    let rows = client
        .query(
            &format!(
                "select load_id, status, size_bytes, content_hash, committed_offset, committed_line_number,
                        first_line_number, ends_with_newline
                 from elt.loads where {condition} order by load_id desc"
            ),
            &[value],
        )
        .await?;
    Ok(rows.iter().map(LedgerEntry::from_row).collect())
}

async fn load_file(
    client: &mut Client,
    shared: &FileLoad<'_>,
    position: i32,
    path: &Path,
    refresh_views: Option<&ViewSet>,
) -> Result<FileSummary> {
    let FileLoad {
        run_id,
        cleaner,
        options,
        bulk,
        progress,
    } = *shared;
    let display_path = ledger_path(path);
    let is_stdin = source::is_stdin(path);
    let same_path = ledger_entries(client, "path = $1", &display_path).await?;
    let (plan, fingerprint, has_earlier_loads) = if is_stdin {
        (LoadPlan::Fresh, None, false)
    } else {
        let prefix = same_path
            .iter()
            .find(|entry| entry.status == "loaded" || is_interrupted(entry))
            .and_then(|entry| entry.size_bytes);
        let fingerprint = {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || fingerprint(&path, prefix.map(|size| size as u64)))
                .await??
        };
        let same_content = ledger_entries(client, "content_hash = $1", &fingerprint.hash).await?;
        // Only a forced reload reads lines that were loaded before (a fresh load's content is new,
        // a resume or a tail reads past what was committed): only then are rejects compared.
        let has_earlier_loads =
            options.force && (!same_path.is_empty() || !same_content.is_empty());
        (
            plan_load(&fingerprint, &same_path, &same_content, options.force),
            Some(fingerprint),
            has_earlier_loads,
        )
    };
    let (size, hash) = match &fingerprint {
        Some(fingerprint) => (Some(fingerprint.size), Some(fingerprint.hash.clone())),
        None => (None, None),
    };
    let (start_offset, next_line_number, lines_resumed, note) = match &plan {
        LoadPlan::Skip { load_id, note } => {
            tracing::info!("{display_path}: skipped: {note}");
            return Ok(FileSummary {
                path: display_path,
                status: "skipped".into(),
                load_id: Some(*load_id),
                lines_resumed: 0,
                counts: LineCounts::default(),
                note: Some(note.clone()),
            });
        }
        LoadPlan::Fresh => (0, 1, 0, None),
        LoadPlan::Resume {
            offset,
            next_line_number,
            lines_resumed,
            load_id,
        } => {
            tracing::info!("{display_path}: resuming load {load_id} at line {next_line_number}");
            (
                *offset,
                *next_line_number,
                *lines_resumed,
                Some(format!("resumed load {load_id} at line {next_line_number}")),
            )
        }
        LoadPlan::Tail {
            offset,
            next_line_number,
            previous_load_id,
        } => {
            tracing::info!("{display_path}: grew since load {previous_load_id}; loading from line {next_line_number}");
            (
                *offset,
                *next_line_number,
                0,
                Some(format!(
                    "grew since load {previous_load_id}: loaded from line {next_line_number}"
                )),
            )
        }
    };

    let load_id: i64 = match &plan {
        LoadPlan::Resume { load_id, .. } => {
            // The load now runs to the file's current end: record its current size and hash.
            client
                .execute(
                    "update elt.loads set status = 'loading', size_bytes = $2, content_hash = $3
                     where load_id = $1",
                    &[load_id, &size, &hash],
                )
                .await?;
            *load_id
        }
        _ => client
            .query_one(
                "insert into elt.loads (run_id, file_position, path, size_bytes, content_hash, start_offset,
                     first_line_number, committed_offset, committed_line_number)
                 values ($1, $2, $3, $4, $5, $6, $7, $6, $7::bigint - 1) returning load_id",
                &[&run_id, &position, &display_path, &size, &hash, &(start_offset as i64), &(next_line_number as i64)],
            )
            .await?
            .get(0),
    };
    let layout = if bulk {
        CopyLayout::Direct { load_id }
    } else {
        CopyLayout::Staged
    };
    let started = Instant::now();
    progress.set_length(size.unwrap_or(0) as u64);
    progress.set_position(0);
    progress.set_message(display_path.clone());

    let (reader, deadline) = {
        let path = path.to_owned();
        let max_line_bytes = options.max_line_bytes;
        tokio::task::spawn_blocking(move || {
            open_at(&path, max_line_bytes, start_offset, next_line_number)
        })
        .await??
    };
    let (sender, mut receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let reader = {
        let cleaner = cleaner.clone();
        let options = options.clone();
        let progress = progress.clone();
        std::thread::Builder::new()
            .name("campaign-elt-reader".into())
            .spawn(move || {
                read_and_encode(
                    reader,
                    deadline.as_ref(),
                    &cleaner,
                    &options,
                    layout,
                    &sender,
                    &progress,
                )
            })
            .context("cannot start the reader thread")?
    };

    let mut counts = LineCounts::default();
    let outcome: Result<bool> = async {
        loop {
            let transaction = client.transaction().await?;
            let mut timer = StepTimer::new(0);
            if layout == CopyLayout::Staged {
                transaction
                    .batch_execute("truncate elt.staged_lines")
                    .await?;
            }
            let batch = copy_batch(&transaction, &mut receiver).await?;
            timer.last_line_number = batch.last_line_number;
            timer.step("copy");
            if !batch_commit_waits_for_flush(is_stdin, batch.at_end_of_input) {
                transaction
                    .batch_execute("set local synchronous_commit = off")
                    .await?;
            }
            let new_events = match layout {
                // Duplicates are counted when the bulk load finishes.
                CopyLayout::Direct { .. } => batch.valid,
                CopyLayout::Staged => {
                    let new_events = merge_batch(
                        &transaction,
                        load_id,
                        &display_path,
                        &hash,
                        has_earlier_loads,
                    )
                    .await?;
                    timer.step("merge");
                    new_events
                }
            };
            let batch_counts = LineCounts {
                lines: batch.lines,
                loaded: new_events,
                duplicates: batch.valid - new_events,
                rejected: batch.rejected_by_reason.values().sum(),
                blank: batch.blank,
                rejected_by_reason: batch
                    .rejected_by_reason
                    .iter()
                    .map(|(reason, count)| (reason.to_string(), *count))
                    .collect(),
            };
            transaction
                .execute(
                    "update elt.loads set
                         committed_offset = $2,
                         committed_line_number = $3,
                         lines = lines + $4,
                         loaded = loaded + $5,
                         duplicates = duplicates + $6,
                         rejected = rejected + $7,
                         blank = blank + $8,
                         ends_with_newline = case when $4 = 0 then ends_with_newline else $9 end,
                         status = case when $10 then 'loaded' else status end,
                         finished_at = case when $10 then clock_timestamp() end
                     where load_id = $1",
                    &[
                        &load_id,
                        &(batch.end_offset as i64),
                        &(batch.last_line_number as i64),
                        &(batch_counts.lines as i64),
                        &(batch_counts.loaded as i64),
                        &(batch_counts.duplicates as i64),
                        &(batch_counts.rejected as i64),
                        &(batch_counts.blank as i64),
                        &batch.ends_with_newline,
                        &batch.at_end_of_input,
                    ],
                )
                .await?;
            transaction.commit().await?;
            timer.step("ledger and commit");
            counts.add(&batch_counts);
            tracing::debug!(
                "{display_path}: committed lines up to {} ({} new events)",
                batch.last_line_number,
                new_events
            );
            if batch.at_end_of_input {
                return Ok(batch.ends_with_newline);
            }
            if let Some(views) = refresh_views {
                let options = RefreshOptions::default();
                match transform::refresh(client, views, Some(run_id), options).await {
                    Ok(refresh) => tracing::info!(
                        "{display_path}: refreshed {} key(s) after line {}",
                        refresh.recomputed_keys,
                        batch.last_line_number
                    ),
                    Err(error) => {
                        tracing::warn!("refresh after a batch failed (loading goes on): {error:#}")
                    }
                }
            }
        }
    }
    .await;
    drop(receiver);
    let reader_result = reader.join();
    let ends_with_newline = match outcome {
        Ok(ends_with_newline) => ends_with_newline,
        Err(error) => {
            mark_failed(client, load_id).await;
            return Err(error);
        }
    };
    if reader_result.is_err() {
        return Err(anyhow!("the reader thread panicked"));
    }
    tracing::info!(
        "{display_path}: {} lines in {:.2} s (loaded {}, duplicates {}, rejected {}, blank {})",
        counts.lines,
        started.elapsed().as_secs_f64(),
        counts.loaded,
        counts.duplicates,
        counts.rejected,
        counts.blank
    );
    Ok(FileSummary {
        path: display_path,
        status: "loaded".into(),
        load_id: Some(load_id),
        lines_resumed,
        counts,
        note: match (note, ends_with_newline) {
            (Some(note), true) => Some(note),
            (Some(note), false) => Some(format!("{note}; the last line has no final newline")),
            (None, false) => Some("the last line has no final newline".to_owned()),
            (None, true) => None,
        },
    })
}

/// Whether a batch's commit waits until its WAL is on disk. A file's batches before its last
/// one need not: if the server crashes, it loses at most the last few such commits — rows and
/// ledger together, never a batch in the middle (WAL is replayed in order) — and the next run
/// reads those lines again from the ledger's committed offset. The last batch's commit is
/// synchronous and flushes every earlier one with it. Standard input cannot be read again, so
/// every batch of a stream waits.
fn batch_commit_waits_for_flush(is_stdin: bool, at_end_of_input: bool) -> bool {
    is_stdin || at_end_of_input
}

/// Copies one batch's rows as the reader sends them, switching the open COPY between targets
/// as [`CopySwitcher`] decides; returns the batch's counts once the reader ends it.
async fn copy_batch(
    transaction: &tokio_postgres::Transaction<'_>,
    receiver: &mut mpsc::Receiver<ReaderMessage>,
) -> Result<BatchProgress> {
    let mut switcher = CopySwitcher::default();
    let mut sink = None;
    let batch = loop {
        let route = match receiver.recv().await {
            Some(ReaderMessage::Rows(target, rows)) => switcher.route(target, rows),
            Some(ReaderMessage::BatchEnd(batch)) => break batch,
            Some(ReaderMessage::Failed(error)) => return Err(error),
            None => return Err(anyhow!("the reader thread stopped unexpectedly")),
        };
        send_route(transaction, &mut sink, route).await?;
    };
    send_route(transaction, &mut sink, switcher.finish()).await?;
    if let Some(sink) = sink.take() {
        finish_copy(sink).await?;
    }
    Ok(batch)
}

/// Switches the open COPY if the route says so, then sends the route's chunks.
async fn send_route(
    transaction: &tokio_postgres::Transaction<'_>,
    sink: &mut Option<Pin<Box<CopyInSink<Bytes>>>>,
    route: Route,
) -> Result<()> {
    if let Some(target) = route.open {
        if let Some(open) = sink.take() {
            finish_copy(open).await?;
        }
        let mut opened = Box::pin(transaction.copy_in(target.statement()).await?);
        opened.send(Bytes::from_static(COPY_HEADER)).await?;
        *sink = Some(opened);
    }
    for chunk in route.chunks {
        sink.as_mut()
            .ok_or_else(|| anyhow!("COPY rows came before any COPY was opened"))?
            .send(chunk)
            .await?;
    }
    Ok(())
}

/// Where a batch's chunks go, and when the COPY switches target. Chunks for the target whose
/// COPY is open go at once; chunks for the other one wait until [`WAITING_CHUNK_BYTES`] of them
/// have gathered (or the batch ends), then the COPY switches and they go, in order. Each switch
/// waits for the server to finish the open COPY and to start the next: switching at every 1 MiB
/// chunk of rejects, ten times per batch for a log with 8 % rejects, cost about 0.2 s of a 6.5 s
/// bulk load of 4 million lines. Waiting chunks keep their size, so memory grows by at most
/// [`WAITING_CHUNK_BYTES`] plus one chunk.
#[derive(Debug, Default)]
struct CopySwitcher {
    open: Option<CopyTarget>,
    waiting_target: Option<CopyTarget>,
    waiting: Vec<Bytes>,
}

/// What to do with the chunks at hand: open a COPY for `open` (finishing the open one) if set,
/// then send `chunks` to the open COPY.
#[derive(Debug, Default, PartialEq, Eq)]
struct Route {
    open: Option<CopyTarget>,
    chunks: Vec<Bytes>,
}

impl CopySwitcher {
    fn route(&mut self, target: CopyTarget, chunk: Bytes) -> Route {
        if self.open.is_none() || self.open == Some(target) {
            let open = self.open.is_none().then_some(target);
            self.open = Some(target);
            return Route {
                open,
                chunks: vec![chunk],
            };
        }
        let route = match self.waiting_target {
            // A third target (no layout has one): the waiting chunks go first.
            Some(waiting) if waiting != target => self.switch_to_waiting(),
            _ => Route::default(),
        };
        self.waiting_target = Some(target);
        self.waiting.push(chunk);
        let waiting_bytes: usize = self.waiting.iter().map(Bytes::len).sum();
        if route.open.is_none() && waiting_bytes >= WAITING_CHUNK_BYTES {
            return self.switch_to_waiting();
        }
        route
    }

    /// At the end of the batch: the waiting chunks, if any.
    fn finish(&mut self) -> Route {
        self.switch_to_waiting()
    }

    fn switch_to_waiting(&mut self) -> Route {
        let Some(target) = self.waiting_target.take() else {
            return Route::default();
        };
        self.open = Some(target);
        Route {
            open: Some(target),
            chunks: std::mem::take(&mut self.waiting),
        }
    }
}

async fn finish_copy(mut sink: Pin<Box<CopyInSink<Bytes>>>) -> Result<()> {
    sink.send(Bytes::from_static(COPY_TRAILER)).await?;
    sink.as_mut().finish().await?;
    Ok(())
}

/// Merges the staged batch: its rejects, its first-seen events, and (once reports exist) the
/// report keys they make stale. Returns the number of new events.
async fn merge_batch(
    transaction: &tokio_postgres::Transaction<'_>,
    load_id: i64,
    display_path: &str,
    hash: &Option<Vec<u8>>,
    has_earlier_loads: bool,
) -> Result<u64> {
    transaction
        .execute(
            MERGE_REJECTS,
            &[&load_id, &display_path, hash, &has_earlier_loads],
        )
        .await
        .context("cannot store the rejected lines")?;
    transaction.batch_execute(CREATE_CHANGED_EVENTS).await?;
    let new_events = transaction
        .execute(MERGE_EVENTS, &[&load_id])
        .await
        .context("cannot merge the events")?;
    // Until a report relation exists, no key needs queueing: the first refresh builds
    // everything whole.
    let reports_built: bool = transaction
        .query_one("select exists (select 1 from elt.managed_relations)", &[])
        .await?
        .get(0);
    if reports_built {
        transaction.batch_execute("analyze changed_events").await?;
        transaction
            .execute(QUEUE_STALE_KEYS, &[])
            .await
            .context("cannot queue the stale report keys")?;
    }
    Ok(new_events)
}

async fn mark_failed(client: &Client, load_id: i64) {
    let result = client
        .execute(
            "update elt.loads set status = 'failed', finished_at = clock_timestamp() where load_id = $1",
            &[&load_id],
        )
        .await;
    if let Err(error) = result {
        tracing::debug!("cannot mark load {load_id} as failed: {error}");
    }
}

/// Where a batch's rows are copied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyTarget {
    /// `elt.staged_lines`, for the merge (events and rejects alike).
    StagedLines,
    /// `elt.events` directly (bulk load).
    Events,
    /// `elt.rejects` directly (bulk load).
    Rejects,
}

impl CopyTarget {
    fn statement(self) -> &'static str {
        match self {
            CopyTarget::StagedLines => COPY_STAGED_LINES,
            CopyTarget::Events => COPY_EVENTS,
            CopyTarget::Rejects => COPY_REJECTS,
        }
    }
}

/// How a load writes its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyLayout {
    /// Every line into staging; the merge deduplicates against the primary key.
    Staged,
    /// Events straight into `elt.events` and rejects into `elt.rejects`: the bulk load, whose
    /// duplicates are removed when it finishes (see [`bulk`]).
    Direct { load_id: i64 },
}

/// Encodes one batch's rows in PostgreSQL's binary COPY row format: one buffer for the main
/// target and, in the direct layout, one for the rejects. The database side adds the COPY
/// header and trailer when it opens and finishes a COPY.
struct RowEncoder {
    layout: CopyLayout,
    rows: BytesMut,
    rejects: BytesMut,
}

impl RowEncoder {
    fn new(layout: CopyLayout) -> Self {
        Self {
            layout,
            rows: BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024),
            rejects: BytesMut::new(),
        }
    }

    fn rows_target(&self) -> CopyTarget {
        match self.layout {
            CopyLayout::Staged => CopyTarget::StagedLines,
            CopyLayout::Direct { .. } => CopyTarget::Events,
        }
    }

    fn event(
        &mut self,
        line_number: u64,
        event: &CleanEvent<'_>,
        event_type: &str,
        hasher: Option<&PersonalDataHasher>,
    ) {
        let buffer = &mut self.rows;
        match self.layout {
            CopyLayout::Staged => {
                buffer.put_i16(STAGED_COLUMNS);
                put_i64(buffer, line_number as i64);
                put_event_fields(buffer, event, event_type);
                put_personal_data(buffer, event, hasher);
                for _ in 0..4 {
                    put_null(buffer);
                }
            }
            CopyLayout::Direct { load_id } => {
                buffer.put_i16(EVENT_COLUMNS);
                put_event_fields(buffer, event, event_type);
                put_i64(buffer, load_id);
                put_i64(buffer, line_number as i64);
                put_personal_data(buffer, event, hasher);
            }
        }
    }

    fn reject(&mut self, line_number: u64, reason: &str, detail: &str, raw: &[u8], length: u64) {
        match self.layout {
            CopyLayout::Staged => {
                let buffer = &mut self.rows;
                buffer.put_i16(STAGED_COLUMNS);
                put_i64(buffer, line_number as i64);
                for _ in 0..8 {
                    put_null(buffer);
                }
                put_reject_fields(buffer, reason, detail, raw, length);
            }
            CopyLayout::Direct { load_id } => {
                let buffer = &mut self.rejects;
                buffer.put_i16(REJECT_COLUMNS);
                put_i64(buffer, load_id);
                put_i64(buffer, line_number as i64);
                put_reject_fields(buffer, reason, detail, raw, length);
            }
        }
    }

    /// Hands over the buffers that hold at least `min_bytes` (any non-empty one with 1).
    fn flush(&mut self, min_bytes: usize, send: &dyn Fn(ReaderMessage) -> bool) -> bool {
        let rows_target = self.rows_target();
        for (target, buffer) in [
            (rows_target, &mut self.rows),
            (CopyTarget::Rejects, &mut self.rejects),
        ] {
            if !buffer.is_empty()
                && buffer.len() >= min_bytes
                && !send(ReaderMessage::Rows(target, buffer.split().freeze()))
            {
                return false;
            }
        }
        true
    }
}

/// The reader thread: lines → outcomes → binary COPY rows, cut into batches and chunks.
/// A batch ends after `batch_lines` lines or, once it has lines, after `batch_seconds` —
/// also while a stream is quiet (`deadline` makes the stream reader give control back).
fn read_and_encode(
    mut reader: InputLines,
    deadline: Option<&Deadline>,
    cleaner: &Cleaner,
    options: &LoadOptions,
    layout: CopyLayout,
    sender: &mpsc::Sender<ReaderMessage>,
    progress: &ProgressBar,
) {
    let send = |message: ReaderMessage| sender.blocking_send(message).is_ok();
    let batch_age = Duration::from_secs_f64(options.batch_seconds.max(0.0));
    let mut encoder = RowEncoder::new(layout);
    let mut batch = BatchProgress::default();
    let mut batch_started = Instant::now();
    // The number of the last line read and whether it ended with `\n`, across batches (an
    // empty input has nothing cut).
    let mut last_line_number = reader.next_line_number().saturating_sub(1);
    let mut last_line_has_newline = true;
    loop {
        let line = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                // A quiet stream: commit what the batch has.
                if let Some(deadline) = deadline {
                    deadline.clear();
                }
                if batch.lines > 0 {
                    batch.end_offset = reader.offset();
                    batch.last_line_number = last_line_number;
                    batch.ends_with_newline = last_line_has_newline;
                    if !break_batch(&mut encoder, &mut batch, &send) {
                        return;
                    }
                }
                continue;
            }
            Err(error) => {
                send(ReaderMessage::Failed(anyhow!(error).context(format!(
                    "read error after line {last_line_number}"
                ))));
                return;
            }
        };
        if batch.lines == 0 {
            batch_started = Instant::now();
            if let Some(deadline) = deadline {
                deadline.set(batch_started + batch_age);
            }
        }
        batch.lines += 1;
        last_line_number = line.number;
        last_line_has_newline = line.has_newline;
        match cleaner.classify(&line) {
            LineOutcome::Blank => batch.blank += 1,
            LineOutcome::Event(event) => {
                batch.valid += 1;
                encoder.event(
                    line.number,
                    &event,
                    &cleaner.accepted_event_types()[event.event_type],
                    options.personal_data.as_ref(),
                );
            }
            LineOutcome::Rejected { reason, detail } => {
                *batch.rejected_by_reason.entry(reason.code()).or_default() += 1;
                encoder.reject(line.number, reason.code(), &detail, line.bytes, line.length);
            }
        }
        let end_offset = reader.offset();
        if batch.lines >= options.batch_lines || batch_started.elapsed() >= batch_age {
            batch.end_offset = end_offset;
            batch.last_line_number = last_line_number;
            batch.ends_with_newline = last_line_has_newline;
            if let Some(deadline) = deadline {
                deadline.clear();
            }
            if !break_batch(&mut encoder, &mut batch, &send) {
                return;
            }
            progress.set_position(end_offset);
        } else if encoder.rows.len() >= CHUNK_BYTES || encoder.rejects.len() >= CHUNK_BYTES {
            if !encoder.flush(CHUNK_BYTES, &send) {
                return;
            }
            progress.set_position(end_offset);
        }
    }
    batch.at_end_of_input = true;
    batch.end_offset = reader.offset();
    batch.last_line_number = last_line_number;
    batch.ends_with_newline = last_line_has_newline;
    progress.set_position(batch.end_offset);
    break_batch(&mut encoder, &mut batch, &send);
}

/// Ends the current batch: the remaining rows, then the batch's counts.
/// Returns false when the database side has gone away.
fn break_batch(
    encoder: &mut RowEncoder,
    batch: &mut BatchProgress,
    send: &dyn Fn(ReaderMessage) -> bool,
) -> bool {
    encoder.flush(1, send) && send(ReaderMessage::BatchEnd(std::mem::take(batch)))
}

/// Binary COPY's file header: signature, flags, header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Binary COPY's file trailer: a field count of -1.
const COPY_TRAILER: &[u8] = &[0xff, 0xff];

const STAGED_COLUMNS: i16 = 13;
const EVENT_COLUMNS: i16 = 10;
const REJECT_COLUMNS: i16 = 6;

fn put_i64(buffer: &mut BytesMut, value: i64) {
    buffer.put_i32(8);
    buffer.put_i64(value);
}

fn put_bytes(buffer: &mut BytesMut, value: &[u8]) {
    buffer.put_i32(value.len() as i32);
    buffer.put_slice(value);
}

fn put_null(buffer: &mut BytesMut) {
    buffer.put_i32(-1);
}

/// event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at
fn put_event_fields(buffer: &mut BytesMut, event: &CleanEvent<'_>, event_type: &str) {
    let event_id = StoredEventId::of(&event.event_id);
    put_bytes(buffer, &event_id.uuid);
    put_bytes(buffer, event_id.text.as_bytes());
    put_bytes(buffer, event_type.as_bytes());
    put_i64(buffer, event.customer_id);
    put_i64(buffer, event.user_id);
    put_i64(buffer, event.fired_at_micros - POSTGRES_EPOCH_MICROS);
}

/// ip_hash, email_hash: keyed hashes, or NULL without a key.
fn put_personal_data(
    buffer: &mut BytesMut,
    event: &CleanEvent<'_>,
    hasher: Option<&PersonalDataHasher>,
) {
    for personal in [&event.ip, &event.email] {
        match (hasher, personal) {
            (Some(hasher), Some(value)) => put_bytes(buffer, &hasher.hash(value)),
            _ => put_null(buffer),
        }
    }
}

/// reason, detail, raw_line, line_length
fn put_reject_fields(buffer: &mut BytesMut, reason: &str, detail: &str, raw: &[u8], length: u64) {
    put_bytes(buffer, reason.as_bytes());
    // PostgreSQL text cannot hold NUL; a detail may quote an offending value that has one.
    if detail.contains('\0') {
        put_bytes(buffer, detail.replace('\0', "\\u0000").as_bytes());
    } else {
        put_bytes(buffer, detail.as_bytes());
    }
    put_bytes(buffer, raw);
    put_i64(buffer, length as i64);
}

/// Deletes one load's events into `changed_events`, so that [`QUEUE_STALE_KEYS`] can queue the
/// report keys they affected.
const UNLOAD_EVENTS: &str = "
with removed as (
    delete from elt.events
    where load_id = $1
    returning event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at
)
insert into changed_events (event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at)
select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at from removed";

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

/// Removes what load `load_id` added, in one transaction.
pub async fn unload(client: &mut Client, load_id: i64) -> Result<UnloadSummary> {
    let transaction = client.transaction().await?;
    let ledger = transaction
        .query_opt(
            "select path from elt.loads where load_id = $1 for update",
            &[&load_id],
        )
        .await?
        .ok_or_else(|| anyhow!("there is no load {load_id} (see `campaign-elt status`)"))?;
    let path: String = ledger.get(0);
    transaction.batch_execute(CREATE_CHANGED_EVENTS).await?;
    let removed_events = transaction
        .execute(UNLOAD_EVENTS, &[&load_id])
        .await
        .context("cannot remove the load's events")?;
    transaction.batch_execute("analyze changed_events").await?;
    let queued_keys = transaction
        .execute(QUEUE_STALE_KEYS, &[])
        .await
        .context("cannot queue the stale report keys")?;
    let removed_rejects = transaction
        .execute("delete from elt.rejects where load_id = $1", &[&load_id])
        .await?;
    let later: Vec<i64> = transaction
        .query(
            "select load_id from elt.loads where load_id > $1 and duplicates > 0 order by load_id",
            &[&load_id],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    transaction
        .execute("delete from elt.loads where load_id = $1", &[&load_id])
        .await?;
    transaction.commit().await?;
    Ok(UnloadSummary {
        load_id,
        path,
        removed_events: removed_events as i64,
        removed_rejects: removed_rejects as i64,
        queued_keys: queued_keys as i64,
        later_loads_with_duplicates: later,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(size: i64, hash: u8, prefix_hash: Option<u8>) -> Fingerprint {
        Fingerprint {
            size,
            hash: vec![hash],
            prefix_hash: prefix_hash.map(|h| vec![h]),
        }
    }

    fn entry(
        load_id: i64,
        status: &str,
        size: i64,
        hash: u8,
        committed_line: i64,
        ends_with_newline: bool,
    ) -> LedgerEntry {
        LedgerEntry {
            load_id,
            status: status.into(),
            size_bytes: Some(size),
            content_hash: Some(vec![hash]),
            committed_offset: size / 2,
            committed_line_number: committed_line,
            first_line_number: 1,
            ends_with_newline: Some(ends_with_newline),
        }
    }

    #[test]
    fn prefix_hash_is_taken_wherever_the_chunks_split() {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let whole = blake3::hash(&content).as_bytes().to_vec();
        for prefix in [0, 1, 999, 1000, 1001, 9_999, 10_000] {
            let expected = blake3::hash(&content[..prefix]).as_bytes().to_vec();
            for chunk_bytes in [1, 7, 1000, 4096, 10_000] {
                let mut hasher = PrefixHasher::new(Some(prefix as u64));
                for chunk in content.chunks(chunk_bytes) {
                    hasher.update(chunk);
                }
                let (hash, prefix_hash) = hasher.finalize();
                assert_eq!(hash, whole, "prefix {prefix}, chunks of {chunk_bytes}");
                assert_eq!(
                    prefix_hash.as_ref(),
                    Some(&expected),
                    "prefix {prefix}, chunks of {chunk_bytes}"
                );
            }
        }
        let mut hasher = PrefixHasher::new(Some(10_001));
        hasher.update(&content);
        assert_eq!(
            hasher.finalize().1,
            None,
            "the input is shorter than the prefix"
        );
        let mut hasher = PrefixHasher::new(None);
        hasher.update(&content);
        assert_eq!(hasher.finalize(), (whole, None));
    }

    #[test]
    fn file_fingerprint_reads_every_chunk() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("events.jsonl");
        // more than two read chunks, ending in a partial one
        let content: Vec<u8> = (0..source::READ_BUFFER_BYTES * 5 / 2)
            .map(|i| (i % 253) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        let prefix = source::READ_BUFFER_BYTES as u64 + 3;
        let fingerprint = super::fingerprint(&path, Some(prefix)).unwrap();
        assert_eq!(fingerprint.size, content.len() as i64);
        assert_eq!(fingerprint.hash, blake3::hash(&content).as_bytes().to_vec());
        assert_eq!(
            fingerprint.prefix_hash,
            Some(
                blake3::hash(&content[..prefix as usize])
                    .as_bytes()
                    .to_vec()
            )
        );
        let longer_than_the_file = super::fingerprint(&path, Some(content.len() as u64 + 1));
        assert_eq!(longer_than_the_file.unwrap().prefix_hash, None);
        assert!(super::fingerprint(directory.path(), None).is_err());
    }

    #[test]
    fn loaded_content_is_skipped_unless_forced() {
        let loaded = entry(3, "loaded", 100, 7, 10, true);
        let plan = plan_load(
            &fingerprint(100, 7, None),
            &[],
            std::slice::from_ref(&loaded),
            false,
        );
        assert!(matches!(plan, LoadPlan::Skip { load_id: 3, .. }));
        assert_eq!(
            plan_load(&fingerprint(100, 7, None), &[], &[loaded], true),
            LoadPlan::Fresh
        );
    }

    #[test]
    fn an_interrupted_load_resumes_after_its_last_committed_batch() {
        let interrupted = entry(4, "loading", 100, 7, 10, true);
        let plan = plan_load(&fingerprint(100, 7, None), &[], &[interrupted], false);
        assert_eq!(
            plan,
            LoadPlan::Resume {
                load_id: 4,
                offset: 50,
                next_line_number: 11,
                lines_resumed: 10
            }
        );
    }

    #[test]
    fn an_interrupted_load_of_a_file_that_then_grew_resumes() {
        let interrupted = entry(6, "failed", 100, 7, 10, true);
        let plan = plan_load(&fingerprint(150, 8, Some(7)), &[interrupted], &[], false);
        assert_eq!(
            plan,
            LoadPlan::Resume {
                load_id: 6,
                offset: 50,
                next_line_number: 11,
                lines_resumed: 10
            }
        );
    }

    #[test]
    fn a_grown_file_loads_only_its_tail() {
        let earlier = entry(5, "loaded", 100, 7, 10, true);
        let plan = plan_load(
            &fingerprint(150, 8, Some(7)),
            std::slice::from_ref(&earlier),
            &[],
            false,
        );
        assert_eq!(
            plan,
            LoadPlan::Tail {
                offset: 50,
                next_line_number: 11,
                previous_load_id: 5
            }
        );
        // Different old content: load it whole (deduplicated).
        assert_eq!(
            plan_load(&fingerprint(150, 8, Some(9)), &[earlier], &[], false),
            LoadPlan::Fresh
        );
    }

    #[test]
    fn a_grown_file_whose_last_line_had_no_newline_is_left_alone() {
        let earlier = entry(5, "loaded", 100, 7, 10, false);
        let plan = plan_load(
            &fingerprint(150, 8, Some(7)),
            std::slice::from_ref(&earlier),
            &[],
            false,
        );
        assert!(
            matches!(plan, LoadPlan::Skip { load_id: 5, ref note } if note.contains("--force")),
            "{plan:?}"
        );
        assert_eq!(
            plan_load(&fingerprint(150, 8, Some(7)), &[earlier], &[], true),
            LoadPlan::Fresh
        );
    }

    fn sample_event() -> CleanEvent<'static> {
        CleanEvent {
            event_id: "id".into(),
            event_type: 0,
            customer_id: 1,
            user_id: 2,
            fired_at_micros: POSTGRES_EPOCH_MICROS + 5,
            ip: Some("10.0.0.1".into()),
            email: None,
        }
    }

    #[test]
    fn only_a_files_last_batch_and_every_stream_batch_wait_for_the_flush() {
        assert!(!batch_commit_waits_for_flush(false, false));
        assert!(batch_commit_waits_for_flush(false, true));
        assert!(batch_commit_waits_for_flush(true, false));
        assert!(batch_commit_waits_for_flush(true, true));
    }

    #[test]
    fn copy_framing_is_postgres_binary_format() {
        assert_eq!(COPY_HEADER.len(), 19);
        assert_eq!(&COPY_HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(COPY_TRAILER, &(-1i16).to_be_bytes());
    }

    #[test]
    fn encodes_staged_rows() {
        let mut encoder = RowEncoder::new(CopyLayout::Staged);
        encoder.event(7, &sample_event(), "ReferralPageLoad", None);
        let buffer = encoder.rows.split();
        assert_eq!(i16::from_be_bytes([buffer[0], buffer[1]]), STAGED_COLUMNS);
        // line_number: length 8, value 7
        assert_eq!(&buffer[2..6], &8i32.to_be_bytes());
        assert_eq!(&buffer[6..14], &7i64.to_be_bytes());
        // no key: the two hashes and the four reject columns are NULL, and the ip is nowhere
        assert!(buffer.ends_with(&[0xff; 24]));
        assert!(!String::from_utf8_lossy(&buffer).contains("10.0.0.1"));
        let hasher = PersonalDataHasher::new(b"sixteen bytes or more").unwrap();
        encoder.event(7, &sample_event(), "ReferralPageLoad", Some(&hasher));
        let buffer = encoder.rows.split();
        let hashed = hasher.hash("10.0.0.1");
        assert!(
            buffer.windows(32).any(|window| window == hashed),
            "the keyed hash is stored"
        );
        assert!(
            buffer.ends_with(&[0xff; 20]),
            "email NULL + four reject columns"
        );
        encoder.reject(1, "invalid_json", "bad\0detail", b"\xff", 1);
        assert!(encoder.rejects.is_empty(), "staged rejects share the rows");
        let text = String::from_utf8_lossy(&encoder.rows);
        assert!(
            text.contains("bad\\u0000detail"),
            "NUL escaped in the detail"
        );
    }

    #[test]
    fn encodes_direct_rows_for_events_and_rejects() {
        let mut encoder = RowEncoder::new(CopyLayout::Direct { load_id: 42 });
        assert_eq!(encoder.rows_target(), CopyTarget::Events);
        encoder.event(7, &sample_event(), "ReferralPageLoad", None);
        let buffer = encoder.rows.split();
        assert_eq!(i16::from_be_bytes([buffer[0], buffer[1]]), EVENT_COLUMNS);
        // event_id "id" is not a uuid: the nil uuid, then the text "id"
        assert_eq!(&buffer[2..6], &16i32.to_be_bytes());
        assert_eq!(&buffer[6..22], &[0; 16]);
        assert_eq!(&buffer[22..26], &2i32.to_be_bytes());
        assert_eq!(&buffer[26..28], b"id");
        // a canonical uuid id: its 16 bytes, then an empty text
        let uuid_event = CleanEvent {
            event_id: "cc8dac61-f9d0-4bcb-a9aa-602456ee20d4".into(),
            ..sample_event()
        };
        encoder.event(7, &uuid_event, "ReferralPageLoad", None);
        let buffer = encoder.rows.split();
        assert_eq!(&buffer[2..6], &16i32.to_be_bytes());
        assert_eq!(
            &buffer[6..22],
            b"\xcc\x8d\xac\x61\xf9\xd0\x4b\xcb\xa9\xaa\x60\x24\x56\xee\x20\xd4"
        );
        assert_eq!(&buffer[22..26], &0i32.to_be_bytes());
        assert_eq!(&buffer[26..30], &16i32.to_be_bytes(), "event_type follows");
        // ... load_id 42 and line_number 7 follow fired_at; both hashes NULL at the end
        let tail = &buffer[buffer.len() - 8 - 24..];
        assert_eq!(&tail[..4], &8i32.to_be_bytes());
        assert_eq!(&tail[4..12], &42i64.to_be_bytes());
        assert_eq!(&tail[16..24], &7i64.to_be_bytes());
        assert!(buffer.ends_with(&[0xff; 8]));

        encoder.reject(3, "invalid_json", "detail", b"raw", 3);
        assert!(encoder.rows.is_empty(), "rejects have their own buffer");
        let buffer = encoder.rejects.split();
        assert_eq!(i16::from_be_bytes([buffer[0], buffer[1]]), REJECT_COLUMNS);
        assert_eq!(&buffer[6..14], &42i64.to_be_bytes());
        assert_eq!(&buffer[18..26], &3i64.to_be_bytes());
    }

    fn chunk(marker: u8, bytes: usize) -> Bytes {
        Bytes::from(vec![marker; bytes])
    }

    #[test]
    fn the_copy_switches_target_only_once_enough_chunks_wait() {
        use CopyTarget::{Events, Rejects, StagedLines};
        let mut switcher = CopySwitcher::default();
        let route = |open, chunks: Vec<Bytes>| Route { open, chunks };
        assert_eq!(switcher.finish(), Route::default(), "nothing waits");
        // The first chunk opens its target's COPY; the same target's chunks follow it.
        assert_eq!(
            switcher.route(Events, chunk(1, 10)),
            route(Some(Events), vec![chunk(1, 10)])
        );
        assert_eq!(
            switcher.route(Events, chunk(2, 10)),
            route(None, vec![chunk(2, 10)])
        );
        // The other target's chunks wait until enough have gathered, then go in order.
        let quarter = WAITING_CHUNK_BYTES / 4;
        for marker in 3..6 {
            assert_eq!(
                switcher.route(Rejects, chunk(marker, quarter)),
                Route::default()
            );
            assert_eq!(
                switcher.route(Events, chunk(marker, 10)),
                route(None, vec![chunk(marker, 10)]),
                "events keep flowing while rejects wait"
            );
        }
        assert_eq!(
            switcher.route(Rejects, chunk(6, quarter)),
            route(
                Some(Rejects),
                vec![
                    chunk(3, quarter),
                    chunk(4, quarter),
                    chunk(5, quarter),
                    chunk(6, quarter)
                ]
            )
        );
        // Now events wait, and the end of the batch sends them.
        assert_eq!(switcher.route(Events, chunk(7, 10)), Route::default());
        assert_eq!(
            switcher.route(Rejects, chunk(8, 10)),
            route(None, vec![chunk(8, 10)])
        );
        assert_eq!(switcher.finish(), route(Some(Events), vec![chunk(7, 10)]));
        assert_eq!(switcher.finish(), Route::default());
        // A third target sends the waiting chunks first and waits itself.
        assert_eq!(switcher.route(Rejects, chunk(9, 10)), Route::default());
        assert_eq!(
            switcher.route(StagedLines, chunk(10, 10)),
            route(Some(Rejects), vec![chunk(9, 10)])
        );
        assert_eq!(
            switcher.finish(),
            route(Some(StagedLines), vec![chunk(10, 10)])
        );
    }

    #[test]
    fn flushing_sends_each_target_once_it_is_full_enough() {
        let mut encoder = RowEncoder::new(CopyLayout::Direct { load_id: 1 });
        encoder.event(1, &sample_event(), "ReferralPageLoad", None);
        encoder.reject(2, "invalid_json", "detail", b"raw", 3);
        let sent = std::cell::RefCell::new(Vec::new());
        let send = |message: ReaderMessage| {
            if let ReaderMessage::Rows(target, rows) = message {
                sent.borrow_mut().push((target, rows.len()));
            }
            true
        };
        assert!(encoder.flush(CHUNK_BYTES, &send));
        assert!(sent.borrow().is_empty(), "nothing is full yet");
        assert!(encoder.flush(1, &send));
        let targets: Vec<CopyTarget> = sent.borrow().iter().map(|(target, _)| *target).collect();
        assert_eq!(targets, vec![CopyTarget::Events, CopyTarget::Rejects]);
        assert!(encoder.rows.is_empty() && encoder.rejects.is_empty());
    }
}
