//! campaign-elt: loads referral-campaign JSON-lines event logs into PostgreSQL and builds the
//! hourly reports with versioned SQL that runs inside the database (SQL pushdown ELT).

pub mod config;
pub mod generate;
pub mod ingest;
