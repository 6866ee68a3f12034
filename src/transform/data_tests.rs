//! The SQL data tests in `views/tests/`: queries that return offending rows; zero rows pass.
//!
//! After a refresh a test whose header says `-- scope: per key` reads only the rows of the
//! (customer, hour) keys the refreshes since it last passed recomputed (`elt.refresh_keys`), so
//! that a night's tests cost what the night changed, not the size of the reports. It reads every
//! row when it is new or changed, failed last time, a refresh since then rebuilt a relation or
//! was a full refresh, or the keys are more than [`TEST_KEYS_BELOW_SHARE`] of the rows (reading
//! them is then no cheaper); `campaign-elt test` always reads every row.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};
use tokio_postgres::{Client, GenericClient};

use super::refresh::{estimated_rows, share_from_env};
use super::views::{replace_references, DataTest, Materialization, ViewSet};
use crate::db::{database_message, quote_ident, quote_relation};
use crate::report::summary::{DataTestFailure, DataTestsSummary};

/// Runs every data test on every row; records nothing (`campaign-elt test`, read only).
pub async fn run_data_tests(client: &Client, views: &ViewSet) -> Result<DataTestsSummary> {
    let mut summary = DataTestsSummary::default();
    for test in &views.tests {
        summary.run += 1;
        if let Some(failure) = run_one(client, test, &test.sql).await? {
            summary.failures.push(failure);
        }
    }
    Ok(summary)
}

/// The largest share of an incremental relation's rows (PostgreSQL's estimate) that the keys to
/// test may be for a per-key test to read only them. A test reads each key's rows through the
/// relation's unique index, which costs more per row than reading every row in one pass: with
/// 1,000 customers and 150,000 rows per report, the five shipped tests took 0.04 s on 585 keys
/// (0.4 %), 1.24 s on 21,566 (14 %) and 0.5–0.6 s on every row (docs/performance.md), so the
/// two cost the same near 7 %. `CAMPAIGN_ELT_TEST_KEYS_BELOW_SHARE` overrides it (0: every test
/// reads every row).
pub const TEST_KEYS_BELOW_SHARE: f64 = 0.03;

/// The share from `CAMPAIGN_ELT_TEST_KEYS_BELOW_SHARE`, else [`TEST_KEYS_BELOW_SHARE`]. The
/// writing commands read it before they start, so that a bad value stops them before any load.
pub fn test_keys_below_share() -> Result<f64> {
    share_from_env(
        "CAMPAIGN_ELT_TEST_KEYS_BELOW_SHARE",
        TEST_KEYS_BELOW_SHARE,
        "0 makes every data test read every row",
    )
}

/// What a test found when it last ran after a refresh (`elt.data_test_results`).
struct LastResult {
    checksum: String,
    passed: bool,
    refresh_id: i64,
}

/// Runs the data tests after a refresh, each on the keys refreshed since it last passed where it
/// may (see the module's comment), and records what each found.
pub async fn run_data_tests_after_refresh(
    client: &mut Client,
    views: &ViewSet,
) -> Result<DataTestsSummary> {
    let transaction = client.transaction().await?;
    let newest_refresh: Option<i64> = transaction
        .query_one("select max(refresh_id) from elt.refreshes", &[])
        .await?
        .get(0);
    let last_results: BTreeMap<String, LastResult> = transaction
        .query(
            "select test_name, checksum, passed, refresh_id from elt.data_test_results",
            &[],
        )
        .await
        .context("cannot read elt.data_test_results")?
        .iter()
        .map(|row| {
            let result = LastResult {
                checksum: row.get(1),
                passed: row.get(2),
                refresh_id: row.get(3),
            };
            (row.get(0), result)
        })
        .collect();
    let tested_views = TestedViews::of(views);
    let most_keys =
        test_keys_below_share()? * largest_incremental_relation(&transaction, views).await?;
    let mut summary = DataTestsSummary::default();
    // The refresh after which `elt_tested_keys` holds the refreshed keys now.
    let mut scope: Option<i64> = None;
    // For each refresh a test last passed at: the keys refreshed since, when few enough to test.
    let mut keys_since: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for test in &views.tests {
        let since = match last_results.get(&test.name) {
            Some(last) if test.per_key && last.passed && last.checksum == test.checksum => {
                Some(last.refresh_id)
            }
            _ => None,
        };
        let mut keys = None;
        if let Some(since) = since {
            let few = match keys_since.get(&since) {
                Some(few) => *few,
                None => {
                    let few = keys_to_test(&transaction, since, most_keys).await?;
                    keys_since.insert(since, few);
                    few
                }
            };
            keys = few.map(|count| (since, count));
        }
        let sql = match keys {
            Some((since, count)) => {
                if scope != Some(since) {
                    tested_views.create(&transaction, since).await?;
                    scope = Some(since);
                }
                summary.on_refreshed_keys += 1;
                summary.tested_keys = summary.tested_keys.max(Some(count));
                tested_views.rewrite(&test.sql)
            }
            None => test.sql.clone(),
        };
        let tested_keys = keys.map(|(_, count)| count);
        summary.run += 1;
        let failure = run_one(&transaction, test, &sql).await?;
        if let Some(newest_refresh) = newest_refresh {
            transaction
                .execute(
                    "insert into elt.data_test_results (test_name, checksum, passed, refresh_id, tested_keys)
                     values ($1, $2, $3, $4, $5)
                     on conflict (test_name) do update set checksum = excluded.checksum,
                         passed = excluded.passed, refresh_id = excluded.refresh_id,
                         tested_keys = excluded.tested_keys, checked_at = clock_timestamp()",
                    &[
                        &test.name,
                        &test.checksum,
                        &failure.is_none(),
                        &newest_refresh,
                        &tested_keys,
                    ],
                )
                .await
                .context("cannot record the data test's result in elt.data_test_results")?;
        }
        if let Some(failure) = failure {
            summary.failures.push(failure);
        }
    }
    if scope.is_some() {
        transaction
            .batch_execute("drop table elt_tested_keys cascade")
            .await?;
    }
    transaction
        .commit()
        .await
        .context("cannot record the data tests' results")?;
    Ok(summary)
}

/// The number of keys the refreshes after `since` recomputed, when a per-key test may read only
/// them: every one of those refreshes only recomputed keys (none rebuilt a relation or was a full
/// refresh), `since` is still in the ledger, and there are at most `most_keys` of them.
async fn keys_to_test(
    client: &impl GenericClient,
    since: i64,
    most_keys: f64,
) -> Result<Option<i64>> {
    let row = client
        .query_one(
            "select exists (select 1 from elt.refreshes where refresh_id = $1)
                 and not exists (
                     select 1 from elt.refreshes
                     where refresh_id > $1
                         and (is_full_refresh or cardinality(rebuilt_relations) > 0)
                 ),
                 (select count(*) from (
                     select distinct customer_id, hour from elt.refresh_keys where refresh_id > $1
                 ) as keys)",
            &[&since],
        )
        .await?;
    let (only_keys, keys): (bool, i64) = (row.get(0), row.get(1));
    Ok((only_keys && most_keys > 0.0 && keys as f64 <= most_keys).then_some(keys))
}

/// PostgreSQL's estimate of the rows of the largest incremental relation (0 without one).
async fn largest_incremental_relation(client: &impl GenericClient, views: &ViewSet) -> Result<f64> {
    let mut largest: f64 = 0.0;
    for model in &views.models {
        if model.materialized == Materialization::Incremental {
            largest = largest.max(estimated_rows(client, &model.relation).await?);
        }
    }
    Ok(largest)
}

/// The incremental models as a scoped test reads them: temporary views of the same names that
/// hold only the rows of `elt_tested_keys`, each key's rows found through the relation's unique
/// index (`offset 0` keeps PostgreSQL from making the lateral subquery a join, which it plans as
/// a scan of every row with the test's own condition first).
struct TestedViews {
    /// (relation, temporary view), for the incremental models whose name no other model shares.
    relations: Vec<(String, String)>,
}

impl TestedViews {
    fn of(views: &ViewSet) -> TestedViews {
        let incremental: Vec<&str> = views
            .models
            .iter()
            .filter(|model| model.materialized == Materialization::Incremental)
            .map(|model| model.relation.as_str())
            .collect();
        fn name(relation: &str) -> &str {
            relation.split_once('.').map_or(relation, |(_, name)| name)
        }
        // A test names the temporary view like the relation, so that `page_loads.clicks` still
        // means the relation's column; two models of one name in two schemas are read whole.
        let relations = incremental
            .iter()
            .filter(|relation| {
                incremental
                    .iter()
                    .filter(|other| name(other) == name(relation))
                    .count()
                    == 1
            })
            .map(|relation| (relation.to_string(), format!("pg_temp.{}", name(relation))))
            .collect();
        TestedViews { relations }
    }

    /// Fills `elt_tested_keys` with the keys the refreshes after `since` recomputed and defines
    /// the tested views over it.
    async fn create(&self, client: &impl GenericClient, since: i64) -> Result<()> {
        client
            .batch_execute("drop table if exists elt_tested_keys cascade")
            .await?;
        client
            .execute(
                "create temporary table elt_tested_keys as
                 select distinct customer_id, hour from elt.refresh_keys where refresh_id > $1",
                &[&since],
            )
            .await
            .context("cannot read the refreshed keys from elt.refresh_keys")?;
        client.batch_execute("analyze elt_tested_keys").await?;
        for (relation, view) in &self.relations {
            let (_, name) = view.split_once('.').unwrap_or(("", view));
            client
                .batch_execute(&format!(
                    "create temporary view {} as
                     select tested.*
                     from elt_tested_keys as keys
                     cross join lateral (
                         select *
                         from {} as relation
                         where relation.customer_id = keys.customer_id
                             and relation.hour >= keys.hour
                             and relation.hour < keys.hour + interval '1 hour'
                         offset 0
                     ) as tested",
                    quote_ident(name),
                    quote_relation(relation)
                ))
                .await
                .with_context(|| format!("cannot define the tested rows of {relation}"))?;
        }
        Ok(())
    }

    /// The test's SQL reading the tested views instead of the incremental models.
    fn rewrite(&self, sql: &str) -> String {
        self.relations
            .iter()
            .fold(sql.to_owned(), |sql, (relation, view)| {
                replace_references(&sql, relation, view)
            })
    }
}

/// One evaluation of a test's query: the count of all offending rows rides along with the
/// first five.
async fn run_one(
    client: &impl GenericClient,
    test: &DataTest,
    sql: &str,
) -> Result<Option<DataTestFailure>> {
    let sql = sql.trim_end().trim_end_matches(';');
    let query = format!(
        "select count(*) over () as offending_rows, row_to_json(offending)::text as sample \
         from ({sql}\n) as offending limit 5"
    );
    let rows = client
        .query(&query, &[])
        .await
        .map_err(|error| anyhow!("{}: {}", test.path, database_message(&error)))?;
    Ok(rows.first().map(|first| DataTestFailure {
        name: test.name.clone(),
        offending_rows: first.get::<_, i64>(0) as u64,
        sample: rows.iter().map(|row| row.get(1)).collect(),
    }))
}
