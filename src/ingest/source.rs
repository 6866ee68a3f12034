//! Opens inputs: a path, `-` for standard input, `.gz` decompressed transparently.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

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

/// Opens `path` for line reading (`-` is standard input; `*.gz` is gunzipped).
///
/// Concatenated gzip members (as `cat a.gz b.gz` or `gzip` of appended logs produce) are all
/// read. A directory or unreadable path is an error naming the path.
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    if is_stdin(path) {
        return Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER_BYTES,
            io::stdin(),
        )));
    }
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Opening a directory succeeds on Unix; reading it would fail later with a vaguer error.
    let metadata = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if metadata.is_dir() {
        bail!("cannot read {}: is a directory", path.display());
    }
    let file = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    if is_gzip(path) {
        Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER_BYTES,
            MultiGzDecoder::new(file),
        )))
    } else {
        Ok(Box::new(file))
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
