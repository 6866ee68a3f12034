//! Transform: runs the analysts' SQL in `views/` inside PostgreSQL — builds, refreshes and tests it.
//!
//! Each `views/<schema>/<name>.sql` defines the relation `<schema>.<name>`; a header line
//! `-- materialized: view | table | incremental | materialized view` says how it is kept.
//! `views/tests/<name>.sql` are data tests: queries that return offending rows.
//!
//! The parts: [`views`] (the files) → [`plan`] (what a refresh executes; pure) → [`refresh`]
//! (executing it) and [`data_tests`].

mod data_tests;
mod plan;
mod refresh;
mod views;

pub use data_tests::{run_data_tests, run_data_tests_after_refresh, test_keys_below_share};
pub use plan::{
    plan_refresh, plan_refresh_reading, Action, ManagedRelation, PlanStep, RefreshOptions,
    RefreshPlan, StaleKeysRead, Why,
};
pub use refresh::{dry_run, refresh};
pub use views::{CompanionQuery, DataTest, Materialization, Model, ViewSet};

#[cfg(test)]
mod tests;
