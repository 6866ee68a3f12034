//! campaign-elt: loads referral-campaign JSON-lines event logs into PostgreSQL and builds the
//! hourly reports with versioned SQL that runs inside the database (SQL pushdown ELT).
//!
//! The pipeline: [`cli`] (arguments) → [`commands`] (one file per command) → [`ingest`] (read,
//! parse, clean; pure) → [`load`] (binary COPY, batches, ledger, merge) → [`transform`] (the
//! SQL in `views/`) → [`report`] (summaries, status, printing). At the edge: [`db`] (connect,
//! TLS, migrate, lock, error messages); beside them: [`admin`] (retention, roles),
//! [`report_settings`] (what the numbers mean), [`generate`] (synthetic logs), [`names`] (the
//! domain's names), [`progress`] (the terminal's bar) and [`exit`] (exit codes). `docs/design.md` draws the map.

pub mod admin;
pub mod cli;
pub mod commands;
pub mod db;
pub mod exit;
pub mod generate;
pub mod ingest;
pub mod load;
pub mod names;
pub mod progress;
pub mod report;
pub mod report_settings;
pub mod transform;
