//! Opening an input positioned at a line recorded earlier (a resumed load, a grown file's tail).

use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::lines::LineReader;
use super::source::{self, FilePosition};
use super::stream::{Deadline, StreamReader};

/// The lines of one input.
pub type InputLines = LineReader<Box<dyn BufRead + Send>>;

/// An opened input: its lines, the deadline that makes a quiet stream give control back, and
/// how far through the file the reader is (for the progress bar).
pub struct OpenedInput {
    pub lines: InputLines,
    pub deadline: Option<Deadline>,
    pub position: FilePosition,
}

/// Opens `path` positioned at `offset` / `next_line_number` (a line start recorded earlier).
pub fn open_at(
    path: &Path,
    max_line_bytes: usize,
    offset: u64,
    next_line_number: u64,
) -> Result<OpenedInput> {
    if source::is_stdin(path) {
        let stream = StreamReader::spawn(std::io::stdin()).context("cannot read standard input")?;
        let deadline = stream.deadline();
        let input: Box<dyn BufRead + Send> = Box::new(stream);
        return Ok(OpenedInput {
            lines: LineReader::new(input, max_line_bytes),
            deadline: Some(deadline),
            position: FilePosition::default(),
        });
    }
    let (lines, position) = open_file_at(path, max_line_bytes, offset, next_line_number)?;
    Ok(OpenedInput {
        lines,
        deadline: None,
        position,
    })
}

fn open_file_at(
    path: &Path,
    max_line_bytes: usize,
    offset: u64,
    next_line_number: u64,
) -> Result<(InputLines, FilePosition)> {
    if offset == 0 {
        let (input, position) = source::open_input_at_position(path)?;
        return Ok((LineReader::new(input, max_line_bytes), position));
    }
    if source::is_gzip(path) {
        // Offsets count decompressed bytes: read up to the line instead of seeking.
        let (input, position) = source::open_input_at_position(path)?;
        let mut reader = LineReader::new(input, max_line_bytes);
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
        return Ok((reader, position));
    }
    use std::io::{Seek, SeekFrom};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let input: Box<dyn BufRead + Send> = Box::new(std::io::BufReader::with_capacity(
        source::READ_BUFFER_BYTES,
        file,
    ));
    let lines = LineReader::resume(input, max_line_bytes, next_line_number, offset);
    Ok((lines, FilePosition::default()))
}
