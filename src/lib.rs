//! campaign-elt: loads referral-campaign JSON-lines event logs into PostgreSQL and builds the
//! hourly reports with versioned SQL that runs inside the database (SQL pushdown ELT).
//!
//! The pipeline: [`cli`] → [`config`] / [`settings`] → [`ingest`] (read, parse, clean) →
//! [`load`] (binary COPY, batches, ledger) → [`transform`] (the SQL in `views/`) → [`report`].

pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod db;
pub mod exit;
pub mod generate;
pub mod ingest;
pub mod load;
pub mod personal_data;
pub mod purge;
pub mod report;
pub mod roles;
pub mod settings;
pub mod summary;
pub mod transform;
