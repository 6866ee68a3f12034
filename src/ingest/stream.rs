//! Reads a live stream (standard input) on its own thread, so that a quiet stream lets the
//! loader commit what it has after `--batch-seconds` instead of waiting for the next line.

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Size of the chunks the reading thread hands over.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks buffered between the reading thread and the parser: bounds memory.
const CHANNEL_CHUNKS: usize = 4;

/// When the parser wants control back if no data arrives: microseconds since `epoch`, 0 = never.
#[derive(Debug, Clone)]
pub struct Deadline {
    epoch: Instant,
    micros: Arc<AtomicU64>,
}

impl Deadline {
    /// Asks for a `TimedOut` error from reads that would block past `at` at a line start.
    pub fn set(&self, at: Instant) {
        let micros = at.saturating_duration_since(self.epoch).as_micros().max(1) as u64;
        self.micros.store(micros, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        self.micros.store(0, Ordering::Relaxed);
    }

    fn get(&self) -> Option<Instant> {
        match self.micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(self.epoch + Duration::from_micros(micros)),
        }
    }
}

/// A `BufRead` over chunks read by a background thread. `fill_buf` fails with
/// `ErrorKind::TimedOut` only when the deadline passed, nothing is buffered and the last
/// consumed byte ended a line — so a line is never split by a timeout.
pub struct StreamReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    position: usize,
    at_line_start: bool,
    finished: bool,
    deadline: Deadline,
}

impl StreamReader {
    /// Starts reading `source` on a thread of its own.
    pub fn spawn<R: Read + Send + 'static>(mut source: R) -> io::Result<StreamReader> {
        let (sender, chunks) = mpsc::sync_channel(CHANNEL_CHUNKS);
        std::thread::Builder::new()
            .name("campaign-elt-stream".into())
            .spawn(move || loop {
                let mut chunk = vec![0; CHUNK_BYTES];
                match source.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(read) => {
                        chunk.truncate(read);
                        if sender.send(Ok(chunk)).is_err() {
                            break;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        let _ = sender.send(Err(error));
                        break;
                    }
                }
            })?;
        Ok(StreamReader {
            chunks,
            current: Vec::new(),
            position: 0,
            at_line_start: true,
            finished: false,
            deadline: Deadline {
                epoch: Instant::now(),
                micros: Arc::new(AtomicU64::new(0)),
            },
        })
    }

    /// The handle that sets this reader's deadline.
    pub fn deadline(&self) -> Deadline {
        self.deadline.clone()
    }
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(out.len());
        out[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl BufRead for StreamReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.position >= self.current.len() && !self.finished {
            let received = match (self.deadline.get(), self.at_line_start) {
                (Some(deadline), true) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match self.chunks.recv_timeout(wait) {
                        Ok(chunk) => Some(chunk),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "no new line before the batch deadline",
                            ))
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    }
                }
                _ => self.chunks.recv().ok(),
            };
            match received {
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.position = 0;
                }
                Some(Err(error)) => {
                    self.finished = true;
                    return Err(error);
                }
                None => self.finished = true,
            }
        }
        Ok(&self.current[self.position..])
    }

    fn consume(&mut self, amount: usize) {
        if amount > 0 {
            self.at_line_start = self.current[self.position + amount - 1] == b'\n';
        }
        self.position += amount;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that yields its parts with a pause between them.
    struct Slow {
        parts: Vec<&'static [u8]>,
        pause: Duration,
    }

    impl Read for Slow {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.parts.is_empty() {
                return Ok(0);
            }
            std::thread::sleep(self.pause);
            let part = self.parts.remove(0);
            out[..part.len()].copy_from_slice(part);
            Ok(part.len())
        }
    }

    #[test]
    fn times_out_only_at_a_line_start() {
        let source = Slow {
            parts: vec![b"a\nb", b"c\n", b"d\n"],
            pause: Duration::from_millis(150),
        };
        let mut reader = StreamReader::spawn(source).unwrap();
        let deadline = reader.deadline();
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line, b"a\n");
        // Mid-line ("b" read, "c\n" still coming): no timeout, the line completes.
        deadline.set(Instant::now());
        line.clear();
        reader.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line, b"bc\n");
        // At a line start with nothing buffered and the deadline passed ("d\n" is 150 ms away):
        // TimedOut, and nothing is lost.
        deadline.set(Instant::now());
        let error = reader.fill_buf().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        deadline.clear();
        line.clear();
        reader.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line, b"d\n");
        assert!(reader.fill_buf().unwrap().is_empty());
    }
}
