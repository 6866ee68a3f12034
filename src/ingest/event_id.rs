//! How an event id is stored: as a 16-byte uuid when it is canonical UUID text, as text
//! otherwise (see migrations/V5__event_ids_as_uuid.sql, whose `elt.event_id_uuid` and
//! `elt.event_id_text` split ids the same way; `tests/event_ids.rs` compares the two).
//!
//! Canonical means exactly what PostgreSQL prints for a uuid: 36 bytes, lowercase hex in
//! 8-4-4-4-12 groups with hyphens. Only such text converts back byte for byte; upper case,
//! braces or missing hyphens stay text, so `A…` and `a…` remain two different ids.

use uuid::Uuid;

/// The uuid stored next to an id that is kept as text.
pub const NIL_UUID: [u8; 16] = [0; 16];

/// An event id as the events table stores it: `(event_id_uuid, event_id_text)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEventId<'a> {
    /// The id's uuid, or [`NIL_UUID`] when the id is kept as text.
    pub uuid: [u8; 16],
    /// Empty when the uuid is the id; the id itself otherwise.
    pub text: &'a str,
}

impl<'a> StoredEventId<'a> {
    /// Splits an accepted (never empty) event id.
    pub fn of(event_id: &'a str) -> Self {
        match canonical_uuid(event_id) {
            Some(uuid) => Self { uuid, text: "" },
            None => Self {
                uuid: NIL_UUID,
                text: event_id,
            },
        }
    }
}

/// The uuid `event_id` is the canonical text of, if it is one.
fn canonical_uuid(event_id: &str) -> Option<[u8; 16]> {
    if event_id.len() != 36 {
        return None;
    }
    let uuid = Uuid::try_parse(event_id).ok()?;
    // The parser also takes upper case: only text that prints back identically is a uuid here.
    let mut printed = [0u8; 36];
    (uuid.hyphenated().encode_lower(&mut printed) == event_id).then(|| *uuid.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_uuid_text_is_stored_as_its_uuid() {
        let id = "cc8dac61-f9d0-4bcb-a9aa-602456ee20d4";
        let stored = StoredEventId::of(id);
        assert_eq!(stored.text, "");
        assert_eq!(Uuid::from_bytes(stored.uuid).hyphenated().to_string(), id);
    }

    #[test]
    fn the_nil_uuid_itself_is_a_uuid() {
        let stored = StoredEventId::of("00000000-0000-0000-0000-000000000000");
        assert_eq!(
            stored,
            StoredEventId {
                uuid: NIL_UUID,
                text: ""
            }
        );
    }

    #[test]
    fn text_that_does_not_print_back_identically_stays_text() {
        for id in [
            "CC8DAC61-F9D0-4BCB-A9AA-602456EE20D4",
            "cc8dac61-f9d0-4bcb-a9aa-602456ee20D4",
            "{cc8dac61-f9d0-4bcb-a9aa-602456ee20d4}",
            "cc8dac61f9d04bcba9aa602456ee20d4",
            "urn:uuid:cc8dac61-f9d0-4bcb-a9aa-602456ee20d4",
            " cc8dac61-f9d0-4bcb-a9aa-602456ee20d4",
            "cc8dac61-f9d0-4bcb-a9aa-602456ee20d4 ",
            "cc8dac61-f9d04bcb-a9aa-602456ee20d4-",
            "cc8dac61-f9d0-4bcb-a9aa-602456ee20g4",
            "cc8dac61+f9d0-4bcb-a9aa-602456ee20d4",
            "e",
            "é8dac61-f9d0-4bcb-a9aa-602456ee20d4",
        ] {
            assert_eq!(
                StoredEventId::of(id),
                StoredEventId {
                    uuid: NIL_UUID,
                    text: id
                },
                "{id}"
            );
        }
    }

    proptest! {
        /// Every id converts back byte for byte from what is stored.
        #[test]
        fn stored_form_gives_the_id_back(id in "[0-9a-fA-F{}-]{30,40}|\\PC{1,40}") {
            let stored = StoredEventId::of(&id);
            let back = if stored.text.is_empty() {
                Uuid::from_bytes(stored.uuid).hyphenated().to_string()
            } else {
                stored.text.to_owned()
            };
            prop_assert_eq!(back, id);
        }

        #[test]
        fn every_uuid_is_stored_as_itself(bytes in any::<[u8; 16]>()) {
            let id = Uuid::from_bytes(bytes).hyphenated().to_string();
            prop_assert_eq!(StoredEventId::of(&id), StoredEventId { uuid: bytes, text: "" });
        }
    }
}
