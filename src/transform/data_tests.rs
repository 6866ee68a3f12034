//! The SQL data tests in `views/tests/`: queries that return offending rows; zero rows pass.

use anyhow::{anyhow, Result};
use tokio_postgres::Client;

use super::views::ViewSet;
use crate::db::database_message;
use crate::report::summary::DataTestFailure;

/// Runs every data test; returns the ones that found offending rows.
pub async fn run_data_tests(client: &Client, views: &ViewSet) -> Result<Vec<DataTestFailure>> {
    let mut failures = Vec::new();
    for test in &views.tests {
        let sql = test.sql.trim_end().trim_end_matches(';');
        // One evaluation of the test's query: the count of all offending rows rides along with
        // the first five.
        let query = format!(
            "select count(*) over () as offending_rows, row_to_json(offending)::text as sample \
             from ({sql}\n) as offending limit 5"
        );
        let rows = client
            .query(&query, &[])
            .await
            .map_err(|error| anyhow!("{}: {}", test.path, database_message(&error)))?;
        if let Some(first) = rows.first() {
            failures.push(DataTestFailure {
                name: test.name.clone(),
                offending_rows: first.get::<_, i64>(0) as u64,
                sample: rows.iter().map(|row| row.get(1)).collect(),
            });
        }
    }
    Ok(failures)
}
