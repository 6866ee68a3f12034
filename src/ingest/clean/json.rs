//! Reads one line's JSON object into its known fields in a single pass: a known field that
//! appears twice, a value that is not an object, and lone surrogate escapes are caught here.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{parse_id_str, Cleaner, Fields, Key, Value};
use crate::ingest::fired_at::parse_fired_at;
use crate::ingest::lines::find_byte;

/// Deserializes the top-level object, rejecting duplicate known fields.
pub(super) struct LineSeed<'c> {
    pub(super) cleaner: &'c Cleaner,
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
    pub(super) cleaner: &'c Cleaner,
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
pub(super) fn lone_surrogate(text: &[u8]) -> Option<usize> {
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
