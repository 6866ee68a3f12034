//! Splits a byte stream into numbered lines with bounded memory (the line rules of the README's "Every line is accounted for").

use std::io::{self, BufRead};

/// One input line, as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// 1-based line number within the file.
    pub number: u64,
    /// The line without its `\n`, without one trailing `\r`, and (line 1) without a UTF-8 BOM.
    /// When `too_long` is set this is only the first `max_line_bytes` bytes.
    pub bytes: &'a [u8],
    /// Full length of the line in bytes (after removing the terminator, `\r` and BOM).
    pub length: u64,
    /// The line is longer than the limit; it was never buffered whole.
    pub too_long: bool,
    /// The line ended with `\n` (false only for a last line without a final newline).
    pub has_newline: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads lines from a `BufRead` without ever buffering more than `max_line_bytes` (+1) of a line.
///
/// A line that lies entirely inside the reader's current buffer is returned without copying;
/// otherwise its bytes are gathered in one reusable buffer whose capacity never exceeds
/// `max_line_bytes + 4` (room for a BOM and a `\r`).
pub struct LineReader<R> {
    inner: R,
    max_line_bytes: usize,
    /// Reused for lines that straddle buffer refills (or the first line, which may hold a BOM).
    buf: Vec<u8>,
    /// Upper bound of `buf.capacity()`.
    buf_limit: usize,
    next_number: u64,
    /// Bytes logically consumed from the start of the file, including `pending`.
    offset: u64,
    /// Bytes of the last returned line still to be `consume`d from `inner` (zero-copy path).
    pending: usize,
    /// The next line is the first of the file and may start with a BOM.
    strip_bom: bool,
    eof: bool,
}

impl<R: BufRead> LineReader<R> {
    /// `max_line_bytes`: the longest accepted line; longer lines are reported `too_long`.
    pub fn new(inner: R, max_line_bytes: usize) -> Self {
        let mut reader = Self::resume(inner, max_line_bytes, 1, 0);
        reader.strip_bom = true;
        reader
    }

    /// Continues a file at a byte offset that is known to be a line start: `inner` must already
    /// be positioned there, `next_line_number` is the number of the next line. No BOM is stripped.
    pub fn resume(inner: R, max_line_bytes: usize, next_line_number: u64, offset: u64) -> Self {
        Self {
            inner,
            max_line_bytes,
            buf: Vec::new(),
            buf_limit: max_line_bytes.saturating_add(BOM.len() + 1),
            next_number: next_line_number,
            offset,
            pending: 0,
            strip_bom: false,
            eof: false,
        }
    }

    /// The next line, or `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
        if self.pending > 0 {
            self.inner.consume(self.pending);
            self.pending = 0;
        }
        if self.eof {
            return Ok(None);
        }
        let found = {
            let avail = fill_buf(&mut self.inner)?;
            if avail.is_empty() {
                self.eof = true;
                return Ok(None);
            }
            find_newline(avail).map(|end| (end, end > 0 && avail[end - 1] == b'\r'))
        };
        // Fast path: the whole line is already in the reader's buffer; lend it without copying.
        if let Some((end, ends_with_cr)) = found {
            let length = if ends_with_cr { end - 1 } else { end };
            if !self.strip_bom && length <= self.max_line_bytes {
                self.pending = end + 1;
                self.offset += (end + 1) as u64;
                let number = self.next_number;
                self.next_number += 1;
                let bytes = &fill_buf(&mut self.inner)?[..length];
                return Ok(Some(RawLine {
                    number,
                    bytes,
                    length: length as u64,
                    too_long: false,
                    has_newline: true,
                }));
            }
        }
        self.gather_line()
    }

    /// Bytes consumed so far, counted from the start of the file (including terminators).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number the next line will get.
    pub fn next_line_number(&self) -> u64 {
        self.next_number
    }

    /// Slow path: copies (at most `buf_limit` bytes of) the line into `buf`, skipping the rest.
    fn gather_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
        self.buf.clear();
        let mut total: u64 = 0;
        let mut last_byte = 0u8;
        let mut has_newline = false;
        loop {
            let avail = fill_buf(&mut self.inner)?;
            if avail.is_empty() {
                self.eof = true;
                break;
            }
            let (take, used) = match find_newline(avail) {
                Some(end) => {
                    has_newline = true;
                    (end, end + 1)
                }
                None => (avail.len(), avail.len()),
            };
            if take > 0 {
                let chunk = &avail[..take];
                last_byte = chunk[take - 1];
                total += take as u64;
                let room = self.buf_limit - self.buf.len();
                let keep = &chunk[..take.min(room)];
                if !keep.is_empty() {
                    reserve_bounded(&mut self.buf, keep.len(), self.buf_limit);
                    self.buf.extend_from_slice(keep);
                }
            }
            self.inner.consume(used);
            self.offset += used as u64;
            if has_newline {
                break;
            }
        }
        if !has_newline && total == 0 {
            return Ok(None);
        }
        let mut length = total;
        if last_byte == b'\r' && total > 0 {
            length -= 1;
        }
        let mut start = 0;
        if std::mem::take(&mut self.strip_bom)
            && length >= BOM.len() as u64
            && self.buf.starts_with(BOM)
        {
            start = BOM.len();
            length -= BOM.len() as u64;
        }
        let too_long = length > self.max_line_bytes as u64;
        // Not too long: the line (after the BOM) fits in `buf`; too long: `buf` holds at least
        // `max_line_bytes` bytes after the BOM, because it was filled up to `buf_limit`.
        let kept = if too_long {
            self.max_line_bytes
        } else {
            length as usize
        };
        let number = self.next_number;
        self.next_number += 1;
        Ok(Some(RawLine {
            number,
            bytes: &self.buf[start..start + kept],
            length,
            too_long,
            has_newline,
        }))
    }

    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// `fill_buf`, retrying when interrupted by a signal.
fn fill_buf<R: BufRead>(inner: &mut R) -> io::Result<&[u8]> {
    // The borrow checker rejects returning the buffer from inside the retry loop, so the loop
    // only waits for data; asking again for a non-empty buffer returns it without reading.
    loop {
        match inner.fill_buf() {
            Ok([]) => return Ok(&[]),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    inner.fill_buf()
}

/// Grows `buf` for `extra` more bytes without letting its capacity pass `limit`.
fn reserve_bounded(buf: &mut Vec<u8>, extra: usize, limit: usize) {
    let needed = buf.len() + extra;
    if needed > buf.capacity() {
        let target = needed
            .max(buf.capacity().saturating_mul(2))
            .max(256)
            .min(limit);
        buf.reserve_exact(target - buf.len());
    }
}

/// Position of the first `\n`.
fn find_newline(haystack: &[u8]) -> Option<usize> {
    find_byte(haystack, b'\n')
}

/// Position of the first `needle`, scanning a word at a time (SWAR; no `memchr` dependency).
pub(crate) fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = haystack.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunk of 8 bytes")) ^ pattern;
        // Non-zero iff some byte of `word` is zero, i.e. equals `needle`.
        if (word.wrapping_sub(LO) & !word & HI) != 0 {
            break;
        }
        base += 8;
    }
    haystack[base..]
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::{BufReader, Read};

    #[derive(Debug, PartialEq, Eq)]
    struct Line {
        number: u64,
        bytes: Vec<u8>,
        length: u64,
        too_long: bool,
        has_newline: bool,
        offset_after: u64,
    }

    fn collect<R: BufRead>(mut reader: LineReader<R>) -> Vec<Line> {
        let mut out = Vec::new();
        loop {
            let line = match reader.next_line().unwrap() {
                None => break,
                Some(l) => (
                    l.number,
                    l.bytes.to_vec(),
                    l.length,
                    l.too_long,
                    l.has_newline,
                ),
            };
            out.push(Line {
                number: line.0,
                bytes: line.1,
                length: line.2,
                too_long: line.3,
                has_newline: line.4,
                offset_after: reader.offset(),
            });
        }
        assert!(
            reader.next_line().unwrap().is_none(),
            "stays at end of input"
        );
        out
    }

    fn lines(data: &[u8], max: usize) -> Vec<Line> {
        collect(LineReader::new(data, max))
    }

    /// A reader handing out `step` bytes per `fill_buf`, to exercise buffer boundaries.
    fn lines_chunked(data: &[u8], max: usize, step: usize) -> Vec<Line> {
        collect(LineReader::new(BufReader::with_capacity(step, data), max))
    }

    fn texts(lines: &[Line]) -> Vec<&[u8]> {
        lines.iter().map(|l| l.bytes.as_slice()).collect()
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(lines(b"", 100).is_empty());
    }

    #[test]
    fn final_newline_does_not_add_a_line() {
        let got = lines(b"a\nbc\n", 100);
        assert_eq!(texts(&got), [b"a".as_slice(), b"bc"]);
        assert_eq!(got.iter().map(|l| l.number).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            got.iter().map(|l| l.offset_after).collect::<Vec<_>>(),
            [2, 5]
        );
        assert!(got.iter().all(|l| l.has_newline));
    }

    #[test]
    fn last_line_without_newline_counts() {
        let got = lines(b"a\nlast", 100);
        assert_eq!(texts(&got), [b"a".as_slice(), b"last"]);
        assert!(!got[1].has_newline);
        assert_eq!(got[1].offset_after, 6);
    }

    #[test]
    fn only_newlines_are_empty_lines() {
        let got = lines(b"\n\n\n", 100);
        assert_eq!(got.len(), 3);
        assert!(got
            .iter()
            .all(|l| l.bytes.is_empty() && l.length == 0 && l.has_newline));
    }

    #[test]
    fn crlf_loses_one_cr() {
        let got = lines(b"a\r\nb\r\r\nc\r", 100);
        assert_eq!(texts(&got), [b"a".as_slice(), b"b\r", b"c"]);
        assert_eq!(got[2].length, 1);
        assert_eq!(got.last().unwrap().offset_after, 9);
    }

    #[test]
    fn bom_is_removed_from_the_first_line_only() {
        let got = lines(b"\xEF\xBB\xBF{}\n\xEF\xBB\xBF{}\n", 100);
        assert_eq!(texts(&got), [b"{}".as_slice(), b"\xEF\xBB\xBF{}"]);
        assert_eq!(got[0].length, 2);
        assert_eq!(got[0].offset_after, 6, "the BOM counts in the offset");
    }

    #[test]
    fn bom_split_across_reads_is_removed() {
        let got = lines_chunked(b"\xEF\xBB\xBFab\r\ncd", 100, 1);
        assert_eq!(texts(&got), [b"ab".as_slice(), b"cd"]);
        assert_eq!(got[1].offset_after, 9);
    }

    #[test]
    fn bom_alone_is_one_empty_line() {
        let got = lines(b"\xEF\xBB\xBF", 100);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].length, 0);
        assert!(!got[0].has_newline);
    }

    #[test]
    fn partial_bom_is_kept() {
        assert_eq!(
            texts(&lines(b"\xEF\xBBx\n", 100)),
            [b"\xEF\xBBx".as_slice()]
        );
    }

    #[test]
    fn bom_does_not_count_against_the_limit() {
        let got = lines(b"\xEF\xBB\xBFabcd\n", 4);
        assert!(!got[0].too_long);
        assert_eq!(got[0].bytes, b"abcd");
    }

    #[test]
    fn resume_does_not_strip_a_bom_and_continues_numbers_and_offsets() {
        let reader = LineReader::resume(&b"\xEF\xBB\xBFx\ny"[..], 100, 7, 1000);
        let got = collect(reader);
        assert_eq!(texts(&got), [b"\xEF\xBB\xBFx".as_slice(), b"y"]);
        assert_eq!(got[0].number, 7);
        assert_eq!(got[0].offset_after, 1005);
        assert_eq!(got[1].offset_after, 1006);
    }

    #[test]
    fn nul_bytes_are_ordinary_bytes() {
        assert_eq!(
            texts(&lines(b"a\0b\n\0\n", 100)),
            [b"a\0b".as_slice(), b"\0"]
        );
    }

    #[test]
    fn line_at_the_limit_is_accepted_and_one_more_byte_is_too_long() {
        let got = lines(b"abcd\r\nabcde\nxyz", 4);
        assert!(!got[0].too_long);
        assert_eq!(got[0].bytes, b"abcd");
        assert!(got[1].too_long);
        assert_eq!(got[1].bytes, b"abcd");
        assert_eq!(got[1].length, 5);
        assert_eq!(got[2].bytes, b"xyz");
        assert_eq!(got[2].offset_after, 15);
    }

    #[test]
    fn too_long_line_with_crlf_reports_length_without_cr() {
        let got = lines_chunked(b"abcdefgh\r\nok\n", 4, 3);
        assert!(got[0].too_long);
        assert_eq!(got[0].length, 8);
        assert_eq!(got[0].bytes, b"abcd");
        assert_eq!(got[1].bytes, b"ok");
    }

    #[test]
    fn chunked_reads_give_the_same_lines() {
        let data = b"\xEF\xBB\xBFfirst\r\nsecond line\n\nthird is longer than ten\r\nlast";
        let whole = lines(data, 10);
        for step in 1..data.len() + 2 {
            assert_eq!(lines_chunked(data, 10, step), whole, "step {step}");
        }
    }

    /// Yields `len` bytes of `x` then `\nok\n`, never holding the long line in memory.
    struct LongLine {
        remaining: usize,
        tail: &'static [u8],
    }

    impl Read for LongLine {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.remaining > 0 {
                let n = out.len().min(self.remaining);
                out[..n].fill(b'x');
                self.remaining -= n;
                return Ok(n);
            }
            let n = out.len().min(self.tail.len());
            out[..n].copy_from_slice(&self.tail[..n]);
            self.tail = &self.tail[n..];
            Ok(n)
        }
    }

    #[test]
    fn ten_megabyte_line_is_skipped_with_bounded_memory() {
        const LEN: usize = 10 << 20;
        let source = BufReader::with_capacity(
            64 << 10,
            LongLine {
                remaining: LEN,
                tail: b"\nok\n",
            },
        );
        let mut reader = LineReader::new(source, 1024);
        {
            let line = reader.next_line().unwrap().unwrap();
            assert!(line.too_long);
            assert_eq!(line.length, LEN as u64);
            assert_eq!(line.bytes.len(), 1024);
        }
        assert!(
            reader.buffer_capacity() <= 1024 + 4,
            "capacity {}",
            reader.buffer_capacity()
        );
        assert_eq!(reader.offset(), LEN as u64 + 1);
        let line = reader.next_line().unwrap().unwrap();
        assert_eq!((line.number, line.bytes), (2, b"ok".as_slice()));
        assert!(reader.next_line().unwrap().is_none());
        assert!(reader.buffer_capacity() <= 1024 + 4);
    }

    #[test]
    fn find_newline_agrees_with_a_plain_search() {
        let mut data = vec![b'a'; 40];
        assert_eq!(find_newline(&data), None);
        for pos in 0..data.len() {
            data[pos] = b'\n';
            assert_eq!(find_newline(&data), Some(pos));
            data[pos] = 0x8a; // high bit set, must not look like a newline
            assert_eq!(find_newline(&data), None);
            data[pos] = b'a';
        }
    }

    /// The line rules written the obvious way, over a whole in-memory input.
    fn model(data: &[u8], max: usize) -> Vec<Line> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let (end, next) = match data[pos..].iter().position(|&b| b == b'\n') {
                Some(i) => (pos + i, pos + i + 1),
                None => (data.len(), data.len()),
            };
            let mut line = &data[pos..end];
            if pos == 0 {
                line = line.strip_prefix(BOM).unwrap_or(line);
            }
            line = line.strip_suffix(b"\r").unwrap_or(line);
            out.push(Line {
                number: out.len() as u64 + 1,
                bytes: line[..line.len().min(max)].to_vec(),
                length: line.len() as u64,
                too_long: line.len() > max,
                has_newline: next > end,
                offset_after: next as u64,
            });
            pos = next;
        }
        out
    }

    fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            Just(b'\n'),
            Just(b'\r'),
            Just(0xEF),
            Just(0xBB),
            Just(0xBF),
            Just(b'a'),
            any::<u8>(),
        ];
        prop_oneof![
            proptest::collection::vec(byte.clone(), 0..200),
            proptest::collection::vec(byte, 0..200).prop_map(|mut v| {
                let mut with_bom = BOM.to_vec();
                with_bom.append(&mut v);
                with_bom
            }),
        ]
    }

    proptest! {
        #[test]
        fn reader_matches_the_model_for_any_buffer_size(
            data in interesting_bytes(),
            max in 0usize..40,
            step in 1usize..50,
        ) {
            let expected = model(&data, max);
            prop_assert_eq!(lines(&data, max), expected.as_slice());
            prop_assert_eq!(lines_chunked(&data, max, step), expected.as_slice());
            let newlines = data.iter().filter(|&&b| b == b'\n').count();
            let unterminated = usize::from(!data.is_empty() && !data.ends_with(b"\n"));
            prop_assert_eq!(expected.len(), newlines + unterminated);
        }
    }
}
