//! Ingest: read input files line by line and classify every line (pure, no database).
//!
//! The pipeline is `lines` (bytes → numbered lines, BOM/CRLF/length limit) → `clean`
//! (one line → exactly one [`clean::LineOutcome`]), with `fired_at` parsing the two
//! timestamp grammars of SPEC §3.

pub mod clean;
pub mod fired_at;
pub mod lines;
pub mod source;

pub use clean::{CleanEvent, Cleaner, LineOutcome, RejectReason};
pub use lines::{LineReader, RawLine};
