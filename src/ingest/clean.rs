//! Classifies one input line: blank, a clean event, or a reject with its reason (the rules of the README's "Every line is accounted for").

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::fired_at::{FiredAtError, SourceTimeZone, SHOWN_CHARS};
use super::lines::RawLine;
pub use crate::names::{RejectReason, DEFAULT_EVENT_TYPES};
use json::{lone_surrogate, LineSeed};

/// A valid event, borrowing from the line where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanEvent<'a> {
    pub event_id: Cow<'a, str>,
    /// Index into [`Cleaner::accepted_event_types`].
    pub event_type: usize,
    pub customer_id: i64,
    pub user_id: i64,
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    pub fired_at_micros: i64,
    /// The `ip` and `email` strings (first occurrence), only when the cleaner was asked to
    /// capture personal data (to store keyed hashes of them); never part of validation.
    pub ip: Option<Cow<'a, str>>,
    pub email: Option<Cow<'a, str>>,
}

/// The one outcome of a line (duplicates are decided later, in the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome<'a> {
    Blank,
    Event(CleanEvent<'a>),
    Rejected {
        reason: RejectReason,
        detail: String,
    },
}

/// Line classifier configured with the settings that change what a valid event is.
#[derive(Debug, Clone)]
pub struct Cleaner {
    accepted_event_types: Vec<String>,
    zone: SourceTimeZone,
    capture_personal_data: bool,
}

/// The longest accepted `event_id`, in UTF-8 bytes.
pub const MAX_EVENT_ID_BYTES: usize = 255;

impl Default for Cleaner {
    /// The default event types, naive times in UTC.
    fn default() -> Self {
        Self::new(
            DEFAULT_EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
            SourceTimeZone::Utc,
        )
    }
}

impl Cleaner {
    pub fn new(accepted_event_types: Vec<String>, zone: SourceTimeZone) -> Self {
        Self {
            accepted_event_types,
            zone,
            capture_personal_data: false,
        }
    }

    /// Also hand over the `ip` and `email` strings of valid events (for keyed hashes).
    pub fn capturing_personal_data(mut self) -> Self {
        self.capture_personal_data = true;
        self
    }

    pub fn accepted_event_types(&self) -> &[String] {
        &self.accepted_event_types
    }

    /// The time zone of naive `MM/DD/YYYY, HH:MM:SS` values.
    pub fn zone(&self) -> SourceTimeZone {
        self.zone
    }

    /// Gives the line exactly one outcome.
    pub fn classify<'a>(&self, line: &RawLine<'a>) -> LineOutcome<'a> {
        if line.too_long {
            return rejected(
                RejectReason::LineTooLong,
                format!(
                    "line is {} bytes, over the {}-byte limit",
                    line.length,
                    line.bytes.len()
                ),
            );
        }
        if is_blank(line.bytes) {
            return LineOutcome::Blank;
        }
        let text = match std::str::from_utf8(line.bytes) {
            Ok(text) => text,
            Err(e) => {
                return rejected(
                    RejectReason::InvalidUtf8,
                    format!("invalid utf-8 at byte offset {}", e.valid_up_to()),
                )
            }
        };
        let fields = match self.parse(text) {
            Ok(fields) => fields,
            Err(detail) => return rejected(RejectReason::InvalidJson, detail),
        };
        match fields.into_event(text) {
            Ok(event) => LineOutcome::Event(event),
            Err((reason, detail)) => rejected(reason, detail),
        }
    }

    /// One strict pass over the JSON text that keeps only what the five known fields need.
    fn parse<'a>(&self, text: &'a str) -> Result<Fields<'a>, String> {
        if let Some(at) = lone_surrogate(text.as_bytes()) {
            return Err(format!("lone surrogate escape at byte offset {at}"));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = LineSeed { cleaner: self }
            .deserialize(&mut de)
            .map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(fields)
    }
}

fn rejected<'a>(reason: RejectReason, detail: String) -> LineOutcome<'a> {
    LineOutcome::Rejected { reason, detail }
}

/// Empty, or only ASCII whitespace (space, `\t`, `\r`, `\f`, `\v`).
fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\x0C' | b'\x0B'))
}

/// The five fields the cleaning rules know; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    EventId,
    CustomerId,
    UserId,
    FiredAt,
    EventType,
    Ip,
    Email,
    Other,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::EventId => "event_id",
            Key::CustomerId => "customer_id",
            Key::UserId => "user_id",
            Key::FiredAt => "fired_at",
            Key::EventType => "event_type",
            Key::Ip => "ip",
            Key::Email => "email",
            Key::Other => "other",
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            // serde_json hands over the key after unescaping, so `event\u005fid` is `event_id`.
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "event_id" => Key::EventId,
                    "customer_id" => Key::CustomerId,
                    "user_id" => Key::UserId,
                    "fired_at" => Key::FiredAt,
                    "event_type" => Key::EventType,
                    "ip" => Key::Ip,
                    "email" => Key::Email,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// What one known field held, already checked as far as it can be without the other fields.
#[derive(Debug)]
enum Value<'a> {
    Null,
    EventId(Cow<'a, str>),
    Id(i64),
    FiredAt(Result<i64, FiredAtError>),
    EventType(usize),
    /// The wrong JSON type for the field, or an id / event type that is not acceptable.
    Invalid,
}

/// The known fields of one line; `None` = absent.
#[derive(Debug, Default)]
struct Fields<'a> {
    event_id: Option<Value<'a>>,
    customer_id: Option<Value<'a>>,
    user_id: Option<Value<'a>>,
    fired_at: Option<Value<'a>>,
    event_type: Option<Value<'a>>,
    ip: Option<Cow<'a, str>>,
    email: Option<Cow<'a, str>>,
}

type Reject = (RejectReason, String);

impl<'a> Fields<'a> {
    /// Applies the per-field checks in the documented order; `text` is only read again to quote a value.
    fn into_event(self, text: &'a str) -> Result<CleanEvent<'a>, Reject> {
        let event_id = match self.event_id {
            Some(Value::EventId(id)) => match event_id_problem(&id) {
                None => id,
                Some(problem) => {
                    return Err(invalid(
                        RejectReason::InvalidEventId,
                        text,
                        Key::EventId,
                        problem,
                    ))
                }
            },
            other => {
                return Err(not_present_or_invalid(
                    other,
                    text,
                    Key::EventId,
                    "is not a string",
                ))
            }
        };
        let customer_id = id_value(self.customer_id, text, Key::CustomerId)?;
        let user_id = id_value(self.user_id, text, Key::UserId)?;
        let fired_at_micros = match self.fired_at {
            Some(Value::FiredAt(Ok(micros))) => micros,
            Some(Value::FiredAt(Err(e))) => {
                return Err((RejectReason::InvalidFiredAt, format!("fired_at {e}")))
            }
            other => {
                return Err(not_present_or_invalid(
                    other,
                    text,
                    Key::FiredAt,
                    "is not a string",
                ))
            }
        };
        let event_type = match self.event_type {
            Some(Value::EventType(index)) => index,
            other => {
                return Err(not_present_or_invalid(
                    other,
                    text,
                    Key::EventType,
                    "is not an accepted event type",
                ))
            }
        };
        Ok(CleanEvent {
            event_id,
            event_type,
            customer_id,
            user_id,
            fired_at_micros,
            ip: self.ip,
            email: self.email,
        })
    }
}

fn id_value(value: Option<Value<'_>>, text: &str, key: Key) -> Result<i64, Reject> {
    match value {
        Some(Value::Id(id)) => Ok(id),
        other => Err(not_present_or_invalid(
            other,
            text,
            key,
            "is not an unsigned 63-bit integer",
        )),
    }
}

/// The missing/invalid reasons of each field, in check order.
fn reasons(key: Key) -> (RejectReason, RejectReason) {
    match key {
        Key::EventId => (RejectReason::MissingEventId, RejectReason::InvalidEventId),
        Key::CustomerId => (
            RejectReason::MissingCustomerId,
            RejectReason::InvalidCustomerId,
        ),
        Key::UserId => (RejectReason::MissingUserId, RejectReason::InvalidUserId),
        Key::FiredAt => (RejectReason::MissingFiredAt, RejectReason::InvalidFiredAt),
        Key::EventType | Key::Ip | Key::Email | Key::Other => (
            RejectReason::MissingEventType,
            RejectReason::UnknownEventType,
        ),
    }
}

/// The reject for a field that is absent, null, or (anything else) invalid with `problem`.
fn not_present_or_invalid(value: Option<Value<'_>>, text: &str, key: Key, problem: &str) -> Reject {
    let (missing, invalid_reason) = reasons(key);
    match value {
        None => (missing, format!("{} is missing", key.name())),
        Some(Value::Null) => (missing, format!("{} is null", key.name())),
        Some(_) => invalid(invalid_reason, text, key, problem),
    }
}

/// `<field> <value as written, shortened> <problem>`.
fn invalid(reason: RejectReason, text: &str, key: Key, problem: &str) -> Reject {
    let raw = raw_value(text, key).unwrap_or("?");
    (
        reason,
        format!("{} {} {problem}", key.name(), ShownRaw(raw)),
    )
}

/// Why an `event_id` string is not acceptable, if it is not.
fn event_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id.chars().all(char::is_whitespace) {
        Some("is only whitespace")
    } else if id.len() > MAX_EVENT_ID_BYTES {
        Some("is longer than 255 bytes")
    } else if id.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// A string id: 1–19 ASCII digits (leading zeros allowed) with a value of at most 2^63−1.
pub(super) fn parse_id_str(s: &str) -> Option<i64> {
    let digits = s.as_bytes();
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        // 19 digits stay below u64::MAX, so this cannot overflow.
        value = value * 10 + u64::from(c - b'0');
    }
    i64::try_from(value).ok()
}

/// The raw JSON text of a known field (only called for rejects: a second, cheap pass).
fn raw_value(text: &str, key: Key) -> Option<&str> {
    struct Finder(Key);
    impl<'de> Visitor<'de> for Finder {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<Key>()? {
                if key == self.0 && found.is_none() {
                    found = Some(map.next_value::<&'de RawValue>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Finder(key))
        .ok()
        .flatten()
        .map(RawValue::get)
}

/// Raw JSON text for a message: at most 64 characters, raw control characters escaped.
struct ShownRaw<'a>(&'a str);

impl fmt::Display for ShownRaw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(SHOWN_CHARS) {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

mod json;

#[cfg(test)]
mod tests;
