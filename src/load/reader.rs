//! The reader thread: reads lines, classifies them and encodes binary COPY rows while the
//! database works on the previous chunk, cutting the input into batches.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use indicatif::ProgressBar;
use tokio::sync::mpsc;

use super::copy::{CopyLayout, CopyTarget, RowEncoder, CHUNK_BYTES};
use super::options::LoadOptions;
use super::sent_keys::SentKeys;
use crate::ingest::clean::{Cleaner, LineOutcome};
use crate::ingest::open::{InputLines, OpenedInput};
use crate::ingest::source::FilePosition;
use crate::ingest::stream::Deadline;
use crate::ingest::tally::LineTally;

/// Chunks buffered between the reader thread and the database: bounds the loader's memory.
const CHANNEL_CHUNKS: usize = 4;

/// Counts the reader knows for one batch; the database adds loaded vs duplicate.
#[derive(Debug, Default)]
pub(super) struct BatchProgress {
    /// The batch's lines by outcome.
    pub(super) tally: LineTally,
    /// Byte offset just after the batch's last line.
    pub(super) end_offset: u64,
    pub(super) last_line_number: u64,
    pub(super) at_end_of_input: bool,
    /// Whether the last line of the input ended with `\n` (meaningful at end of input).
    pub(super) ends_with_newline: bool,
}

pub(super) enum ReaderMessage {
    /// Encoded COPY rows of the current batch, for one target.
    Rows(CopyTarget, Bytes),
    /// The current batch is complete: every row of it was sent.
    BatchEnd(BatchProgress),
    Failed(anyhow::Error),
}

/// Starts the reader thread for `reader`; its chunks and batch ends arrive on the receiver. A
/// bulk load passes its filter of sent keys, which the thread holds while it reads.
pub(super) fn spawn_reader(
    input: OpenedInput,
    cleaner: &Cleaner,
    options: &LoadOptions,
    (layout, sent_keys): (CopyLayout, Option<Arc<Mutex<SentKeys>>>),
    progress: &ProgressBar,
) -> Result<(std::thread::JoinHandle<()>, mpsc::Receiver<ReaderMessage>)> {
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let cleaner = cleaner.clone();
    let options = options.clone();
    let progress = progress.clone();
    let thread = std::thread::Builder::new()
        .name("campaign-elt-reader".into())
        .spawn(move || {
            // A reader that panicked cannot have left the filter forgetting a key it recorded.
            let mut sent_keys = sent_keys
                .as_ref()
                .map(|sent_keys| sent_keys.lock().unwrap_or_else(PoisonError::into_inner));
            read_and_encode(
                input.lines,
                input.deadline.as_ref(),
                &cleaner,
                &options,
                (layout, sent_keys.as_deref_mut()),
                &sender,
                (&progress, &input.position),
            )
        })
        .context("cannot start the reader thread")?;
    Ok((thread, receiver))
}

/// The reader thread: lines → outcomes → binary COPY rows, cut into batches and chunks.
/// A batch ends after `batch_lines` lines or, once it has lines, after `batch_seconds` —
/// also while a stream is quiet (`deadline` makes the stream reader give control back).
fn read_and_encode(
    mut reader: InputLines,
    deadline: Option<&Deadline>,
    cleaner: &Cleaner,
    options: &LoadOptions,
    (layout, mut sent_keys): (CopyLayout, Option<&mut SentKeys>),
    sender: &mpsc::Sender<ReaderMessage>,
    (progress, position): (&ProgressBar, &FilePosition),
) {
    let send = |message: ReaderMessage| sender.blocking_send(message).is_ok();
    let send_rows = |target: CopyTarget, rows: Bytes| send(ReaderMessage::Rows(target, rows));
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
                if batch.tally.lines > 0 {
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
        if batch.tally.lines == 0 {
            batch_started = Instant::now();
            if let Some(deadline) = deadline {
                deadline.set(batch_started + batch_age);
            }
        }
        last_line_number = line.number;
        last_line_has_newline = line.has_newline;
        let outcome = cleaner.classify(&line);
        batch.tally.count(&outcome);
        match outcome {
            LineOutcome::Blank => {}
            LineOutcome::Event(event) => encoder.event(
                line.number,
                &event,
                &cleaner.accepted_event_types()[event.event_type],
                options.personal_data.as_ref(),
                sent_keys.as_deref_mut(),
            ),
            LineOutcome::Rejected { reason, detail } => {
                encoder.reject(line.number, reason.code(), &detail, line.bytes, line.length)
            }
        }
        let end_offset = reader.offset();
        if batch.tally.lines >= options.batch_lines || batch_started.elapsed() >= batch_age {
            batch.end_offset = end_offset;
            batch.last_line_number = last_line_number;
            batch.ends_with_newline = last_line_has_newline;
            if let Some(deadline) = deadline {
                deadline.clear();
            }
            if !break_batch(&mut encoder, &mut batch, &send) {
                return;
            }
            progress.set_position(position.at(end_offset));
        } else if [&encoder.rows, &encoder.rejects, &encoder.suspect_keys]
            .iter()
            .any(|buffer| buffer.len() >= CHUNK_BYTES)
        {
            if !encoder.flush(CHUNK_BYTES, &send_rows) {
                return;
            }
            progress.set_position(position.at(end_offset));
        }
    }
    batch.at_end_of_input = true;
    batch.end_offset = reader.offset();
    batch.last_line_number = last_line_number;
    batch.ends_with_newline = last_line_has_newline;
    progress.set_position(position.at(batch.end_offset));
    break_batch(&mut encoder, &mut batch, &send);
}

/// Ends the current batch: the remaining rows, then the batch's counts.
/// Returns false when the database side has gone away.
fn break_batch(
    encoder: &mut RowEncoder,
    batch: &mut BatchProgress,
    send: &dyn Fn(ReaderMessage) -> bool,
) -> bool {
    encoder.flush(1, &|target, rows| send(ReaderMessage::Rows(target, rows)))
        && send(ReaderMessage::BatchEnd(std::mem::take(batch)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;
    use crate::ingest::open::open_at;

    #[test]
    fn the_bar_of_a_gz_file_counts_its_compressed_bytes_and_ends_at_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("night.jsonl.gz");
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        for i in 0..20_000 {
            writeln!(
                gzip,
                r#"{{"event_id":"e{i}","customer_id":{},"fired_at":"01/01/2022, 00:00:06","user_id":{},"event_type":"FaqClick"}}"#,
                i % 8,
                i % 99
            )
            .unwrap();
        }
        let compressed = gzip.finish().unwrap();
        std::fs::write(&path, &compressed).unwrap();
        let size = compressed.len() as u64;

        let bar = ProgressBar::hidden();
        bar.set_length(size);
        let options = LoadOptions {
            batch_lines: 5_000,
            ..LoadOptions::default()
        };
        let input = open_at(&path, options.max_line_bytes, 0, 1).unwrap();
        let cleaner = Cleaner::default();
        let (thread, mut receiver) =
            spawn_reader(input, &cleaner, &options, (CopyLayout::Staged, None), &bar).unwrap();
        let mut batches = 0;
        let mut decompressed = 0;
        while let Some(message) = receiver.blocking_recv() {
            assert!(bar.position() <= size, "{} past {size}", bar.position());
            if let ReaderMessage::BatchEnd(batch) = message {
                batches += 1;
                decompressed = batch.end_offset;
            }
        }
        thread.join().unwrap();
        assert_eq!(batches, 5, "four full batches, then the end of the input");
        assert!(
            decompressed > 4 * size,
            "the lines' offsets are decompressed bytes"
        );
        assert_eq!(bar.position(), size, "the bar ends at the file's size");
    }
}
