//! Opens inputs: a path, `-` for standard input, `.gz` decompressed transparently.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use flate2::bufread::MultiGzDecoder;

/// Size of the read buffer in front of every input.
pub const READ_BUFFER_BYTES: usize = 1 << 20;

/// `-` means standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// A path ending in `.gz` (any case) is read through a gzip decoder.
pub fn is_gzip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"))
}

/// How far through its file a reader is, in the file's own bytes: what a progress bar compares
/// with the file's size. The lines' offsets count decompressed bytes; for a `.gz` file this
/// counts the compressed bytes read from it instead (at most one read buffer ahead of the
/// lines).
#[derive(Debug, Clone, Default)]
pub struct FilePosition(Option<Arc<AtomicU64>>);

impl FilePosition {
    /// The position in the file when the lines read end at `line_offset`.
    pub fn at(&self, line_offset: u64) -> u64 {
        match &self.0 {
            Some(compressed_read) => compressed_read.load(Ordering::Relaxed),
            None => line_offset,
        }
    }
}

/// Counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.read.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Opens `path` for line reading (`-` is standard input; `*.gz` is gunzipped).
///
/// Concatenated gzip members (as `cat a.gz b.gz` or `gzip` of appended logs produce) are all
/// read. A directory or unreadable path is an error naming the path.
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    Ok(open_input_at_position(path)?.0)
}

/// [`open_input`], and how far through the file its reader is.
pub fn open_input_at_position(path: &Path) -> Result<(Box<dyn BufRead + Send>, FilePosition)> {
    if is_stdin(path) {
        let stdin = BufReader::with_capacity(READ_BUFFER_BYTES, io::stdin());
        return Ok((Box::new(stdin), FilePosition::default()));
    }
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Opening a directory succeeds on Unix; reading it would fail later with a vaguer error.
    let metadata = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if metadata.is_dir() {
        bail!("cannot read {}: is a directory", path.display());
    }
    if is_gzip(path) {
        let compressed_read = Arc::new(AtomicU64::new(0));
        let file = CountingReader {
            inner: file,
            read: compressed_read.clone(),
        };
        let file = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let lines = BufReader::with_capacity(READ_BUFFER_BYTES, MultiGzDecoder::new(file));
        Ok((Box::new(lines), FilePosition(Some(compressed_read))))
    } else {
        let file = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        Ok((Box::new(file), FilePosition::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::{Read, Write};

    fn read_all(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        open_input(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn plain_file_is_read_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n\xff\n").unwrap();
        assert_eq!(read_all(&path), b"{\"a\":1}\n\xff\n");
    }

    #[test]
    fn gz_file_is_decompressed_including_concatenated_members() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl.gz");
        let mut data = gzip(b"first\n");
        data.extend(gzip(b"second\n"));
        std::fs::write(&path, data).unwrap();
        assert_eq!(read_all(&path), b"first\nsecond\n");
        let upper = dir.path().join("EVENTS.GZ");
        std::fs::write(&upper, gzip(b"x")).unwrap();
        assert_eq!(read_all(&upper), b"x");
    }

    #[test]
    fn gz_input_feeds_the_line_reader_and_cleaner() {
        use crate::ingest::{Cleaner, LineOutcome, LineReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("day.jsonl.gz");
        let text = concat!(
            "\u{feff}",
            r#"{"event_id":"e1","customer_id":1,"fired_at":"01\/01\/2022, 00:00:06","user_id":2,"event_type":"FaqClick"}"#,
            "\r\n\n",
            r#"{"event_id":"e2","customer_id":1,"fired_at":"01\/01\/2022, 00:00:06","user_id":2,"event_type":"EMPTY_VALUE"}"#,
        );
        std::fs::write(&path, gzip(text.as_bytes())).unwrap();
        let mut reader = LineReader::new(open_input(&path).unwrap(), 1 << 20);
        let cleaner = Cleaner::default();
        let mut outcomes = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            outcomes.push(match cleaner.classify(&line) {
                LineOutcome::Event(_) => "event",
                LineOutcome::Blank => "blank",
                LineOutcome::Rejected { .. } => "rejected",
            });
        }
        assert_eq!(outcomes, ["event", "blank", "rejected"]);
        assert_eq!(
            reader.offset(),
            text.len() as u64,
            "offsets count decompressed bytes"
        );
    }

    #[test]
    fn a_gz_file_s_position_counts_its_compressed_bytes_up_to_its_size() {
        use crate::ingest::LineReader;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("night.jsonl.gz");
        // Ids that compress to about half: several read buffers of compressed bytes.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let text: String = (0..100_000)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!(
                    "{{\"event_id\":\"{state:016x}{:016x}\",\"customer_id\":{}}}\n",
                    state.rotate_left(29),
                    i % 8
                )
            })
            .collect();
        std::fs::write(&path, gzip(text.as_bytes())).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size > 2 * READ_BUFFER_BYTES as u64, "{size} bytes");
        assert!(
            size * 3 < text.len() as u64 * 2,
            "compresses: {size} of {}",
            text.len()
        );
        let (input, position) = open_input_at_position(&path).unwrap();
        let mut reader = LineReader::new(input, 1 << 20);
        let mut seen = Vec::new();
        while reader.next_line().unwrap().is_some() {
            let at = position.at(reader.offset());
            assert!(at <= size, "{at} past the file's {size} bytes");
            seen.push(at);
        }
        assert_eq!(
            reader.offset(),
            text.len() as u64,
            "offsets stay decompressed"
        );
        assert_eq!(
            position.at(reader.offset()),
            size,
            "the end of the file is its size"
        );
        assert!(seen.windows(2).all(|pair| pair[0] <= pair[1]));
        assert!(
            seen[0] < size / 2,
            "the first line is read early in the file"
        );

        let plain = dir.path().join("night.jsonl");
        std::fs::write(&plain, &text).unwrap();
        let (input, position) = open_input_at_position(&plain).unwrap();
        let mut reader = LineReader::new(input, 1 << 20);
        reader.next_line().unwrap();
        assert_eq!(position.at(reader.offset()), reader.offset());
    }

    #[test]
    fn corrupt_gz_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.gz");
        std::fs::write(&path, b"not gzip at all").unwrap();
        let mut out = Vec::new();
        assert!(open_input(&path).unwrap().read_to_end(&mut out).is_err());
    }

    #[test]
    fn directory_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_input(dir.path()).err().unwrap();
        assert_eq!(
            format!("{err:#}"),
            format!("cannot read {}: is a directory", dir.path().display())
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.jsonl");
        let err = format!("{:#}", open_input(&path).err().unwrap());
        assert!(
            err.starts_with(&format!("cannot read {}: ", path.display())),
            "{err}"
        );
    }

    #[test]
    fn dash_is_stdin() {
        assert!(is_stdin(Path::new("-")));
        assert!(!is_stdin(Path::new("./-")));
        assert!(!is_stdin(Path::new("--")));
        assert!(open_input(Path::new("-")).is_ok());
    }

    #[test]
    fn gz_detection_uses_the_extension() {
        assert!(is_gzip(Path::new("a/b.jsonl.gz")));
        assert!(is_gzip(Path::new("b.GZ")));
        assert!(!is_gzip(Path::new("b.gzip")));
        assert!(!is_gzip(Path::new("gz")));
        assert!(!is_gzip(Path::new("b.jsonl")));
    }
}
