//! Binary COPY framing: each target table's column list (written once), and the row and
//! field encoders that write PostgreSQL's binary COPY format.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ingest::clean::CleanEvent;
use crate::ingest::event_id::StoredEventId;
use crate::ingest::personal_data::PersonalDataHasher;

use super::sent_keys::SentKeys;

/// Encoded COPY data is handed to the database in chunks of about this size.
pub(super) const CHUNK_BYTES: usize = 1 << 20;
/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Where a batch's rows are copied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyTarget {
    /// `elt.staged_lines`, for the merge (events and rejects alike).
    StagedLines,
    /// `elt.events` directly (bulk load).
    Events,
    /// `elt.rejects` directly (bulk load).
    Rejects,
    /// `elt.bulk_load_suspect_keys`: the bulk load's keys that may repeat (see
    /// [`super::sent_keys`]).
    SuspectKeys,
}

/// The columns of `elt.staged_lines` that a COPY fills, in the order the encoder writes them.
const STAGED_LINES_COLUMNS: [&str; 13] = [
    "line_number",
    "event_id_uuid",
    "event_id_text",
    "event_type",
    "customer_id",
    "user_id",
    "fired_at",
    "ip_hash",
    "email_hash",
    "reject_reason",
    "reject_detail",
    "raw_line",
    "line_length",
];
/// The columns of `elt.events` that a bulk load's COPY fills, in the encoder's order.
const EVENTS_COLUMNS: [&str; 10] = [
    "event_id_uuid",
    "event_id_text",
    "event_type",
    "customer_id",
    "user_id",
    "fired_at",
    "load_id",
    "line_number",
    "ip_hash",
    "email_hash",
];
/// The columns of `elt.rejects` that a bulk load's COPY fills, in the encoder's order.
const REJECTS_COLUMNS: [&str; 6] = [
    "load_id",
    "line_number",
    "reason",
    "detail",
    "raw_line",
    "line_length",
];

/// The columns of `elt.bulk_load_suspect_keys`, in the encoder's order.
const SUSPECT_KEYS_COLUMNS: [&str; 3] = ["event_id_uuid", "event_type", "event_id_text"];

impl CopyTarget {
    fn table_and_columns(self) -> (&'static str, &'static [&'static str]) {
        match self {
            CopyTarget::StagedLines => ("elt.staged_lines", &STAGED_LINES_COLUMNS),
            CopyTarget::Events => ("elt.events", &EVENTS_COLUMNS),
            CopyTarget::Rejects => ("elt.rejects", &REJECTS_COLUMNS),
            CopyTarget::SuspectKeys => ("elt.bulk_load_suspect_keys", &SUSPECT_KEYS_COLUMNS),
        }
    }

    /// The `COPY … FROM STDIN (FORMAT binary)` statement, with the explicit column list.
    pub(super) fn statement(self) -> String {
        let (table, columns) = self.table_and_columns();
        format!(
            "copy {table} ({}) from stdin (format binary)",
            columns.join(", ")
        )
    }

    /// The field count every row of this target starts with.
    fn column_count(self) -> i16 {
        self.table_and_columns().1.len() as i16
    }
}

/// How a load writes its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyLayout {
    /// Every line into staging; the merge deduplicates against the primary key.
    Staged,
    /// Events straight into `elt.events` and rejects into `elt.rejects`: the bulk load, whose
    /// duplicates are removed when it finishes (see [`super::bulk`]).
    Direct { load_id: i64 },
}

/// Encodes one batch's rows in PostgreSQL's binary COPY row format: one buffer for the main
/// target and, in the direct layout, one for the rejects and one for the suspect keys. The
/// database side adds the COPY header and trailer when it opens and finishes a COPY.
pub(super) struct RowEncoder {
    layout: CopyLayout,
    pub(super) rows: BytesMut,
    pub(super) rejects: BytesMut,
    pub(super) suspect_keys: BytesMut,
}

impl RowEncoder {
    pub(super) fn new(layout: CopyLayout) -> Self {
        Self {
            layout,
            rows: BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024),
            rejects: BytesMut::new(),
            suspect_keys: BytesMut::new(),
        }
    }

    fn rows_target(&self) -> CopyTarget {
        match self.layout {
            CopyLayout::Staged => CopyTarget::StagedLines,
            CopyLayout::Direct { .. } => CopyTarget::Events,
        }
    }

    /// Encodes an event; in the direct layout, `sent_keys` (the bulk load's filter) decides
    /// whether its key is also written as a suspect.
    pub(super) fn event(
        &mut self,
        line_number: u64,
        event: &CleanEvent<'_>,
        event_type: &str,
        hasher: Option<&PersonalDataHasher>,
        sent_keys: Option<&mut SentKeys>,
    ) {
        let event_id = StoredEventId::of(&event.event_id);
        let buffer = &mut self.rows;
        match self.layout {
            CopyLayout::Staged => {
                buffer.put_i16(CopyTarget::StagedLines.column_count());
                put_i64(buffer, line_number as i64);
                put_event_fields(buffer, &event_id, event, event_type);
                put_personal_data(buffer, event, hasher);
                for _ in 0..4 {
                    put_null(buffer);
                }
            }
            CopyLayout::Direct { load_id } => {
                buffer.put_i16(CopyTarget::Events.column_count());
                put_event_fields(buffer, &event_id, event, event_type);
                put_i64(buffer, load_id);
                put_i64(buffer, line_number as i64);
                put_personal_data(buffer, event, hasher);
                if sent_keys.is_some_and(|sent_keys| sent_keys.record(&event_id, event_type)) {
                    let suspects = &mut self.suspect_keys;
                    suspects.put_i16(CopyTarget::SuspectKeys.column_count());
                    put_bytes(suspects, &event_id.uuid);
                    put_bytes(suspects, event_type.as_bytes());
                    put_bytes(suspects, event_id.text.as_bytes());
                }
            }
        }
    }

    pub(super) fn reject(
        &mut self,
        line_number: u64,
        reason: &str,
        detail: &str,
        raw: &[u8],
        length: u64,
    ) {
        match self.layout {
            CopyLayout::Staged => {
                let buffer = &mut self.rows;
                buffer.put_i16(CopyTarget::StagedLines.column_count());
                put_i64(buffer, line_number as i64);
                for _ in 0..8 {
                    put_null(buffer);
                }
                put_reject_fields(buffer, reason, detail, raw, length);
            }
            CopyLayout::Direct { load_id } => {
                let buffer = &mut self.rejects;
                buffer.put_i16(CopyTarget::Rejects.column_count());
                put_i64(buffer, load_id);
                put_i64(buffer, line_number as i64);
                put_reject_fields(buffer, reason, detail, raw, length);
            }
        }
    }

    /// Hands over the buffers that hold at least `min_bytes` (any non-empty one with 1).
    pub(super) fn flush(
        &mut self,
        min_bytes: usize,
        send: &dyn Fn(CopyTarget, Bytes) -> bool,
    ) -> bool {
        let rows_target = self.rows_target();
        for (target, buffer) in [
            (rows_target, &mut self.rows),
            (CopyTarget::Rejects, &mut self.rejects),
            (CopyTarget::SuspectKeys, &mut self.suspect_keys),
        ] {
            if !buffer.is_empty()
                && buffer.len() >= min_bytes
                && !send(target, buffer.split().freeze())
            {
                return false;
            }
        }
        true
    }
}

/// Binary COPY's file header: signature, flags, header extension length.
pub(super) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Binary COPY's file trailer: a field count of -1.
pub(super) const COPY_TRAILER: &[u8] = &[0xff, 0xff];

fn put_i64(buffer: &mut BytesMut, value: i64) {
    buffer.put_i32(8);
    buffer.put_i64(value);
}

fn put_bytes(buffer: &mut BytesMut, value: &[u8]) {
    buffer.put_i32(value.len() as i32);
    buffer.put_slice(value);
}

fn put_null(buffer: &mut BytesMut) {
    buffer.put_i32(-1);
}

/// event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at
fn put_event_fields(
    buffer: &mut BytesMut,
    event_id: &StoredEventId<'_>,
    event: &CleanEvent<'_>,
    event_type: &str,
) {
    put_bytes(buffer, &event_id.uuid);
    put_bytes(buffer, event_id.text.as_bytes());
    put_bytes(buffer, event_type.as_bytes());
    put_i64(buffer, event.customer_id);
    put_i64(buffer, event.user_id);
    put_i64(buffer, event.fired_at_micros - POSTGRES_EPOCH_MICROS);
}

/// ip_hash, email_hash: keyed hashes, or NULL without a key.
fn put_personal_data(
    buffer: &mut BytesMut,
    event: &CleanEvent<'_>,
    hasher: Option<&PersonalDataHasher>,
) {
    for personal in [&event.ip, &event.email] {
        match (hasher, personal) {
            (Some(hasher), Some(value)) => put_bytes(buffer, &hasher.hash(value)),
            _ => put_null(buffer),
        }
    }
}

/// reason, detail, raw_line, line_length
fn put_reject_fields(buffer: &mut BytesMut, reason: &str, detail: &str, raw: &[u8], length: u64) {
    put_bytes(buffer, reason.as_bytes());
    // PostgreSQL text cannot hold NUL; a detail may quote an offending value that has one.
    if detail.contains('\0') {
        put_bytes(buffer, detail.replace('\0', "\\u0000").as_bytes());
    } else {
        put_bytes(buffer, detail.as_bytes());
    }
    put_bytes(buffer, raw);
    put_i64(buffer, length as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_event() -> CleanEvent<'static> {
        CleanEvent {
            event_id: "id".into(),
            event_type: 0,
            customer_id: 1,
            user_id: 2,
            fired_at_micros: POSTGRES_EPOCH_MICROS + 5,
            ip: Some("10.0.0.1".into()),
            email: None,
        }
    }

    #[test]
    fn copy_framing_is_postgres_binary_format() {
        assert_eq!(COPY_HEADER.len(), 19);
        assert_eq!(&COPY_HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(COPY_TRAILER, &(-1i16).to_be_bytes());
    }

    #[test]
    fn encodes_staged_rows() {
        let mut encoder = RowEncoder::new(CopyLayout::Staged);
        encoder.event(7, &sample_event(), "ReferralPageLoad", None, None);
        let buffer = encoder.rows.split();
        assert_eq!(
            i16::from_be_bytes([buffer[0], buffer[1]]),
            13,
            "staged_lines columns"
        );
        // line_number: length 8, value 7
        assert_eq!(&buffer[2..6], &8i32.to_be_bytes());
        assert_eq!(&buffer[6..14], &7i64.to_be_bytes());
        // no key: the two hashes and the four reject columns are NULL, and the ip is nowhere
        assert!(buffer.ends_with(&[0xff; 24]));
        assert!(!String::from_utf8_lossy(&buffer).contains("10.0.0.1"));
        let hasher = PersonalDataHasher::new(b"sixteen bytes or more").unwrap();
        encoder.event(7, &sample_event(), "ReferralPageLoad", Some(&hasher), None);
        let buffer = encoder.rows.split();
        let hashed = hasher.hash("10.0.0.1");
        assert!(
            buffer.windows(32).any(|window| window == hashed),
            "the keyed hash is stored"
        );
        assert!(
            buffer.ends_with(&[0xff; 20]),
            "email NULL + four reject columns"
        );
        encoder.reject(1, "invalid_json", "bad\0detail", b"\xff", 1);
        assert!(encoder.rejects.is_empty(), "staged rejects share the rows");
        let text = String::from_utf8_lossy(&encoder.rows);
        assert!(
            text.contains("bad\\u0000detail"),
            "NUL escaped in the detail"
        );
    }

    #[test]
    fn encodes_direct_rows_for_events_and_rejects() {
        let mut encoder = RowEncoder::new(CopyLayout::Direct { load_id: 42 });
        assert_eq!(encoder.rows_target(), CopyTarget::Events);
        encoder.event(7, &sample_event(), "ReferralPageLoad", None, None);
        let buffer = encoder.rows.split();
        assert_eq!(
            i16::from_be_bytes([buffer[0], buffer[1]]),
            10,
            "events columns"
        );
        // event_id "id" is not a uuid: the nil uuid, then the text "id"
        assert_eq!(&buffer[2..6], &16i32.to_be_bytes());
        assert_eq!(&buffer[6..22], &[0; 16]);
        assert_eq!(&buffer[22..26], &2i32.to_be_bytes());
        assert_eq!(&buffer[26..28], b"id");
        // a canonical uuid id: its 16 bytes, then an empty text
        let uuid_event = CleanEvent {
            event_id: "cc8dac61-f9d0-4bcb-a9aa-602456ee20d4".into(),
            ..sample_event()
        };
        encoder.event(7, &uuid_event, "ReferralPageLoad", None, None);
        let buffer = encoder.rows.split();
        assert_eq!(&buffer[2..6], &16i32.to_be_bytes());
        assert_eq!(
            &buffer[6..22],
            b"\xcc\x8d\xac\x61\xf9\xd0\x4b\xcb\xa9\xaa\x60\x24\x56\xee\x20\xd4"
        );
        assert_eq!(&buffer[22..26], &0i32.to_be_bytes());
        assert_eq!(&buffer[26..30], &16i32.to_be_bytes(), "event_type follows");
        // ... load_id 42 and line_number 7 follow fired_at; both hashes NULL at the end
        let tail = &buffer[buffer.len() - 8 - 24..];
        assert_eq!(&tail[..4], &8i32.to_be_bytes());
        assert_eq!(&tail[4..12], &42i64.to_be_bytes());
        assert_eq!(&tail[16..24], &7i64.to_be_bytes());
        assert!(buffer.ends_with(&[0xff; 8]));

        encoder.reject(3, "invalid_json", "detail", b"raw", 3);
        assert!(encoder.rows.is_empty(), "rejects have their own buffer");
        let buffer = encoder.rejects.split();
        assert_eq!(
            i16::from_be_bytes([buffer[0], buffer[1]]),
            6,
            "rejects columns"
        );
        assert_eq!(&buffer[6..14], &42i64.to_be_bytes());
        assert_eq!(&buffer[18..26], &3i64.to_be_bytes());
    }

    #[test]
    fn a_bulk_load_writes_the_keys_its_filter_may_have_seen_as_suspects() {
        let mut encoder = RowEncoder::new(CopyLayout::Direct { load_id: 1 });
        let mut sent = SentKeys::for_expected_keys(10);
        encoder.event(
            1,
            &sample_event(),
            "ReferralPageLoad",
            None,
            Some(&mut sent),
        );
        encoder.event(2, &sample_event(), "FaqClick", None, Some(&mut sent));
        assert!(
            encoder.suspect_keys.is_empty(),
            "first occurrences are not suspects"
        );
        encoder.event(
            3,
            &sample_event(),
            "ReferralPageLoad",
            None,
            Some(&mut sent),
        );
        let suspect = encoder.suspect_keys.split();
        let mut expected = BytesMut::new();
        expected.put_i16(3);
        put_bytes(&mut expected, &[0; 16]);
        put_bytes(&mut expected, b"ReferralPageLoad");
        put_bytes(&mut expected, b"id");
        assert_eq!(suspect, expected, "the repeated key, as (uuid, type, text)");
        assert_eq!(
            CopyTarget::SuspectKeys.statement(),
            "copy elt.bulk_load_suspect_keys (event_id_uuid, event_type, event_id_text) \
             from stdin (format binary)"
        );
        // Without a filter (a staged load), no suspects are written.
        let mut staged = RowEncoder::new(CopyLayout::Staged);
        staged.event(
            1,
            &sample_event(),
            "ReferralPageLoad",
            None,
            Some(&mut sent),
        );
        assert!(staged.suspect_keys.is_empty());
    }

    #[test]
    fn each_copy_names_its_columns_in_the_encoders_order() {
        assert_eq!(
            CopyTarget::Rejects.statement(),
            "copy elt.rejects (load_id, line_number, reason, detail, raw_line, line_length) \
             from stdin (format binary)"
        );
        assert!(CopyTarget::Events.statement().starts_with(
            "copy elt.events (event_id_uuid, event_id_text, event_type, customer_id, "
        ));
        assert_eq!(CopyTarget::StagedLines.column_count(), 13);
    }

    #[test]
    fn flushing_sends_each_target_once_it_is_full_enough() {
        let mut encoder = RowEncoder::new(CopyLayout::Direct { load_id: 1 });
        let mut sent = SentKeys::for_expected_keys(10);
        for _ in 0..2 {
            encoder.event(
                1,
                &sample_event(),
                "ReferralPageLoad",
                None,
                Some(&mut sent),
            );
        }
        encoder.reject(2, "invalid_json", "detail", b"raw", 3);
        let sent = std::cell::RefCell::new(Vec::new());
        let send = |target: CopyTarget, rows: Bytes| {
            sent.borrow_mut().push((target, rows.len()));
            true
        };
        assert!(encoder.flush(CHUNK_BYTES, &send));
        assert!(sent.borrow().is_empty(), "nothing is full yet");
        assert!(encoder.flush(1, &send));
        let targets: Vec<CopyTarget> = sent.borrow().iter().map(|(target, _)| *target).collect();
        assert_eq!(
            targets,
            vec![
                CopyTarget::Events,
                CopyTarget::Rejects,
                CopyTarget::SuspectKeys
            ]
        );
        assert!(encoder.rows.is_empty() && encoder.rejects.is_empty());
        assert!(encoder.suspect_keys.is_empty());
    }
}
