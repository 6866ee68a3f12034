//! Classifies one input line: blank, a clean event, or a reject with its reason (SPEC §3).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::fired_at::{parse_fired_at, FiredAtError, SourceTimeZone, SHOWN_CHARS};
use super::lines::{find_byte, RawLine};

/// Why a line was rejected. The order of the variants is the order of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    LineTooLong,
    InvalidUtf8,
    InvalidJson,
    MissingEventId,
    InvalidEventId,
    MissingCustomerId,
    InvalidCustomerId,
    MissingUserId,
    InvalidUserId,
    MissingFiredAt,
    InvalidFiredAt,
    MissingEventType,
    UnknownEventType,
}

impl RejectReason {
    pub const ALL: [RejectReason; 13] = [
        RejectReason::LineTooLong,
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::MissingEventId,
        RejectReason::InvalidEventId,
        RejectReason::MissingCustomerId,
        RejectReason::InvalidCustomerId,
        RejectReason::MissingUserId,
        RejectReason::InvalidUserId,
        RejectReason::MissingFiredAt,
        RejectReason::InvalidFiredAt,
        RejectReason::MissingEventType,
        RejectReason::UnknownEventType,
    ];

    /// The stable code stored in the rejects table and printed in summaries.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::MissingEventId => "missing_event_id",
            RejectReason::InvalidEventId => "invalid_event_id",
            RejectReason::MissingCustomerId => "missing_customer_id",
            RejectReason::InvalidCustomerId => "invalid_customer_id",
            RejectReason::MissingUserId => "missing_user_id",
            RejectReason::InvalidUserId => "invalid_user_id",
            RejectReason::MissingFiredAt => "missing_fired_at",
            RejectReason::InvalidFiredAt => "invalid_fired_at",
            RejectReason::MissingEventType => "missing_event_type",
            RejectReason::UnknownEventType => "unknown_event_type",
        }
    }
}

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

/// The default accepted event types.
pub const DEFAULT_EVENT_TYPES: [&str; 3] =
    ["ReferralPageLoad", "ReferralRecommendClick", "FaqClick"];

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

/// The five fields SPEC §3 knows; everything else is `Other`.
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
    /// Applies the per-field checks in SPEC order; `text` is only read again to quote a value.
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
fn parse_id_str(s: &str) -> Option<i64> {
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

/// Deserializes the top-level object, rejecting duplicate known fields.
struct LineSeed<'c> {
    cleaner: &'c Cleaner,
}

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = Fields<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Fields<'de>, D::Error> {
        // `deserialize_any`, not `deserialize_map`: serde's own "invalid type" error would quote
        // a top-level string, which may be personal data.
        deserializer.deserialize_any(self)
    }
}

fn not_an_object<E: de::Error>(found: &str) -> E {
    E::custom(format_args!("expected a JSON object, found {found}"))
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::EventId => &mut fields.event_id,
                Key::CustomerId => &mut fields.customer_id,
                Key::UserId => &mut fields.user_id,
                Key::FiredAt => &mut fields.fired_at,
                Key::EventType => &mut fields.event_type,
                Key::Ip | Key::Email if self.cleaner.capture_personal_data => {
                    // Personal fields are optional and not checked: a string is kept (first
                    // occurrence) for its keyed hash, anything else is ignored.
                    let value = map.next_value::<PersonalValue<'de>>()?.0;
                    let slot = if key == Key::Ip {
                        &mut fields.ip
                    } else {
                        &mut fields.email
                    };
                    if slot.is_none() {
                        *slot = value;
                    }
                    continue;
                }
                Key::Ip | Key::Email | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format_args!(
                    "duplicate field {}",
                    key.name()
                )));
            }
            *slot = Some(map.next_value_seed(FieldSeed {
                key,
                cleaner: self.cleaner,
            })?);
        }
        Ok(fields)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Fields<'de>, E> {
        Err(not_an_object("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Fields<'de>, E> {
        Err(not_an_object("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Fields<'de>, E> {
        Err(not_an_object("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Fields<'de>, E> {
        Err(not_an_object("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Fields<'de>, E> {
        Err(not_an_object("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Fields<'de>, E> {
        Err(not_an_object("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Fields<'de>, A::Error> {
        Err(not_an_object("an array"))
    }
}

/// An optional personal field: its string, or `None` for any other JSON value.
struct PersonalValue<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for PersonalValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PersonalVisitor;
        impl<'de> Visitor<'de> for PersonalVisitor {
            type Value = PersonalValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(PersonalValue(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(PersonalValue(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(PersonalValue(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(PersonalValue(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(PersonalValue(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(PersonalValue(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(PersonalValue(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PersonalValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(PersonalValue(None))
            }
        }
        deserializer.deserialize_any(PersonalVisitor)
    }
}

/// Deserializes the value of one known field into a [`Value`] without allocating.
struct FieldSeed<'c> {
    key: Key,
    cleaner: &'c Cleaner,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Value<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Value<'de>, E> {
        match self.key {
            Key::EventId => Ok(Value::EventId(Cow::Borrowed(s))),
            _ => self.visit_str(s),
        }
    }

    /// A string that had escapes (e.g. `12\/31\/2021`): only an escaped `event_id` is copied.
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value<'de>, E> {
        Ok(match self.key {
            Key::EventId => Value::EventId(Cow::Owned(s.to_owned())),
            Key::CustomerId | Key::UserId => parse_id_str(s).map_or(Value::Invalid, Value::Id),
            Key::FiredAt => Value::FiredAt(parse_fired_at(s, self.cleaner.zone)),
            Key::EventType => self
                .cleaner
                .accepted_event_types
                .iter()
                .position(|accepted| accepted == s)
                .map_or(Value::Invalid, Value::EventType),
            Key::Ip | Key::Email | Key::Other => Value::Invalid,
        })
    }

    /// serde_json calls this for integers without sign, fraction or exponent that fit in u64;
    /// `-0`, fractions, exponents and larger integers arrive as `visit_i64` / `visit_f64`.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(match (self.key, i64::try_from(v)) {
            (Key::CustomerId | Key::UserId, Ok(id)) => Value::Id(id),
            _ => Value::Invalid,
        })
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value<'de>, E> {
        Ok(Value::Invalid)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value<'de>, E> {
        Ok(Value::Invalid)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value<'de>, E> {
        Ok(Value::Invalid)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value<'de>, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Value::Invalid)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value<'de>, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Value::Invalid)
    }
}

/// Byte offset of the first `\u` escape that is a lone UTF-16 surrogate, if any.
///
/// serde_json refuses lone surrogates only in strings it decodes, not in values it skips
/// ([`IgnoredAny`], [`RawValue`]). Skipping unknown fields is much cheaper than decoding them,
/// so this lexical scan applies serde_json's decoding rule to the whole line instead: a `\u`
/// escape in DC00–DFFF is refused, one in D800–DBFF must be followed directly by a `\u`
/// escape in DC00–DFFF. Backslashes outside strings are syntax errors anyway.
fn lone_surrogate(text: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text.get(from..).and_then(|rest| find_byte(rest, b'\\')) {
        let at = from + found;
        if text.get(at + 1) != Some(&b'u') {
            from = at + 2; // `\\`, `\"`, `\/`, …: skip the escaped character too
            continue;
        }
        from = at + 6;
        match hex4(text, at + 2) {
            Some(0xDC00..=0xDFFF) => return Some(at),
            Some(0xD800..=0xDBFF) => {
                let low = match text.get(at + 6..at + 8) {
                    Some(b"\\u") => hex4(text, at + 8),
                    _ => None,
                };
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Some(at);
                }
                from = at + 12;
            }
            // A malformed escape is left to the parser.
            _ => {}
        }
    }
    None
}

/// The four hex digits at `at`, if there are four.
fn hex4(text: &[u8], at: usize) -> Option<u32> {
    let digits = text.get(at..at + 4)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &c| Some(acc * 16 + (c as char).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::lines::LineReader;
    use proptest::prelude::*;

    /// A real line (first line of the challenge file), field by field: (name, raw JSON value).
    const REAL: [(&str, &str); 7] = [
        ("event_id", r#""cc8dac61-f9d0-4bcb-a9aa-602456ee20d4""#),
        ("customer_id", "344"),
        ("fired_at", r#""12\/31\/2021, 23:54:21""#),
        ("user_id", "165"),
        ("event_type", r#""ReferralPageLoad""#),
        ("ip", r#""192.168.176.194""#),
        ("email", r#""russellsanchez@example.org""#),
    ];

    /// 2021-12-31T23:54:21Z.
    const REAL_FIRED_AT: i64 = 1_640_994_861_000_000;

    /// A field replaced by `Some(raw JSON)` or removed (`None`).
    type Change<'a> = (&'a str, Option<&'a str>);

    /// The real line with some fields replaced (`Some(raw)`) or removed (`None`).
    fn line_with(changes: &[Change]) -> String {
        let mut parts = Vec::new();
        for (name, raw) in REAL {
            match changes.iter().find(|(changed, _)| *changed == name) {
                None => parts.push(format!("\"{name}\":{raw}")),
                Some((_, Some(new))) => parts.push(format!("\"{name}\":{new}")),
                Some((_, None)) => {}
            }
        }
        format!("{{{}}}", parts.join(","))
    }

    fn raw(bytes: &[u8]) -> RawLine<'_> {
        RawLine {
            number: 1,
            bytes,
            length: bytes.len() as u64,
            too_long: false,
            has_newline: true,
        }
    }

    fn classify(line: &str) -> LineOutcome<'_> {
        Cleaner::default().classify(&raw(line.as_bytes()))
    }

    fn event(line: &str) -> CleanEvent<'_> {
        match classify(line) {
            LineOutcome::Event(event) => event,
            other => panic!("{line}: expected an event, got {other:?}"),
        }
    }

    /// The reject of a line, checking that the detail leaks neither personal data nor the line.
    fn reject_of(bytes: &[u8]) -> (RejectReason, String) {
        match Cleaner::default().classify(&raw(bytes)) {
            LineOutcome::Rejected { reason, detail } => {
                assert!(
                    !detail.contains("example.org"),
                    "detail leaks the email: {detail}"
                );
                assert!(!detail.contains("192.168"), "detail leaks the ip: {detail}");
                assert!(detail.chars().count() < 200, "detail too long: {detail}");
                (reason, detail)
            }
            other => panic!(
                "{}: expected a reject, got {other:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }

    fn reason(line: &str) -> RejectReason {
        reject_of(line.as_bytes()).0
    }

    fn detail(line: &str) -> String {
        reject_of(line.as_bytes()).1
    }

    // ---- accepted lines ----

    #[test]
    fn real_line_is_an_event_borrowing_its_id() {
        let line = line_with(&[]);
        let event = event(&line);
        assert_eq!(
            event,
            CleanEvent {
                event_id: Cow::Borrowed("cc8dac61-f9d0-4bcb-a9aa-602456ee20d4"),
                event_type: 0,
                customer_id: 344,
                user_id: 165,
                fired_at_micros: REAL_FIRED_AT,
                ip: None,
                email: None,
            }
        );
        assert!(matches!(event.event_id, Cow::Borrowed(_)));
    }

    #[test]
    fn real_sample_lines() {
        let sample = concat!(
            r#"{"event_id":"0a804e0d-0c03-4f96-8da5-c19826ab5a62","customer_id":176,"fired_at":"01\/01\/2022, 00:00:06","user_id":6213,"event_type":"ReferralPageLoad","ip":"172.27.25.178","email":"amy89@example.org"}"#,
            "\n",
            r#"{"event_id":"373702f1-617b-4db3-a375-72302b14a264","customer_id":32,"fired_at":"01\/01\/2022, 00:00:13","user_id":3980,"event_type":"EMPTY_VALUE","ip":"172.26.117.132","email":"marysmith@example.net"}"#,
            "\n",
            r#"{"event_id":"0a804e0d-0c03-4f96-8da5-c19826ab5a62","fired_at":"01\/01\/2022, 00:00:06","user_id":6213,"event_type":"ReferralPageLoad","ip":"172.27.25.178","email":"amy89@example.org"}"#,
            "\n",
        );
        let cleaner = Cleaner::default();
        let mut reader = LineReader::new(sample.as_bytes(), 1 << 20);
        let mut outcomes = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            outcomes.push(match cleaner.classify(&line) {
                LineOutcome::Event(e) => format!(
                    "event {} {} {}",
                    e.customer_id, e.user_id, e.fired_at_micros
                ),
                LineOutcome::Rejected { reason, detail } => format!("{}: {detail}", reason.code()),
                LineOutcome::Blank => "blank".into(),
            });
        }
        assert_eq!(
            outcomes,
            [
                "event 176 6213 1640995206000000",
                r#"unknown_event_type: event_type "EMPTY_VALUE" is not an accepted event type"#,
                "missing_customer_id: customer_id is missing",
            ]
        );
    }

    #[test]
    fn every_accepted_type_has_its_index() {
        for (index, name) in DEFAULT_EVENT_TYPES.iter().enumerate() {
            let line = line_with(&[("event_type", Some(&format!("\"{name}\"")))]);
            assert_eq!(event(&line).event_type, index);
        }
    }

    #[test]
    fn operators_can_extend_the_accepted_types() {
        let mut types: Vec<String> = DEFAULT_EVENT_TYPES.iter().map(|t| t.to_string()).collect();
        types.push("SignUp".into());
        let cleaner = Cleaner::new(types, SourceTimeZone::Utc);
        let line = line_with(&[("event_type", Some(r#""SignUp""#))]);
        match cleaner.classify(&raw(line.as_bytes())) {
            LineOutcome::Event(e) => {
                assert_eq!(cleaner.accepted_event_types()[e.event_type], "SignUp")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ids_as_strings_are_accepted() {
        let line = line_with(&[
            ("customer_id", Some(r#""12""#)),
            ("user_id", Some(r#""012""#)),
        ]);
        let event = event(&line);
        assert_eq!((event.customer_id, event.user_id), (12, 12));
    }

    #[test]
    fn ids_at_the_edges_of_the_range_are_accepted() {
        for (raw_id, value) in [
            ("0", 0),
            (r#""0""#, 0),
            ("9223372036854775807", i64::MAX),
            (r#""9223372036854775807""#, i64::MAX),
            (r#""0000000000000000001""#, 1),
            (r#""\u0031\u0032""#, 12),
        ] {
            let line = line_with(&[("customer_id", Some(raw_id)), ("user_id", Some(raw_id))]);
            let event = event(&line);
            assert_eq!(
                (event.customer_id, event.user_id),
                (value, value),
                "{raw_id}"
            );
        }
    }

    #[test]
    fn rfc3339_fired_at_variants_are_accepted() {
        for (raw_time, micros) in [
            (r#""2021-12-31T23:54:21Z""#, REAL_FIRED_AT),
            (r#""2021-12-31T23:54:21z""#, REAL_FIRED_AT),
            (r#""2021-12-31t23:54:21Z""#, REAL_FIRED_AT),
            (r#""2022-01-01T01:54:21+02:00""#, REAL_FIRED_AT),
            (r#""2021-12-31T20:24:21-03:30""#, REAL_FIRED_AT),
            (r#""2021-12-31T23:54:21.5Z""#, REAL_FIRED_AT + 500_000),
            (r#""2021-12-31T23:54:21.9999999Z""#, REAL_FIRED_AT + 999_999),
            (r#""2021-12-31T23:54:21.000001Z""#, REAL_FIRED_AT + 1),
        ] {
            let line = line_with(&[("fired_at", Some(raw_time))]);
            assert_eq!(event(&line).fired_at_micros, micros, "{raw_time}");
        }
    }

    #[test]
    fn slash_fired_at_with_and_without_escapes() {
        for raw_time in [r#""12\/31\/2021, 23:54:21""#, r#""12/31/2021, 23:54:21""#] {
            let line = line_with(&[("fired_at", Some(raw_time))]);
            assert_eq!(event(&line).fired_at_micros, REAL_FIRED_AT);
        }
    }

    #[test]
    fn leap_day_is_accepted_in_leap_years_only() {
        let leap = line_with(&[("fired_at", Some(r#""02\/29\/2024, 12:00:00""#))]);
        assert_eq!(event(&leap).fired_at_micros, 1_709_208_000_000_000);
        let not_leap = line_with(&[("fired_at", Some(r#""02\/29\/2023, 12:00:00""#))]);
        assert_eq!(reason(&not_leap), RejectReason::InvalidFiredAt);
    }

    #[test]
    fn source_time_zone_applies_to_naive_times() {
        let berlin = Cleaner::new(
            DEFAULT_EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
            SourceTimeZone::Named(chrono_tz::Europe::Berlin),
        );
        let line = line_with(&[]);
        match berlin.classify(&raw(line.as_bytes())) {
            LineOutcome::Event(e) => assert_eq!(e.fired_at_micros, REAL_FIRED_AT - 3_600_000_000),
            other => panic!("{other:?}"),
        }
        let gap = line_with(&[("fired_at", Some(r#""03\/27\/2022, 02:30:00""#))]);
        assert!(matches!(
            berlin.classify(&raw(gap.as_bytes())),
            LineOutcome::Rejected {
                reason: RejectReason::InvalidFiredAt,
                ..
            }
        ));
    }

    #[test]
    fn escaped_key_names_are_recognised() {
        let line = line_with(&[]).replace(r#""event_id""#, r#""event\u005fid""#);
        assert_eq!(
            event(&line).event_id,
            "cc8dac61-f9d0-4bcb-a9aa-602456ee20d4"
        );
        let twice = format!(r#"{{"event\u005fid":"x",{}"#, &line_with(&[])[1..]);
        assert_eq!(reason(&twice), RejectReason::InvalidJson);
    }

    #[test]
    fn escaped_event_id_is_unescaped_and_owned() {
        let line = line_with(&[("event_id", Some(r#""a\/b\u00e9""#))]);
        let event = event(&line);
        assert_eq!(event.event_id, "a/bé");
        assert!(matches!(event.event_id, Cow::Owned(_)));
    }

    #[test]
    fn key_order_does_not_matter() {
        let line = r#"{"email":"x@example.org","event_type":"FaqClick","user_id":"7","fired_at":"2022-01-01T00:00:00Z","customer_id":3,"event_id":"e"}"#;
        let event = event(line);
        assert_eq!(
            (event.event_type, event.customer_id, event.user_id),
            (2, 3, 7)
        );
    }

    #[test]
    fn unknown_fields_are_ignored_but_must_be_valid_json() {
        let extra = format!(
            r#"{},"nested":{{"a":[1,2.5,-0,1e300,true,null,{{"b":"\ud83d\ude00"}}]}},"ip":"x","ip":null}}"#,
            &line_with(&[])[..line_with(&[]).len() - 1]
        );
        assert_eq!(event(&extra).customer_id, 344);
        let without_personal_data = line_with(&[("ip", None), ("email", None)]);
        assert_eq!(event(&without_personal_data).user_id, 165);
    }

    #[test]
    fn values_are_not_trimmed() {
        let line = line_with(&[("event_id", Some(r#"" id with spaces ""#))]);
        assert_eq!(event(&line).event_id, " id with spaces ");
    }

    #[test]
    fn json_whitespace_around_the_object_is_allowed() {
        let line = format!(" \t{} \r", line_with(&[]));
        assert_eq!(event(&line).customer_id, 344);
    }

    #[test]
    fn event_id_of_255_bytes_is_accepted() {
        let id = format!("\"{}\"", "é".repeat(127) + "x");
        let line = line_with(&[("event_id", Some(&id))]);
        assert_eq!(event(&line).event_id.len(), 255);
    }

    // ---- blank lines ----

    #[test]
    fn blank_lines() {
        for line in ["", " ", "\t", "\r", "\x0C", "\x0B", " \t\r\x0C\x0B "] {
            assert_eq!(classify(line), LineOutcome::Blank, "{line:?}");
        }
    }

    #[test]
    fn other_whitespace_is_not_blank() {
        assert_eq!(reason("\u{a0}"), RejectReason::InvalidJson);
        assert_eq!(reason("\u{2028}"), RejectReason::InvalidJson);
        assert_eq!(reject_of(b" \xff").0, RejectReason::InvalidUtf8);
        assert_eq!(reason("\0"), RejectReason::InvalidJson);
    }

    // ---- one test per row of the reject table ----

    #[test]
    fn line_too_long() {
        let line = RawLine {
            number: 3,
            bytes: b"{\"event",
            length: 5000,
            too_long: true,
            has_newline: true,
        };
        assert_eq!(
            Cleaner::default().classify(&line),
            LineOutcome::Rejected {
                reason: RejectReason::LineTooLong,
                detail: "line is 5000 bytes, over the 7-byte limit".into()
            }
        );
    }

    #[test]
    fn invalid_utf8() {
        let mut bytes = line_with(&[]).into_bytes();
        bytes[14] = 0xff;
        assert_eq!(
            reject_of(&bytes),
            (
                RejectReason::InvalidUtf8,
                "invalid utf-8 at byte offset 14".into()
            )
        );
        assert_eq!(
            reject_of(b"\xed\xa0\x80").0,
            RejectReason::InvalidUtf8,
            "encoded surrogate"
        );
        assert_eq!(
            reject_of(b"\xc0\xaf").0,
            RejectReason::InvalidUtf8,
            "overlong"
        );
    }

    #[test]
    fn invalid_json_syntax() {
        let valid = line_with(&[]);
        let body = &valid[..valid.len() - 1];
        for line in [
            "{".to_string(),
            "{]".to_string(),
            "x".to_string(),
            body.to_string(),
            format!("{valid} x"),
            format!("{valid}{valid}"),
            format!("{valid},"),
            format!(r#"{body},"score":NaN}}"#),
            format!(r#"{body},"score":Infinity}}"#),
            format!(r#"{body},"score":01}}"#),
            format!(r#"{body},"note":'single'}}"#),
            format!(r#"{body},}}"#),
            format!("{body},\"raw\":\"tab\tinside\"}}"),
            format!(r#"{body},"bad":"\x"}}"#),
            format!("\u{feff}{valid}"),
            format!("{valid}\x0C"),
        ] {
            assert_eq!(reason(&line), RejectReason::InvalidJson, "{line}");
        }
    }

    #[test]
    fn invalid_json_lone_surrogates_anywhere() {
        let valid = line_with(&[]);
        let body = &valid[..valid.len() - 1];
        for line in [
            line_with(&[("event_id", Some(r#""\ud800""#))]),
            line_with(&[("event_type", Some(r#""\udc00""#))]),
            line_with(&[("customer_id", Some(r#""\ud800""#))]),
            line_with(&[("email", Some(r#""\ud83d@example.org""#))]),
            format!(r#"{body},"deep":[{{"x":["\udfff"]}}]}}"#),
            format!(r#"{body},"\ud800":1}}"#),
            format!(r#"{body},"pair":"\ude00\ud83d"}}"#),
        ] {
            assert_eq!(reason(&line), RejectReason::InvalidJson, "{line}");
        }
    }

    #[test]
    fn invalid_json_not_an_object() {
        for (line, found) in [
            ("[1,2]", "an array"),
            ("12", "a number"),
            ("-1.5", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
            (r#""russellsanchez@example.org""#, "a string"),
        ] {
            let detail = detail(line);
            assert!(
                detail.starts_with(&format!("expected a JSON object, found {found}")),
                "{detail}"
            );
        }
    }

    #[test]
    fn invalid_json_known_field_twice() {
        for name in [
            "event_id",
            "customer_id",
            "user_id",
            "fired_at",
            "event_type",
        ] {
            let valid = line_with(&[]);
            let line = format!(r#"{},"{name}":null}}"#, &valid[..valid.len() - 1]);
            let (reason, detail) = reject_of(line.as_bytes());
            assert_eq!(reason, RejectReason::InvalidJson);
            assert!(
                detail.starts_with(&format!("duplicate field {name}")),
                "{detail}"
            );
        }
    }

    #[test]
    fn invalid_json_detail_is_serdes_message() {
        assert_eq!(
            detail("{"),
            "EOF while parsing an object at line 1 column 1"
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let valid = line_with(&[]);
        let line = format!(r#"{},"deep":{deep}}}"#, &valid[..valid.len() - 1]);
        assert_eq!(
            event(&line).customer_id,
            344,
            "skipped unknown fields have no depth limit"
        );
        let line = line_with(&[("customer_id", Some(&deep))]);
        assert_eq!(
            reject_of(line.as_bytes()).0,
            RejectReason::InvalidCustomerId
        );
        let unbalanced = line_with(&[("user_id", Some(&"[".repeat(100_000)))]);
        assert_eq!(
            reject_of(unbalanced.as_bytes()).0,
            RejectReason::InvalidJson
        );
    }

    #[test]
    fn missing_event_id() {
        assert_eq!(
            reject_of(line_with(&[("event_id", None)]).as_bytes()),
            (RejectReason::MissingEventId, "event_id is missing".into())
        );
        assert_eq!(
            reject_of(line_with(&[("event_id", Some("null"))]).as_bytes()),
            (RejectReason::MissingEventId, "event_id is null".into())
        );
    }

    #[test]
    fn invalid_event_id() {
        let long = format!("\"{}\"", "a".repeat(256));
        let long_multibyte = format!("\"{}\"", "é".repeat(128));
        for (raw_id, expected) in [
            ("5", "event_id 5 is not a string"),
            ("true", "event_id true is not a string"),
            (r#"["a"]"#, r#"event_id ["a"] is not a string"#),
            (r#"{"a":1}"#, r#"event_id {"a":1} is not a string"#),
            (r#""""#, r#"event_id "" is empty"#),
            (r#""   ""#, r#"event_id "   " is only whitespace"#),
            (r#""\t\n""#, r#"event_id "\t\n" is only whitespace"#),
            ("\"\u{3000}\"", "event_id \"\u{3000}\" is only whitespace"),
            (
                &long,
                &format!("event_id \"{}… is longer than 255 bytes", "a".repeat(63)),
            ),
            (
                &long_multibyte,
                &format!("event_id \"{}… is longer than 255 bytes", "é".repeat(63)),
            ),
            (
                r#""a\u0000b""#,
                r#"event_id "a\u0000b" contains a control character"#,
            ),
            (
                r#""a\tb""#,
                r#"event_id "a\tb" contains a control character"#,
            ),
            (
                "\"a\u{7f}b\"",
                r#"event_id "a\u{7f}b" contains a control character"#,
            ),
            (
                "\"a\u{9f}b\"",
                r#"event_id "a\u{9f}b" contains a control character"#,
            ),
        ] {
            let line = line_with(&[("event_id", Some(raw_id))]);
            assert_eq!(
                reject_of(line.as_bytes()),
                (RejectReason::InvalidEventId, expected.to_string()),
                "{raw_id}"
            );
        }
    }

    /// Raw JSON values that are not acceptable ids.
    const BAD_IDS: [&str; 20] = [
        "-3",
        "-0",
        "12.5",
        "12.0",
        "1e3",
        "1E3",
        "9223372036854775808",
        "18446744073709551616",
        "123456789012345678901234567890",
        r#"" 12""#,
        r#""12 ""#,
        r#""""#,
        r#""abc""#,
        r#""-1""#,
        r#""+1""#,
        r#""9223372036854775808""#,
        r#""00000000000000000001""#,
        "true",
        "[12]",
        r#"{"id":12}"#,
    ];

    #[test]
    fn missing_customer_id() {
        assert_eq!(
            reason(&line_with(&[("customer_id", None)])),
            RejectReason::MissingCustomerId
        );
        assert_eq!(
            detail(&line_with(&[("customer_id", Some("null"))])),
            "customer_id is null"
        );
    }

    #[test]
    fn invalid_customer_id() {
        for raw_id in BAD_IDS.iter().copied().chain(["\"١٢\"", r#""1.5""#]) {
            let (reason, detail) =
                reject_of(line_with(&[("customer_id", Some(raw_id))]).as_bytes());
            assert_eq!(reason, RejectReason::InvalidCustomerId, "{raw_id}");
            assert_eq!(
                detail,
                format!("customer_id {raw_id} is not an unsigned 63-bit integer")
            );
        }
    }

    #[test]
    fn missing_user_id() {
        assert_eq!(
            reason(&line_with(&[("user_id", None)])),
            RejectReason::MissingUserId
        );
        assert_eq!(
            detail(&line_with(&[("user_id", Some("null"))])),
            "user_id is null"
        );
    }

    #[test]
    fn invalid_user_id() {
        for raw_id in BAD_IDS {
            let (reason, detail) = reject_of(line_with(&[("user_id", Some(raw_id))]).as_bytes());
            assert_eq!(reason, RejectReason::InvalidUserId, "{raw_id}");
            assert_eq!(
                detail,
                format!("user_id {raw_id} is not an unsigned 63-bit integer")
            );
        }
    }

    #[test]
    fn missing_fired_at() {
        assert_eq!(
            reason(&line_with(&[("fired_at", None)])),
            RejectReason::MissingFiredAt
        );
        assert_eq!(
            detail(&line_with(&[("fired_at", Some("null"))])),
            "fired_at is null"
        );
    }

    #[test]
    fn invalid_fired_at() {
        for (raw_time, expected) in [
            ("1640994861", "fired_at 1640994861 is not a string"),
            (
                r#""13\/45\/2022, 25:61:00""#,
                r#"fired_at "13/45/2022, 25:61:00" is not a real date/time"#,
            ),
            (
                r#""2022-01-01 00:00:06""#,
                r#"fired_at "2022-01-01 00:00:06" is neither MM/DD/YYYY, HH:MM:SS nor RFC 3339"#,
            ),
            (
                r#""12\/31\/2021, 23:54:21 ""#,
                r#"fired_at "12/31/2021, 23:54:21 " is neither MM/DD/YYYY, HH:MM:SS nor RFC 3339"#,
            ),
            (
                r#""01\/01\/2022, 24:00:00""#,
                r#"fired_at "01/01/2022, 24:00:00" is not a real date/time"#,
            ),
            (
                r#""2016-12-31T23:59:60Z""#,
                r#"fired_at "2016-12-31T23:59:60Z" is not a real date/time"#,
            ),
            (
                r#""""#,
                r#"fired_at "" is neither MM/DD/YYYY, HH:MM:SS nor RFC 3339"#,
            ),
        ] {
            let line = line_with(&[("fired_at", Some(raw_time))]);
            assert_eq!(
                reject_of(line.as_bytes()),
                (RejectReason::InvalidFiredAt, expected.to_string())
            );
        }
    }

    #[test]
    fn missing_event_type() {
        assert_eq!(
            reason(&line_with(&[("event_type", None)])),
            RejectReason::MissingEventType
        );
        assert_eq!(
            detail(&line_with(&[("event_type", Some("null"))])),
            "event_type is null"
        );
    }

    #[test]
    fn unknown_event_type() {
        for raw_type in [
            r#""EMPTY_VALUE""#,
            r#""referralpageload""#,
            r#""ReferralPageLoad ""#,
            r#"" ReferralPageLoad""#,
            r#""""#,
            "5",
            "false",
            r#"["ReferralPageLoad"]"#,
        ] {
            let line = line_with(&[("event_type", Some(raw_type))]);
            assert_eq!(
                reject_of(line.as_bytes()),
                (
                    RejectReason::UnknownEventType,
                    format!("event_type {raw_type} is not an accepted event type")
                )
            );
        }
    }

    // ---- the first failing check wins ----

    #[test]
    fn length_is_checked_before_blank_and_encoding() {
        let cleaner = Cleaner::default();
        for bytes in [&b"    "[..], b"\xff\xff"] {
            let line = RawLine {
                number: 1,
                bytes,
                length: 10,
                too_long: true,
                has_newline: false,
            };
            assert!(matches!(
                cleaner.classify(&line),
                LineOutcome::Rejected {
                    reason: RejectReason::LineTooLong,
                    ..
                }
            ));
        }
    }

    #[test]
    fn encoding_is_checked_before_syntax() {
        assert_eq!(
            reject_of(b"{\"ip\":\"\xff\", oops").0,
            RejectReason::InvalidUtf8
        );
    }

    #[test]
    fn syntax_is_checked_before_fields() {
        let valid = line_with(&[("event_id", None), ("customer_id", Some("-1"))]);
        let body = &valid[..valid.len() - 1];
        assert_eq!(
            reason(&format!(r#"{body},"later":"\ud800"}}"#)),
            RejectReason::InvalidJson
        );
        assert_eq!(
            reason(&format!(r#"{body},"user_id":1}}"#)),
            RejectReason::InvalidJson
        );
        assert_eq!(reason(body), RejectReason::InvalidJson);
    }

    #[test]
    fn fields_are_checked_in_spec_order() {
        let cases: [(&[Change], RejectReason); 9] = [
            (
                &[
                    ("event_id", None),
                    ("customer_id", None),
                    ("event_type", Some("1")),
                ],
                RejectReason::MissingEventId,
            ),
            (
                &[("event_id", Some("1")), ("customer_id", None)],
                RejectReason::InvalidEventId,
            ),
            (
                &[("customer_id", None), ("user_id", Some("-1"))],
                RejectReason::MissingCustomerId,
            ),
            (
                &[("customer_id", Some("-1")), ("user_id", None)],
                RejectReason::InvalidCustomerId,
            ),
            (
                &[("user_id", None), ("fired_at", Some("1"))],
                RejectReason::MissingUserId,
            ),
            (
                &[("user_id", Some("1.5")), ("fired_at", None)],
                RejectReason::InvalidUserId,
            ),
            (
                &[("fired_at", None), ("event_type", Some("1"))],
                RejectReason::MissingFiredAt,
            ),
            (
                &[("fired_at", Some(r#""x""#)), ("event_type", None)],
                RejectReason::InvalidFiredAt,
            ),
            (&[("event_type", None)], RejectReason::MissingEventType),
        ];
        for (changes, expected) in cases {
            assert_eq!(reason(&line_with(changes)), expected, "{changes:?}");
        }
    }

    #[test]
    fn reject_reason_order_matches_the_check_order() {
        let mut sorted = RejectReason::ALL;
        sorted.sort();
        assert_eq!(sorted, RejectReason::ALL);
        let codes: std::collections::HashSet<_> =
            RejectReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), RejectReason::ALL.len());
    }

    // ---- properties ----

    /// Reference for the lone-surrogate rule: any JSON value with every string decoded.
    struct Strict;

    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(StrictVisitor)
        }
    }

    struct StrictVisitor;

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Strict;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            while seq.next_element::<Strict>()?.is_some() {}
            Ok(Strict)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            while map.next_key::<Strict>()?.is_some() {
                map.next_value::<Strict>()?;
            }
            Ok(Strict)
        }
    }

    #[test]
    fn lone_surrogate_scan() {
        assert_eq!(lone_surrogate(br#"{"a":"\ud83d\ude00"}"#), None);
        assert_eq!(
            lone_surrogate(br#"{"a":"\\ud800"}"#),
            None,
            "escaped backslash"
        );
        assert_eq!(lone_surrogate(br#"{"a":"\\\ud800"}"#), Some(8));
        assert_eq!(lone_surrogate(br#"{"a":"\ud800"}"#), Some(6));
        assert_eq!(lone_surrogate(br#"{"a":"\uDC00"}"#), Some(6));
        assert_eq!(lone_surrogate(br#"{"a":"\ud800\u0041"}"#), Some(6));
        assert_eq!(lone_surrogate(br#"{"a":"\ud800\ud800\udc00"}"#), Some(6));
        assert_eq!(lone_surrogate(br#"\ud800\"#), Some(0));
        assert_eq!(lone_surrogate(br#"\ud8"#), None);
        assert_eq!(lone_surrogate(b"\\"), None);
    }

    fn count_outcomes(data: &[u8], max_line_bytes: usize) -> u64 {
        let cleaner = Cleaner::default();
        let mut reader = LineReader::new(data, max_line_bytes);
        let mut lines = 0;
        while let Some(line) = reader.next_line().unwrap() {
            lines += 1;
            assert_eq!(line.number, lines);
            match cleaner.classify(&line) {
                LineOutcome::Blank | LineOutcome::Event(_) | LineOutcome::Rejected { .. } => {}
            }
        }
        assert_eq!(reader.offset(), data.len() as u64);
        lines
    }

    fn expected_lines(data: &[u8]) -> u64 {
        let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
        newlines + u64::from(!data.is_empty() && !data.ends_with(b"\n"))
    }

    proptest! {
        #[test]
        fn every_line_of_arbitrary_bytes_gets_one_outcome(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            max_line_bytes in 0usize..80,
        ) {
            prop_assert_eq!(count_outcomes(&data, max_line_bytes), expected_lines(&data));
        }

        #[test]
        fn every_line_of_json_like_text_gets_one_outcome(
            data in r#"([{}\[\]",:0-9a-z_\\/ \t\r\n.eE+-]|"(event_id|customer_id|user_id|fired_at|event_type)"|\\u[dD][89abAB]00|\xEF\xBB\xBF){0,120}"#,
        ) {
            prop_assert_eq!(count_outcomes(data.as_bytes(), 1 << 20), expected_lines(data.as_bytes()));
        }

        /// Skipping with `IgnoredAny` plus the lexical scan accepts exactly what decoding every
        /// string accepts (numbers stay in f64 range: `deserialize_any` refuses `1e999`).
        #[test]
        fn surrogate_scan_matches_decoding_every_string(
            text in r#"([{}\[\]",:0-9. \\/-]|true|null|\\u[dD][89abAB]0[0f]|\\u[dD][c-fC-F]0[0f]|\\u00[4e]1|\\u[0-9a-fA-F]{0,3}|\\[\\/"nx]){0,40}"#,
        ) {
            let strict = serde_json::from_str::<Strict>(&text).is_ok();
            let skipped = serde_json::from_str::<IgnoredAny>(&text).is_ok()
                && lone_surrogate(text.as_bytes()).is_none();
            prop_assert_eq!(strict, skipped);
        }

        #[test]
        fn surrogate_scan_matches_decoding_in_strings(
            body in r#"([a-z ]|\\u[dD][89abAB]0[0f]|\\u[dD][c-fC-F]0[0f]|\\u00[4e]1|\\[\\/"n]){0,12}"#,
        ) {
            let text = format!(r#"{{"k":["{body}", "{body}"]}}"#);
            let strict = serde_json::from_str::<Strict>(&text).is_ok();
            let skipped = serde_json::from_str::<IgnoredAny>(&text).is_ok()
                && lone_surrogate(text.as_bytes()).is_none();
            prop_assert_eq!(strict, skipped, "{}", text);
        }

        #[test]
        fn mutated_real_lines_never_panic(position in 0usize..220, byte in any::<u8>()) {
            let mut bytes = line_with(&[]).into_bytes();
            let at = position % bytes.len();
            bytes[at] = byte;
            let _ = Cleaner::default().classify(&raw(&bytes));
        }

        #[test]
        fn generated_events_are_loaded(
            event_id in "[!-~]{1,40}",
            customer_id in 0i64..=i64::MAX,
            user_id in 0i64..=i64::MAX,
            ids_as_strings in any::<bool>(),
            type_index in 0usize..3,
            secs in 0i64..4_102_444_800,
        ) {
            let fired_at = chrono::DateTime::from_timestamp(secs, 0).unwrap().format("%m/%d/%Y, %H:%M:%S").to_string();
            let id = |v: i64| if ids_as_strings { format!("\"{v}\"") } else { v.to_string() };
            let line = serde_json::json!({
                "event_id": event_id,
                "fired_at": fired_at,
                "event_type": DEFAULT_EVENT_TYPES[type_index],
            })
            .to_string();
            let line = format!(r#"{{"customer_id":{},"user_id":{},{}"#, id(customer_id), id(user_id), &line[1..]);
            let event = event(&line);
            prop_assert_eq!(event.event_id.as_ref(), event_id.as_str());
            prop_assert_eq!((event.customer_id, event.user_id), (customer_id, user_id));
            prop_assert_eq!(event.event_type, type_index);
            prop_assert_eq!(event.fired_at_micros, secs * 1_000_000);
        }
    }

    #[test]
    fn personal_data_is_captured_only_when_asked() {
        let line = r#"{"event_id":"a","customer_id":1,"fired_at":"01\/01\/2022, 00:00:06","user_id":2,"event_type":"ReferralPageLoad","ip":"10.0.0.1","email":"x\u0040example.org","ip":"10.9.9.9"}"#;
        let raw = RawLine {
            number: 1,
            bytes: line.as_bytes(),
            length: line.len() as u64,
            too_long: false,
            has_newline: true,
        };
        match Cleaner::default().classify(&raw) {
            LineOutcome::Event(event) => assert_eq!((event.ip, event.email), (None, None)),
            other => panic!("{other:?}"),
        }
        match Cleaner::default().capturing_personal_data().classify(&raw) {
            LineOutcome::Event(event) => {
                assert_eq!(
                    event.ip.as_deref(),
                    Some("10.0.0.1"),
                    "the first occurrence"
                );
                assert_eq!(event.email.as_deref(), Some("x@example.org"));
            }
            other => panic!("{other:?}"),
        }
        // A personal field of another type is ignored, not a reject.
        let line = r#"{"event_id":"a","customer_id":1,"fired_at":"01\/01\/2022, 00:00:06","user_id":2,"event_type":"ReferralPageLoad","ip":[1,2],"email":null}"#;
        let raw = RawLine {
            number: 1,
            bytes: line.as_bytes(),
            length: line.len() as u64,
            too_long: false,
            has_newline: true,
        };
        match Cleaner::default().capturing_personal_data().classify(&raw) {
            LineOutcome::Event(event) => assert_eq!((event.ip, event.email), (None, None)),
            other => panic!("{other:?}"),
        }
    }
}
