//! Generates realistic synthetic referral event logs (optionally dirty), deterministic by seed.

mod dirt;
mod render;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Write};

use chrono::{Datelike, NaiveDateTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use render::{Event, Population, TimeFormatter, CLICK, EMPTY_VALUE, FAQ, PAGE_LOAD};

/// The reject reasons (the reject reason codes) the generator produces, the keys of
/// [`GenerateStats::dirty_by_reason`]. `line_too_long` is never generated.
pub const DIRTY_REASONS: [&str; 12] = [
    "invalid_utf8",
    "invalid_json",
    "missing_event_id",
    "invalid_event_id",
    "missing_customer_id",
    "invalid_customer_id",
    "missing_user_id",
    "invalid_user_id",
    "missing_fired_at",
    "invalid_fired_at",
    "missing_event_type",
    "unknown_event_type",
];
const R_UNKNOWN_EVENT_TYPE: usize = 11;

/// The accepted event types, the keys of [`GenerateStats::clean_by_type`].
pub const CLEAN_EVENT_TYPES: [&str; 3] = ["ReferralPageLoad", "ReferralRecommendClick", "FaqClick"];

// Profile of the real file (its published profile): 100,000 base events (page loads and
// EMPTY_VALUE, each with its own id) and 20,104 follow-ups sharing a page load's id.
const BASE_SHARE: f64 = 100_000.0 / 120_104.0;
const EMPTY_VALUE_SHARE: f64 = 9_993.0 / 100_000.0;
const FOLLOW_UP_PER_PAGE_LOAD: f64 = 20_104.0 / 90_007.0;
const CLICK_SHARE_OF_FOLLOW_UPS: f64 = 10_092.0 / 20_104.0;
/// Follow-ups come this many whole seconds after their page load (inclusive).
const FOLLOW_UP_DELAY_S: (i64, i64) = (6, 600);
/// Late lines are emitted this many microseconds after their `fired_at` (inclusive).
const LATENESS_US: (i64, i64) = (2_000_000, 300_000_000);
/// Days-late lines (see [`GenerateOptions::days_late_share`]) are emitted this many
/// microseconds after their `fired_at` (inclusive): 1 to 7 days.
const DAYS_LATENESS_US: (i64, i64) = (86_400_000_000, 7 * 86_400_000_000);
/// Conflicting re-sends move `fired_at` by up to this many seconds either way.
const RESEND_SHIFT_S: i64 = 3_600;
/// Exact duplicates and conflicting re-sends repeat one of this many latest clean events.
const RECENT: usize = 64;

/// What to generate. Rates are fractions in 0..=1; `dirt_rate`, `exact_duplicate_rate` and
/// `conflicting_resend_rate` together take at most all lines, the rest are clean events.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Number of lines to write.
    pub lines: u64,
    /// Seed of the random generator: the same options give the same bytes.
    pub seed: u64,
    /// `fired_at` of the first event (UTC, years 1 to 9999; later times are not checked).
    pub start: NaiveDateTime,
    /// Clean events per hour on average (the real file has about 500); with `lines` this sets
    /// the time span. Dirty lines and re-sends come on top.
    pub events_per_hour: f64,
    /// Number of customers (the first 8 get the real file's ids 12, 29, …, 344).
    pub customers: u32,
    /// Number of users (the real file has 99); each has one ip and one email.
    pub users: u32,
    /// How unevenly the volume is spread over the customers: customer `i` (from 0) gets a share
    /// proportional to `1 / (i + 1)^customer_skew` (Zipf's law). 0 spreads it evenly.
    pub customer_skew: f64,
    /// Fraction of lines that are dirty: blank or rejected for one reason, spread
    /// evenly over the kinds (`EMPTY_VALUE` events of the clean mix come on top).
    pub dirt_rate: f64,
    /// Fraction of lines that repeat an earlier clean line byte for byte, shortly after it.
    pub exact_duplicate_rate: f64,
    /// Fraction of lines that re-send an earlier event (same `event_id` and `event_type`) with
    /// another `fired_at` and/or `user_id`.
    pub conflicting_resend_rate: f64,
    /// Fraction of clean events written after their `fired_at`, i.e. out of time order: a few
    /// seconds to minutes late, or 1 to 7 days (see `days_late_share`).
    pub late_rate: f64,
    /// Share of the late events that are 1 to 7 days late (a backfill, a delayed re-send)
    /// instead of seconds to minutes.
    pub days_late_share: f64,
}

/// The mixes of clean and dirty lines that `generate --mix` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Only the real sample's clean mix (with its ~8 % `EMPTY_VALUE` events).
    Clean,
    /// What real nightly logs carry on top: 1 % dirty lines of every kind, 0.5 % exact re-sends,
    /// 0.1 % conflicting re-sends, 1 % late lines of which half are 1–7 days late.
    Realistic,
}

impl Mix {
    /// The options of this mix; the caller may override any of them.
    pub fn options(self) -> GenerateOptions {
        match self {
            Mix::Clean => GenerateOptions::default(),
            Mix::Realistic => GenerateOptions {
                dirt_rate: 0.01,
                exact_duplicate_rate: 0.005,
                conflicting_resend_rate: 0.001,
                late_rate: 0.01,
                days_late_share: 0.5,
                ..GenerateOptions::default()
            },
        }
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            lines: 120_104,
            seed: 0,
            start: chrono::NaiveDate::from_ymd_opt(2022, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("valid date"),
            events_per_hour: 550.0,
            customers: 8,
            users: 99,
            customer_skew: 0.0,
            dirt_rate: 0.0,
            exact_duplicate_rate: 0.0,
            conflicting_resend_rate: 0.0,
            late_rate: 0.0,
            days_late_share: 0.0,
        }
    }
}

impl GenerateOptions {
    /// Checks the ranges; the message names the offending option.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.events_per_hour.is_finite() && self.events_per_hour > 0.0) {
            return Err(format!(
                "events_per_hour must be a positive number, got {}",
                self.events_per_hour
            ));
        }
        if !(1..=9999).contains(&self.start.year()) {
            return Err(format!(
                "start must be in the years 1 to 9999, got {}",
                self.start
            ));
        }
        if self.customers == 0 {
            return Err("customers must be at least 1".into());
        }
        if self.users == 0 {
            return Err("users must be at least 1".into());
        }
        if !(self.customer_skew.is_finite() && (0.0..=10.0).contains(&self.customer_skew)) {
            return Err(format!(
                "customer_skew must be between 0 and 10, got {}",
                self.customer_skew
            ));
        }
        for (name, rate) in [
            ("dirt_rate", self.dirt_rate),
            ("exact_duplicate_rate", self.exact_duplicate_rate),
            ("conflicting_resend_rate", self.conflicting_resend_rate),
            ("late_rate", self.late_rate),
            ("days_late_share", self.days_late_share),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        let taken = self.dirt_rate + self.exact_duplicate_rate + self.conflicting_resend_rate;
        if taken > 1.0 + 1e-9 {
            return Err(format!(
                "dirt_rate + exact_duplicate_rate + conflicting_resend_rate must be at most 1, got {taken}"
            ));
        }
        Ok(())
    }
}

/// What was written, by the outcome each line is meant to get from the loader.
/// `lines = clean_events + exact_duplicates + conflicting_resends + blank + Σ dirty_by_reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateStats {
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Lines meant to be loaded: first occurrences of accepted event types.
    pub clean_events: u64,
    /// `clean_events` by event type (every key of [`CLEAN_EVENT_TYPES`] is present).
    pub clean_by_type: BTreeMap<&'static str, u64>,
    /// Of `clean_events`, those written out of time order (informational, not in the sum).
    pub late_events: u64,
    /// Lines repeating an earlier clean line byte for byte (duplicates for the loader).
    pub exact_duplicates: u64,
    /// Lines re-sending an earlier event's id and type with other fields (duplicates too).
    pub conflicting_resends: u64,
    /// Empty or whitespace-only lines.
    pub blank: u64,
    /// Lines meant to be rejected, by reject reason code (every key of [`DIRTY_REASONS`] is
    /// present). `EMPTY_VALUE` events of the clean mix count under `unknown_event_type`.
    pub dirty_by_reason: BTreeMap<&'static str, u64>,
}

impl Default for GenerateStats {
    fn default() -> Self {
        Self {
            lines: 0,
            bytes: 0,
            clean_events: 0,
            clean_by_type: CLEAN_EVENT_TYPES.iter().map(|&t| (t, 0)).collect(),
            late_events: 0,
            exact_duplicates: 0,
            conflicting_resends: 0,
            blank: 0,
            dirty_by_reason: DIRTY_REASONS.iter().map(|&r| (r, 0)).collect(),
        }
    }
}

impl GenerateStats {
    /// Lines meant to be rejected (all reasons).
    pub fn rejected(&self) -> u64 {
        self.dirty_by_reason.values().sum()
    }

    /// Lines meant to be duplicates (exact and conflicting).
    pub fn duplicates(&self) -> u64 {
        self.exact_duplicates + self.conflicting_resends
    }
}

/// Writes `options.lines` JSON lines to `out` (unbuffered writes of one line each: give it a
/// `BufWriter`). Memory stays bounded whatever the number of lines. Fails with
/// `InvalidInput` when the options are out of range.
pub fn generate(options: &GenerateOptions, out: &mut dyn Write) -> io::Result<GenerateStats> {
    options
        .validate()
        .map_err(|msg| io::Error::new(io::ErrorKind::InvalidInput, msg))?;
    let mut generator = Generator::new(options);
    while generator.counts.lines < options.lines {
        generator.write_one(out)?;
    }
    out.flush()?;
    Ok(generator.counts.into_stats())
}

/// Counters kept as plain arrays while generating.
#[derive(Debug, Default)]
struct Counts {
    lines: u64,
    bytes: u64,
    clean_by_type: [u64; 3],
    late: u64,
    exact_duplicates: u64,
    conflicting_resends: u64,
    blank: u64,
    dirty: [u64; DIRTY_REASONS.len()],
}

impl Counts {
    fn into_stats(self) -> GenerateStats {
        GenerateStats {
            lines: self.lines,
            bytes: self.bytes,
            clean_events: self.clean_by_type.iter().sum(),
            clean_by_type: CLEAN_EVENT_TYPES
                .iter()
                .copied()
                .zip(self.clean_by_type)
                .collect(),
            late_events: self.late,
            exact_duplicates: self.exact_duplicates,
            conflicting_resends: self.conflicting_resends,
            blank: self.blank,
            dirty_by_reason: DIRTY_REASONS.iter().copied().zip(self.dirty).collect(),
        }
    }
}

/// A follow-up (click or FAQ click) waiting for its time; ordered by time, then creation.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    time_us: i64,
    seq: u64,
    event: EventKey,
}

/// A rendered line held back to be written late; ordered by release time, then creation.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LateLine {
    release_us: i64,
    seq: u64,
    event: EventKey,
    bytes: Vec<u8>,
}

/// [`Event`] with an order, for the heaps (the order of the fields is irrelevant there
/// because `seq` is unique).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct EventKey {
    id: [u8; 16],
    time_us: i64,
    customer: u32,
    user: u32,
    kind: u8,
}

impl From<Event> for EventKey {
    fn from(e: Event) -> Self {
        Self {
            id: *e.id.as_bytes(),
            time_us: e.time_us,
            customer: e.customer,
            user: e.user,
            kind: e.kind,
        }
    }
}

impl From<EventKey> for Event {
    fn from(k: EventKey) -> Self {
        Self {
            id: uuid::Uuid::from_bytes(k.id),
            time_us: k.time_us,
            customer: k.customer,
            user: k.user,
            kind: k.kind,
        }
    }
}

/// `-ln(1 - u)` for `u` in `[0, 1)` (an exponential variate), with basic arithmetic only, so
/// the output does not depend on the platform's `libm`.
fn neg_ln_1m(u: f64) -> f64 {
    let x = 1.0 - u; // in (0, 1], never subnormal
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | (1023 << 52)); // [1, 2)
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    // ln m = 2 atanh(s), |s| <= 0.172: ten terms are exact to double precision.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let (mut term, mut sum) = (s, 0.0);
    for k in 0..10 {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    -(exponent as f64 * std::f64::consts::LN_2 + 2.0 * sum)
}

/// A fixed-size ring of the latest items, reusing its slots.
#[derive(Debug)]
struct Recent<T> {
    items: Vec<T>,
    next: usize,
}

impl<T> Recent<T> {
    fn new() -> Self {
        Self {
            items: Vec::with_capacity(RECENT),
            next: 0,
        }
    }

    /// The slot to overwrite: a new one while the ring fills up.
    fn slot(&mut self, fresh: impl FnOnce() -> T) -> &mut T {
        if self.items.len() < RECENT {
            self.items.push(fresh());
            self.items.last_mut().expect("just pushed")
        } else {
            let i = self.next;
            self.next = (self.next + 1) % RECENT;
            &mut self.items[i]
        }
    }

    fn pick(&self, rng: &mut ChaCha8Rng) -> Option<&T> {
        if self.items.is_empty() {
            None
        } else {
            Some(&self.items[rng.gen_range(0..self.items.len())])
        }
    }
}

/// One item of the clean, time-ordered stream.
enum StreamItem {
    Event(Event),
    Late(LateLine),
}

/// The running totals of `1 / (i + 1)^skew` over the customers, divided by their sum; `None`
/// for an even spread (drawn with `gen_range`, which keeps the bytes of unskewed files).
fn cumulative_customer_shares(customers: u32, skew: f64) -> Option<Vec<f64>> {
    if skew == 0.0 {
        return None;
    }
    let weights: Vec<f64> = (0..customers)
        .map(|i| (f64::from(i) + 1.0).powf(-skew))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut running = 0.0;
    Some(
        weights
            .iter()
            .map(|weight| {
                running += weight / total;
                running
            })
            .collect(),
    )
}

struct Generator<'a> {
    opts: &'a GenerateOptions,
    rng: ChaCha8Rng,
    pop: Population,
    /// Cumulative shares of the customers' volume when it is skewed (none: even).
    customer_shares: Option<Vec<f64>>,
    times: TimeFormatter,
    /// Mean gap between base events (page loads and EMPTY_VALUE), in microseconds.
    mean_gap_us: f64,
    /// Time of the next base event.
    next_base_us: i64,
    /// Time of the latest item of the clean stream.
    now_us: i64,
    follow_ups: BinaryHeap<Reverse<Pending>>,
    late: BinaryHeap<Reverse<LateLine>>,
    seq: u64,
    recent_lines: Recent<Vec<u8>>,
    recent_events: Recent<Event>,
    /// Scratch buffer for the line being written.
    line: Vec<u8>,
    counts: Counts,
}

impl<'a> Generator<'a> {
    fn new(opts: &'a GenerateOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let salt = rng.gen();
        let start_us = opts.start.and_utc().timestamp_micros();
        let mean_gap_us = 3.6e9 / (opts.events_per_hour * BASE_SHARE);
        Self {
            opts,
            rng,
            pop: Population::new(opts.customers, opts.users, salt),
            customer_shares: cumulative_customer_shares(opts.customers, opts.customer_skew),
            times: TimeFormatter::new(),
            mean_gap_us,
            next_base_us: start_us,
            now_us: start_us,
            follow_ups: BinaryHeap::new(),
            late: BinaryHeap::new(),
            seq: 0,
            recent_lines: Recent::new(),
            recent_events: Recent::new(),
            line: Vec::with_capacity(512),
            counts: Counts::default(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn random_id(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid()
    }

    /// Writes exactly one line.
    fn write_one(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let o = self.opts;
        let dirt = o.dirt_rate;
        let dup = dirt + o.exact_duplicate_rate;
        let resend = dup + o.conflicting_resend_rate;
        if resend > 0.0 {
            let r: f64 = self.rng.gen();
            if r < dirt {
                return self.write_dirty(out);
            }
            if r < dup && !self.recent_lines.items.is_empty() {
                return self.write_exact_duplicate(out);
            }
            if r < resend && !self.recent_events.items.is_empty() {
                return self.write_conflicting_resend(out);
            }
        }
        self.write_clean(out)
    }

    fn emit(&mut self, out: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
        out.write_all(bytes)?;
        self.counts.lines += 1;
        self.counts.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Ends the line in `self.line` (CRLF now and then when dirt is asked for) and writes it.
    fn emit_line(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let line = std::mem::take(&mut self.line);
        let result = self.emit(out, &line);
        self.line = line;
        result
    }

    fn terminate(&mut self, allow_crlf: bool) {
        if allow_crlf
            && self.opts.dirt_rate > 0.0
            && self.rng.gen::<f64>() < self.opts.dirt_rate / 10.0
        {
            self.line.push(b'\r');
        }
        self.line.push(b'\n');
    }

    /// Writes the next line of the clean stream and counts it.
    fn write_clean(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let (event, late) = match self.next_stream_item() {
            StreamItem::Event(event) => {
                render::render(&self.pop, &mut self.times, &event, &mut self.line);
                self.terminate(true);
                (event, false)
            }
            StreamItem::Late(held) => {
                self.line.clear();
                self.line.extend_from_slice(&held.bytes);
                (Event::from(held.event), true)
            }
        };
        self.emit_line(out)?;
        if event.kind == EMPTY_VALUE {
            self.counts.dirty[R_UNKNOWN_EVENT_TYPE] += 1;
            return Ok(());
        }
        self.counts.clean_by_type[usize::from(event.kind)] += 1;
        if late {
            self.counts.late += 1;
        }
        *self.recent_events.slot(|| event) = event;
        if self.opts.exact_duplicate_rate > 0.0 {
            let slot = self.recent_lines.slot(Vec::new);
            slot.clear();
            slot.extend_from_slice(&self.line);
        }
        Ok(())
    }

    /// The next clean event in time order (held-back late lines included).
    fn next_stream_item(&mut self) -> StreamItem {
        loop {
            let follow_up = self.follow_ups.peek().map_or(i64::MAX, |p| p.0.time_us);
            let next = follow_up.min(self.next_base_us);
            if self.late.peek().is_some_and(|l| l.0.release_us <= next) {
                let Reverse(held) = self.late.pop().expect("peeked");
                self.now_us = self.now_us.max(held.release_us);
                return StreamItem::Late(held);
            }
            let event = if follow_up <= self.next_base_us {
                let Reverse(pending) = self.follow_ups.pop().expect("peeked");
                Event::from(pending.event)
            } else {
                self.next_base_event()
            };
            self.now_us = event.time_us;
            if self.opts.late_rate > 0.0 && self.rng.gen::<f64>() < self.opts.late_rate {
                let mut bytes = Vec::with_capacity(self.line.capacity());
                render::render(&self.pop, &mut self.times, &event, &mut bytes);
                bytes.push(b'\n');
                let lateness = if self.opts.days_late_share > 0.0
                    && self.rng.gen::<f64>() < self.opts.days_late_share
                {
                    DAYS_LATENESS_US
                } else {
                    LATENESS_US
                };
                let release_us = event.time_us + self.rng.gen_range(lateness.0..=lateness.1);
                let seq = self.next_seq();
                self.late.push(Reverse(LateLine {
                    release_us,
                    seq,
                    event: event.into(),
                    bytes,
                }));
                continue;
            }
            return StreamItem::Event(event);
        }
    }

    /// A customer index, evenly or by the skewed shares.
    fn draw_customer(&mut self) -> u32 {
        match &self.customer_shares {
            None => self.rng.gen_range(0..self.pop.customers),
            Some(shares) => {
                let u: f64 = self.rng.gen();
                let index = shares.partition_point(|&share| share <= u);
                index.min(shares.len() - 1) as u32
            }
        }
    }

    /// Draws the next page load or EMPTY_VALUE event and schedules its follow-up, if any.
    fn next_base_event(&mut self) -> Event {
        let time_us = self.next_base_us;
        let u: f64 = self.rng.gen();
        self.next_base_us += (neg_ln_1m(u) * self.mean_gap_us) as i64;
        let kind = if self.rng.gen::<f64>() < EMPTY_VALUE_SHARE {
            EMPTY_VALUE
        } else {
            PAGE_LOAD
        };
        let event = Event {
            id: self.random_id(),
            time_us,
            customer: self.draw_customer(),
            user: self.rng.gen_range(0..self.pop.users),
            kind,
        };
        if kind == PAGE_LOAD && self.rng.gen::<f64>() < FOLLOW_UP_PER_PAGE_LOAD {
            let kind = if self.rng.gen::<f64>() < CLICK_SHARE_OF_FOLLOW_UPS {
                CLICK
            } else {
                FAQ
            };
            let delay_s = self
                .rng
                .gen_range(FOLLOW_UP_DELAY_S.0..=FOLLOW_UP_DELAY_S.1);
            let follow_up = Event {
                time_us: time_us + delay_s * 1_000_000,
                kind,
                ..event
            };
            let seq = self.next_seq();
            self.follow_ups.push(Reverse(Pending {
                time_us: follow_up.time_us,
                seq,
                event: follow_up.into(),
            }));
        }
        event
    }

    fn write_exact_duplicate(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let original = self
            .recent_lines
            .pick(&mut self.rng)
            .expect("caller checked")
            .clone();
        self.emit(out, &original)?;
        self.counts.exact_duplicates += 1;
        Ok(())
    }

    fn write_conflicting_resend(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut event = *self
            .recent_events
            .pick(&mut self.rng)
            .expect("caller checked");
        let users = self.pop.users;
        // 0: other fired_at, 1: other user, 2: both.
        let variant = if users > 1 {
            self.rng.gen_range(0..3)
        } else {
            0
        };
        if variant != 1 {
            let shift_s = self.rng.gen_range(1..=RESEND_SHIFT_S);
            let shift_s = if self.rng.gen() { shift_s } else { -shift_s };
            event.time_us += shift_s * 1_000_000;
        }
        if variant != 0 {
            let step = self.rng.gen_range(1..u64::from(users));
            event.user = ((u64::from(event.user) + step) % u64::from(users)) as u32;
        }
        render::render(&self.pop, &mut self.times, &event, &mut self.line);
        self.terminate(false);
        self.emit_line(out)?;
        self.counts.conflicting_resends += 1;
        Ok(())
    }
}
