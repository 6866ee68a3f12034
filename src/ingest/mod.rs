//! Ingest: read input files line by line and classify every line (pure, no database).
//!
//! The pipeline is [`source`] (files, `.gz`, standard input) → [`lines`] (bytes → numbered
//! lines: BOM, CRLF, the length limit) → [`clean`] (one line → exactly one
//! [`clean::LineOutcome`]), with [`fired_at`] parsing the two timestamp grammars and
//! [`event_id`] the stored form of an id. Beside them: [`fingerprint`] (a file's size and
//! hash), [`open`] (an input opened at a recorded line), [`tally`] (counts by outcome),
//! [`stream`] (standard input with a deadline) and [`personal_data`] (keyed hashes).

pub mod clean;
pub mod event_id;
pub mod fingerprint;
pub mod fired_at;
pub mod lines;
pub mod open;
pub mod personal_data;
pub mod source;
pub mod stream;
pub mod tally;

pub use clean::{CleanEvent, Cleaner, LineOutcome, RejectReason};
pub use event_id::StoredEventId;
pub use fired_at::{parse_fired_at, FiredAtError, SourceTimeZone};
pub use lines::{LineReader, RawLine};
pub use source::{is_stdin, open_input};
