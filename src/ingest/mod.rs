//! Ingest: read input files line by line and classify every line (pure, no database).
//!
//! The pipeline is `lines` (bytes → numbered lines, BOM/CRLF/length limit) → `clean`
//! (one line → exactly one [`clean::LineOutcome`]), with `fired_at` parsing the two
//! timestamp grammars of SPEC §3.

pub mod clean;
pub mod event_id;
pub mod fired_at;
pub mod lines;
pub mod source;
pub mod stream;

pub use clean::{CleanEvent, Cleaner, LineOutcome, RejectReason};
pub use event_id::StoredEventId;
pub use fired_at::{parse_fired_at, FiredAtError, SourceTimeZone};
pub use lines::{LineReader, RawLine};
pub use source::{is_stdin, open_input};
