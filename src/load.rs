//! Load: classified lines → binary COPY into staging → set-based dedup merge, batch by batch.
//!
//! One batch is one transaction: COPY of the batch's lines into `elt.staged_lines`, the merge of
//! its rejects and first-seen events, the (customer, hour) keys it makes stale, and the ledger's
//! progress. A reader thread parses and encodes while the database works on the previous chunk.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::ingest::clean::{Cleaner, LineOutcome};
use crate::ingest::lines::LineReader;
use crate::ingest::source;
use crate::settings::ReportSettings;
use crate::summary::{FileSummary, LineCounts};

/// Default number of lines per batch (one transaction each).
pub const DEFAULT_BATCH_LINES: u64 = 200_000;
/// Default longest accepted line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// Encoded COPY data is handed to the database in chunks of about this size.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks buffered between the reader thread and the database: bounds the loader's memory.
const CHANNEL_CHUNKS: usize = 4;
/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

const COPY_STAGED_LINES: &str =
    "copy elt.staged_lines (line_number, event_id, event_type, customer_id, user_id, \
     fired_at, reject_reason, reject_detail, raw_line, line_length) from stdin (format binary)";

/// Moves one staged batch into the durable tables and queues the report keys it makes stale:
/// the keys of the new events, the hours of earlier clicks whose same-id page load just
/// arrived, and the hours of clicks inside the window after a new page load.
/// Reads `elt.events` as it was before this statement, so clicks of this very batch are
/// covered by the first branch. Returns (new events, stale keys queued).
const MERGE_STAGED_LINES: &str = "
with rejected as (
    insert into elt.rejects (load_id, line_number, reason, detail, raw_line, line_length)
    select $1, line_number, reject_reason, reject_detail, raw_line, line_length
    from elt.staged_lines
    where reject_reason is not null
    returning 1
),
first_occurrences as (
    select distinct on (event_id, event_type)
        event_id, event_type, customer_id, user_id, fired_at, line_number
    from elt.staged_lines
    where reject_reason is null
    order by event_id, event_type, line_number
),
inserted as (
    insert into elt.events (event_id, event_type, customer_id, user_id, fired_at, load_id, line_number)
    select event_id, event_type, customer_id, user_id, fired_at, $1, line_number
    from first_occurrences
    on conflict (event_id, event_type) do nothing
    returning event_id, event_type, customer_id, user_id, fired_at
),
settings as (
    select make_interval(secs => click_through_window_seconds) as click_through_window
    from elt.settings
),
new_page_loads as (
    select * from inserted where event_type = 'ReferralPageLoad'
),
stale_keys as (
    select customer_id, date_trunc('hour', fired_at, 'UTC') as hour
    from inserted
    union
    select clicks.customer_id, date_trunc('hour', clicks.fired_at, 'UTC')
    from new_page_loads
    inner join elt.events as clicks
        on clicks.event_id = new_page_loads.event_id
        and clicks.event_type = 'ReferralRecommendClick'
        and clicks.customer_id = new_page_loads.customer_id
        and clicks.user_id = new_page_loads.user_id
        and clicks.fired_at >= new_page_loads.fired_at
    union
    select clicks.customer_id, date_trunc('hour', clicks.fired_at, 'UTC')
    from new_page_loads
    cross join settings
    inner join elt.events as clicks
        on clicks.customer_id = new_page_loads.customer_id
        and clicks.fired_at >= new_page_loads.fired_at
        and clicks.fired_at <= new_page_loads.fired_at + settings.click_through_window
        and clicks.user_id = new_page_loads.user_id
        and clicks.event_type = 'ReferralRecommendClick'
),
queued as (
    insert into elt.stale_keys (customer_id, hour)
    select customer_id, hour from stale_keys
    on conflict (customer_id, hour) do nothing
    returning 1
)
select
    (select count(*) from inserted) as new_events,
    (select count(*) from rejected) as rejects,
    (select count(*) from queued) as queued_keys";

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Lines per batch (one transaction each).
    pub batch_lines: u64,
    /// Longest accepted line in bytes.
    pub max_line_bytes: usize,
    /// Load files even when their content was loaded before (dedup still applies).
    pub force: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            batch_lines: DEFAULT_BATCH_LINES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            force: false,
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
    /// Encoded COPY data of the current batch.
    Rows(Bytes),
    /// The current batch is complete (its COPY trailer was the last `Rows`).
    BatchEnd(BatchProgress),
    Failed(anyhow::Error),
}

/// Loads the given files in order, returning what happened to each.
pub async fn load_files(
    client: &mut Client,
    run_id: i64,
    paths: &[PathBuf],
    settings: &ReportSettings,
    options: &LoadOptions,
    progress: &ProgressBar,
) -> Result<Vec<FileSummary>> {
    let cleaner = Cleaner::new(settings.accepted_event_types.clone(), settings.zone());
    let mut summaries = Vec::with_capacity(paths.len());
    for (position, path) in paths.iter().enumerate() {
        let summary = load_file(
            client,
            run_id,
            position as i32 + 1,
            path,
            &cleaner,
            options,
            progress,
        )
        .await
        .with_context(|| format!("cannot load {}", path.display()))?;
        summaries.push(summary);
    }
    Ok(summaries)
}

/// Size and content hash of a file (standard input has neither before it is read).
fn fingerprint(path: &Path) -> Result<Option<(i64, Vec<u8>)>> {
    if source::is_stdin(path) {
        return Ok(None);
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        anyhow::bail!("{} is a directory", path.display());
    }
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::io::BufReader::with_capacity(
            source::READ_BUFFER_BYTES,
            file,
        ))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some((
        metadata.len() as i64,
        hasher.finalize().as_bytes().to_vec(),
    )))
}

async fn load_file(
    client: &mut Client,
    run_id: i64,
    position: i32,
    path: &Path,
    cleaner: &Cleaner,
    options: &LoadOptions,
    progress: &ProgressBar,
) -> Result<FileSummary> {
    let display_path = path.display().to_string();
    let fingerprint = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || fingerprint(&path)).await??
    };
    let (size, hash) = match &fingerprint {
        Some((size, hash)) => (Some(*size), Some(hash.clone())),
        None => (None, None),
    };
    if let (Some(hash), false) = (&hash, options.force) {
        let earlier = client
            .query_opt(
                "select load_id from elt.loads where content_hash = $1 and status = 'loaded' order by load_id limit 1",
                &[hash],
            )
            .await?;
        if let Some(row) = earlier {
            let load_id: i64 = row.get(0);
            tracing::info!("{display_path}: skipped, its content was loaded by load {load_id}");
            return Ok(FileSummary {
                path: display_path,
                status: "skipped".into(),
                load_id: Some(load_id),
                lines_resumed: 0,
                counts: LineCounts::default(),
                note: Some(format!("content already loaded by load {load_id}")),
            });
        }
    }

    let load_id: i64 = client
        .query_one(
            "insert into elt.loads (run_id, file_position, path, size_bytes, content_hash)
             values ($1, $2, $3, $4, $5) returning load_id",
            &[&run_id, &position, &display_path, &size, &hash],
        )
        .await?
        .get(0);
    let started = Instant::now();
    progress.set_length(size.unwrap_or(0) as u64);
    progress.set_position(0);
    progress.set_message(display_path.clone());

    let input = source::open_input(path)?;
    let (sender, mut receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let reader = {
        let cleaner = cleaner.clone();
        let options = options.clone();
        let progress = progress.clone();
        std::thread::Builder::new()
            .name("campaign-elt-reader".into())
            .spawn(move || read_and_encode(input, &cleaner, &options, &sender, &progress))
            .context("cannot start the reader thread")?
    };

    let mut counts = LineCounts::default();
    let outcome: Result<bool> = async {
        loop {
            let transaction = client.transaction().await?;
            transaction
                .batch_execute("truncate elt.staged_lines")
                .await?;
            let sink = transaction.copy_in::<_, Bytes>(COPY_STAGED_LINES).await?;
            let mut sink = std::pin::pin!(sink);
            let batch = loop {
                match receiver.recv().await {
                    Some(ReaderMessage::Rows(rows)) => sink.send(rows).await?,
                    Some(ReaderMessage::BatchEnd(batch)) => break batch,
                    Some(ReaderMessage::Failed(error)) => return Err(error),
                    None => return Err(anyhow!("the reader thread stopped unexpectedly")),
                }
            };
            sink.as_mut().finish().await?;
            let merged = transaction
                .query_one(MERGE_STAGED_LINES, &[&load_id])
                .await?;
            let new_events = merged.get::<_, i64>(0) as u64;
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
                         ends_with_newline = $9,
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
            counts.add(&batch_counts);
            tracing::debug!(
                "{display_path}: committed lines up to {} ({} new events)",
                batch.last_line_number,
                new_events
            );
            if batch.at_end_of_input {
                return Ok(batch.ends_with_newline);
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
        lines_resumed: 0,
        counts,
        note: (!ends_with_newline).then(|| "the last line has no final newline".to_owned()),
    })
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

/// The reader thread: lines → outcomes → binary COPY rows, cut into batches and chunks.
fn read_and_encode(
    input: Box<dyn BufRead + Send>,
    cleaner: &Cleaner,
    options: &LoadOptions,
    sender: &mpsc::Sender<ReaderMessage>,
    progress: &ProgressBar,
) {
    let send = |message: ReaderMessage| sender.blocking_send(message).is_ok();
    let mut reader = LineReader::new(input, options.max_line_bytes);
    let mut buffer = BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024);
    let mut batch = BatchProgress::default();
    write_copy_header(&mut buffer);
    loop {
        let line = match reader.next_line() {
            Ok(line) => line,
            Err(error) => {
                send(ReaderMessage::Failed(anyhow!(error).context(format!(
                    "read error after line {}",
                    batch.last_line_number
                ))));
                return;
            }
        };
        let Some(line) = line else {
            batch.at_end_of_input = true;
            break;
        };
        batch.lines += 1;
        batch.last_line_number = line.number;
        batch.ends_with_newline = line.has_newline;
        match cleaner.classify(&line) {
            LineOutcome::Blank => batch.blank += 1,
            LineOutcome::Event(event) => {
                batch.valid += 1;
                encode_event(
                    &mut buffer,
                    line.number,
                    &event.event_id,
                    &cleaner.accepted_event_types()[event.event_type],
                    event.customer_id,
                    event.user_id,
                    event.fired_at_micros,
                );
            }
            LineOutcome::Rejected { reason, detail } => {
                *batch.rejected_by_reason.entry(reason.code()).or_default() += 1;
                encode_reject(
                    &mut buffer,
                    line.number,
                    reason.code(),
                    &detail,
                    line.bytes,
                    line.length,
                );
            }
        }
        let end_offset = reader.offset();
        if batch.lines >= options.batch_lines {
            batch.end_offset = end_offset;
            if !break_batch(&mut buffer, &mut batch, &send) {
                return;
            }
            progress.set_position(end_offset);
            write_copy_header(&mut buffer);
        } else if buffer.len() >= CHUNK_BYTES {
            if !send(ReaderMessage::Rows(buffer.split().freeze())) {
                return;
            }
            progress.set_position(end_offset);
        }
    }
    batch.end_offset = reader.offset();
    progress.set_position(batch.end_offset);
    break_batch(&mut buffer, &mut batch, &send);
}

/// Ends the current batch: trailer, the remaining rows, then the batch's counts.
/// Returns false when the database side has gone away.
fn break_batch(
    buffer: &mut BytesMut,
    batch: &mut BatchProgress,
    send: &dyn Fn(ReaderMessage) -> bool,
) -> bool {
    buffer.put_i16(-1);
    send(ReaderMessage::Rows(buffer.split().freeze()))
        && send(ReaderMessage::BatchEnd(std::mem::take(batch)))
}

fn write_copy_header(buffer: &mut BytesMut) {
    buffer.put_slice(b"PGCOPY\n\xff\r\n\0");
    buffer.put_i32(0); // flags
    buffer.put_i32(0); // header extension length
}

const STAGED_COLUMNS: i16 = 10;

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

fn encode_event(
    buffer: &mut BytesMut,
    line_number: u64,
    event_id: &str,
    event_type: &str,
    customer_id: i64,
    user_id: i64,
    fired_at_micros: i64,
) {
    buffer.put_i16(STAGED_COLUMNS);
    put_i64(buffer, line_number as i64);
    put_bytes(buffer, event_id.as_bytes());
    put_bytes(buffer, event_type.as_bytes());
    put_i64(buffer, customer_id);
    put_i64(buffer, user_id);
    put_i64(buffer, fired_at_micros - POSTGRES_EPOCH_MICROS);
    for _ in 0..4 {
        put_null(buffer);
    }
}

fn encode_reject(
    buffer: &mut BytesMut,
    line_number: u64,
    reason: &str,
    detail: &str,
    raw: &[u8],
    length: u64,
) {
    buffer.put_i16(STAGED_COLUMNS);
    put_i64(buffer, line_number as i64);
    for _ in 0..5 {
        put_null(buffer);
    }
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
