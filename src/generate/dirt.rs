//! Dirty lines: each one is blank or gets exactly one reject reason.

use std::io::{self, Write};

use rand::Rng;

use super::render::{
    self, Event, Layout, CLICK, FAQ, F_CUSTOMER_ID, F_EMAIL, F_EVENT_ID, F_EVENT_TYPE, F_FIRED_AT,
    F_IP, F_USER_ID, PAGE_LOAD,
};
use super::{Generator, DIRTY_REASONS};

/// Blank lines: empty or only ASCII whitespace (a lone `\r` is the CR of a CRLF ending).
const BLANKS: [&[u8]; 8] = [
    b"", b" ", b"\t", b"   ", b" \t ", b"\r", b"\x0b", b"\x0c \t",
];

/// Invalid UTF-8 sequences: a byte never used, a lead byte without continuation, an overlong
/// encoding, an encoded surrogate, a truncated 4-byte sequence, a lone continuation byte.
const BAD_UTF8: [&[u8]; 7] = [
    b"\xff",
    b"\xfe",
    b"\xc3(",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98",
    b"\x80",
];

/// Complete JSON texts that are not objects.
const NOT_OBJECTS: [&[u8]; 7] = [
    b"[1,2]",
    b"[]",
    b"\"event\"",
    b"42",
    b"null",
    b"true",
    b"[{}]",
];

/// Numbers JSON does not have.
const NOT_NUMBERS: [&[u8]; 4] = [b"NaN", b"Infinity", b"-Infinity", b"nan"];

/// String values with lone surrogate escapes.
const LONE_SURROGATES: [&[u8]; 4] = [
    b"\"\\ud800@example.org\"",
    b"\"ab\\udc00cd@example.org\"",
    b"\"x\\ud83d\\u0041@example.org\"",
    b"\"\\udfff\"",
];

/// Text appended after a complete object.
const TRAILING: [&[u8]; 4] = [b"}", b"x", b",{}", b"{}"];

/// `event_id` values that are present but invalid (besides the generated ones below).
const BAD_EVENT_IDS: [&[u8]; 7] = [
    b"\"\"",
    b"\"   \"",
    b"\"\\t\"",
    b"12345",
    b"true",
    b"[\"a\"]",
    b"{\"id\":\"a\"}",
];

/// `customer_id` / `user_id` values that are present but invalid.
const BAD_IDS: [&[u8]; 14] = [
    b"-3",
    b"12.5",
    b"\"abc\"",
    b"1e3",
    b"\" 12\"",
    b"true",
    b"\"-3\"",
    b"9223372036854775808",
    b"\"12345678901234567890\"",
    b"\"\"",
    b"[12]",
    b"1.0",
    b"-0",
    b"\"12a\"",
];

/// `fired_at` values that match neither grammar or are not a real date/time.
const BAD_FIRED_AT: [&[u8]; 13] = [
    b"\"13\\/45\\/2022, 25:61:00\"",
    b"\"2022-01-01 00:00:00\"",
    b"\"02\\/30\\/2022, 10:00:00\"",
    b"\"1\\/1\\/2022, 0:00:06\"",
    b"\"01\\/01\\/2022 00:00:06\"",
    b"\"01\\/01\\/2022, 24:00:00\"",
    b"\"01\\/01\\/2022, 23:59:60\"",
    b"\"01\\/01\\/22, 00:00:06\"",
    b"\"2022-13-01T00:00:00Z\"",
    b"\"2022-01-01T00:00:60Z\"",
    b"\"\"",
    b"1640995206",
    b"\"yesterday\"",
];

/// `event_type` values that are not exactly an accepted type.
const BAD_EVENT_TYPES: [&[u8]; 8] = [
    b"\"referralpageload\"",
    b"\"REFERRALPAGELOAD\"",
    b"\" ReferralPageLoad\"",
    b"\"ReferralPageLoad \"",
    b"\"FAQClick\"",
    b"\"Click\"",
    b"\"\"",
    b"\"PageView\"",
];

fn choose<'t>(rng: &mut impl Rng, items: &[&'t [u8]]) -> &'t [u8] {
    items[rng.gen_range(0..items.len())]
}

/// Replaces the value of member `field`.
fn replace_value(line: &mut Vec<u8>, layout: &Layout, field: usize, value: &[u8]) {
    let span = layout[field];
    line.splice(span.val..span.end, value.iter().copied());
}

/// Removes member `field` with its separating comma.
fn remove_member(line: &mut Vec<u8>, layout: &Layout, field: usize) {
    if field == 0 {
        line.drain(layout[0].key..layout[1].key);
    } else {
        let span = layout[field];
        line.drain(span.key - 1..span.end);
    }
}

impl Generator<'_> {
    /// Writes one dirty line, the kinds spread evenly: blank or one reject reason.
    pub(super) fn write_dirty(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let kind = self.rng.gen_range(0..=DIRTY_REASONS.len());
        if kind == 0 {
            self.line.clear();
            self.line.extend_from_slice(choose(&mut self.rng, &BLANKS));
            self.line.push(b'\n');
            self.emit_line(out)?;
            self.counts.blank += 1;
            return Ok(());
        }
        let reason = kind - 1;
        self.render_dirty(DIRTY_REASONS[reason]);
        self.line.push(b'\n');
        self.emit_line(out)?;
        self.counts.dirty[reason] += 1;
        Ok(())
    }

    /// A fresh, otherwise valid event at the current time (not part of the clean stream).
    fn fresh_event(&mut self) -> Event {
        let kind = match self.rng.gen_range(0..10) {
            0 => CLICK,
            1 => FAQ,
            _ => PAGE_LOAD,
        };
        Event {
            id: self.random_id(),
            time_us: self.now_us,
            customer: self.rng.gen_range(0..self.pop.customers),
            user: self.rng.gen_range(0..self.pop.users),
            kind,
        }
    }

    /// Renders into `self.line` (no terminator) a line whose first failing check is `reason`.
    fn render_dirty(&mut self, reason: &str) {
        let event = self.fresh_event();
        let layout = render::render(&self.pop, &mut self.times, &event, &mut self.line);
        let rng = &mut self.rng;
        let line = &mut self.line;
        let missing = |rng: &mut rand_chacha::ChaCha8Rng, line: &mut Vec<u8>, field: usize| {
            if rng.gen() {
                remove_member(line, &layout, field);
            } else {
                replace_value(line, &layout, field, b"null");
            }
        };
        match reason {
            "invalid_utf8" => {
                let field = [F_EVENT_ID, F_IP, F_EMAIL][rng.gen_range(0..3)];
                let span = layout[field];
                let at = rng.gen_range(span.val + 1..span.end);
                let bad = choose(rng, &BAD_UTF8);
                line.splice(at..at, bad.iter().copied());
            }
            "invalid_json" => match rng.gen_range(0..6) {
                0 => {
                    // Cut off anywhere before the closing brace.
                    let keep = rng.gen_range(1..line.len());
                    line.truncate(keep);
                }
                1 => {
                    let field = if rng.gen() { F_CUSTOMER_ID } else { F_USER_ID };
                    replace_value(line, &layout, field, choose(rng, &NOT_NUMBERS));
                }
                2 => {
                    let field = if rng.gen() { F_EMAIL } else { F_EVENT_ID };
                    replace_value(line, &layout, field, choose(rng, &LONE_SURROGATES));
                }
                3 => {
                    // A loader field appears twice, with the same value.
                    let field = rng.gen_range(F_EVENT_ID..=F_EVENT_TYPE);
                    let span = layout[field];
                    let mut member = vec![b','];
                    member.extend_from_slice(&line[span.key..span.end]);
                    let at = line.len() - 1;
                    line.splice(at..at, member);
                }
                4 => {
                    line.clear();
                    line.extend_from_slice(choose(rng, &NOT_OBJECTS));
                }
                _ => line.extend_from_slice(choose(rng, &TRAILING)),
            },
            "missing_event_id" => missing(rng, line, F_EVENT_ID),
            "invalid_event_id" => match rng.gen_range(0..3) {
                0 => replace_value(line, &layout, F_EVENT_ID, choose(rng, &BAD_EVENT_IDS)),
                1 => {
                    // Longer than 255 bytes.
                    let span = layout[F_EVENT_ID];
                    let id = line[span.val + 1..span.end - 1].to_vec();
                    let mut long = vec![b'"'];
                    while long.len() < 301 {
                        long.extend_from_slice(&id);
                    }
                    long.truncate(301);
                    long.push(b'"');
                    replace_value(line, &layout, F_EVENT_ID, &long);
                }
                _ => {
                    // A control character, escaped (a raw one would be invalid JSON).
                    let span = layout[F_EVENT_ID];
                    let at = rng.gen_range(span.val + 1..span.end);
                    let escape: &[u8] = [&b"\\u0000"[..], b"\\u0001", b"\\n", b"\\t", b"\\u001f"]
                        [rng.gen_range(0..5)];
                    line.splice(at..at, escape.iter().copied());
                }
            },
            "missing_customer_id" => missing(rng, line, F_CUSTOMER_ID),
            "invalid_customer_id" => {
                replace_value(line, &layout, F_CUSTOMER_ID, choose(rng, &BAD_IDS));
            }
            "missing_user_id" => missing(rng, line, F_USER_ID),
            "invalid_user_id" => replace_value(line, &layout, F_USER_ID, choose(rng, &BAD_IDS)),
            "missing_fired_at" => missing(rng, line, F_FIRED_AT),
            "invalid_fired_at" => {
                replace_value(line, &layout, F_FIRED_AT, choose(rng, &BAD_FIRED_AT));
            }
            "missing_event_type" => missing(rng, line, F_EVENT_TYPE),
            "unknown_event_type" => {
                replace_value(line, &layout, F_EVENT_TYPE, choose(rng, &BAD_EVENT_TYPES));
            }
            other => unreachable!("no dirty line for {other}"),
        }
    }
}
