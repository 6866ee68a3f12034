//! The analysts' loop on `views/` (issue 5): edit, add, delete and break view files, analysts'
//! own objects next to the managed ones, dependency order, materialized views and `--dry-run`.
//!
//! Each test works on a temporary copy of the repository's `views/` (`--views-dir`) and a
//! database of its own.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{
    assert_rows_eq, campaign_elt, click, copy_of_views, count, fixture, report_rows, rows, stderr,
    stdout, stdout_json, write_lines, EventLine, TestDatabase, FIRST_NIGHT_REPORTS,
};
use tempfile::TempDir;

/// The first ```sql block after `marker` in docs/analysts.md: the examples of "Change a report" are
/// the files these tests build, so the walkthrough cannot drift from what works.
fn readme_sql(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/analysts.md")).unwrap();
    let after = &readme[readme
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in docs/analysts.md"))..];
    let start = after.find("```sql\n").expect("an sql block") + "```sql\n".len();
    let end = after[start..].find("```").expect("end of the sql block");
    after[start..start + end].to_owned()
}

/// The analysts guide's new report: daily click-through rate, materialized as a table.
fn daily_click_through_rate() -> String {
    readme_sql("**2. Write the file** `views/reports/daily_click_through_rate.sql`")
}

/// The analysts guide's data test for it.
fn daily_page_loads_add_up() -> String {
    readme_sql("`views/tests/daily_page_loads_add_up.sql`")
}

const DAILY_ROWS_QUERY: &str =
    "select customer_id, to_char(day at time zone 'UTC', 'YYYY-MM-DD') as day, \
     page_loads, related_clicks, round(click_through_rate, 4) as rate \
     from reports.daily_click_through_rate";

/// A test database and a temporary copy of the repository's views.
struct Project {
    db: TestDatabase,
    views: TempDir,
}

impl Project {
    async fn new() -> Project {
        Project {
            db: TestDatabase::new().await,
            views: copy_of_views(),
        }
    }

    fn views_dir(&self) -> &str {
        self.views.path().to_str().unwrap()
    }

    fn write(&self, file: &str, sql: &str) {
        let path = self.views.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, sql).unwrap();
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.views.path().join(file)).unwrap()
    }

    /// Replaces `from` (which must occur exactly once) by `to` in a view file.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let text = self.read(file);
        assert_eq!(text.matches(from).count(), 1, "{from:?} in {file}");
        self.write(file, &text.replace(from, to));
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.views.path().join(file)).unwrap();
    }

    /// Runs the binary on this project's views (`CAMPAIGN_ELT_VIEWS_DIR`, which the commands
    /// without report SQL ignore) and expects `code`.
    fn run(&self, code: i32, args: &[&str]) -> Output {
        let views = [("CAMPAIGN_ELT_VIEWS_DIR", self.views_dir())];
        self.db.run_with_env_expecting(code, args, &views)
    }

    fn first_night(&self) {
        self.run(
            0,
            &[
                "run",
                "--max-line-bytes",
                "2048",
                &fixture("first_night.jsonl"),
            ],
        );
    }
}

/// The 1-based line of `file_text` that contains `needle`.
fn line_of(file_text: &str, needle: &str) -> usize {
    file_text
        .lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not found"))
        + 1
}

async fn exists(db: &TestDatabase, relation: &str) -> bool {
    db.client()
        .await
        .query_one("select to_regclass($1) is not null", &[&relation])
        .await
        .unwrap()
        .get(0)
}

/// `refresh --json` on the project's views; returns (rebuilt, dropped) relations.
fn refresh_json(project: &Project, args: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut all = vec!["refresh", "--json"];
    all.extend(args);
    let summary = stdout_json(&project.run(0, &all));
    let names = |key: &str| -> Vec<String> {
        summary["refresh"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no refresh.{key} in {summary}"))
            .iter()
            .map(|name| name.as_str().unwrap().to_owned())
            .collect()
    };
    (names("rebuilt_relations"), names("dropped_relations"))
}

#[tokio::test]
async fn editing_a_report_changes_it_after_the_next_refresh() {
    let project = Project::new().await;
    project.first_night();
    project.edit(
        "reports/page_loads.sql",
        "where page_loads > 0",
        "where page_loads > 1",
    );
    let (rebuilt, dropped) = refresh_json(&project, &[]);
    assert_eq!(rebuilt, ["reports.page_loads"], "only the edited file");
    assert!(dropped.is_empty());
    let client = project.db.client().await;
    let page_loads = "select customer_id, to_char(hour at time zone 'UTC', 'YYYY-MM-DD HH24:MI'), page_loads from reports.page_loads";
    assert_rows_eq(
        &rows(&client, page_loads).await,
        &["1|2022-01-01 01:00|3", "3|2021-12-31 23:00|2"],
    );
    // The next load refreshes the edited report incrementally with the edited SQL: customer 1's
    // 01:00 hour grows to 4; customers 4 and 5 get one page load each, below the new threshold.
    project.run(0, &["run", &fixture("second_night.jsonl")]);
    assert_rows_eq(
        &rows(&client, page_loads).await,
        &["1|2022-01-01 01:00|4", "3|2021-12-31 23:00|2"],
    );
}

#[tokio::test]
async fn a_broken_view_fails_naming_file_line_and_message_and_keeps_the_old_reports() {
    let project = Project::new().await;
    project.first_night();
    let client = project.db.client().await;

    // A syntax error.
    project.edit(
        "reports/page_loads.sql",
        "    where page_loads > 0",
        "    wher page_loads > 0",
    );
    let line = line_of(&project.read("reports/page_loads.sql"), "wher page_loads");
    let output = project.run(1, &["refresh"]);
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "reports/page_loads.sql:{line}: syntax error at or near \"page_loads\""
        )),
        "{message}"
    );
    assert_rows_eq(&report_rows(&client).await, FIRST_NIGHT_REPORTS);
    project.edit(
        "reports/page_loads.sql",
        "    wher page_loads > 0",
        "    where page_loads > 0",
    );

    // A missing column, during a nightly run: the events load, the reports keep the old rows.
    project.edit(
        "reports/clicks.sql",
        "    where clicks > 0",
        "    where click_count > 0",
    );
    let line = line_of(&project.read("reports/clicks.sql"), "click_count");
    let output = project.run(1, &["run", &fixture("second_night.jsonl")]);
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "reports/clicks.sql:{line}: column \"click_count\" does not exist"
        )),
        "{message}"
    );
    assert_rows_eq(&report_rows(&client).await, FIRST_NIGHT_REPORTS);
    let events = count(&client, "select count(*) from elt.events").await;
    assert_eq!(events, 20, "the second night's 3 events stay loaded");

    // Fixed: the next refresh catches up on the queued keys.
    project.edit(
        "reports/clicks.sql",
        "    where click_count > 0",
        "    where clicks > 0",
    );
    project.run(0, &["refresh"]);
    let page_loads = rows(
        &client,
        "select customer_id, to_char(hour at time zone 'UTC', 'HH24:MI'), page_loads from reports.page_loads where customer_id in (1, 4, 5)",
    )
    .await;
    assert_rows_eq(
        &page_loads,
        &["1|00:00|1", "1|01:00|4", "4|04:00|1", "5|06:00|1"],
    );
}

#[tokio::test]
async fn a_new_file_creates_its_relation() {
    let project = Project::new().await;
    project.first_night();
    project.write(
        "reports/daily_click_through_rate.sql",
        &daily_click_through_rate(),
    );
    let (rebuilt, _) = refresh_json(&project, &[]);
    assert_eq!(rebuilt, ["reports.daily_click_through_rate"]);
    let client = project.db.client().await;
    let kind: String = client
        .query_one(
            "select relkind::text from pg_class where oid = 'reports.daily_click_through_rate'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "r", "materialized as a table");
    assert_rows_eq(
        &rows(&client, DAILY_ROWS_QUERY).await,
        &[
            "1|2022-01-01|4|3|0.7500",
            "2|2022-01-01|1|1|1.0000",
            "3|2021-12-31|2|0|0.0000",
            "3|2022-01-01|1|0|0.0000",
            "4|2022-01-01|0|0|∅",
            "5|2022-01-01|0|0|∅",
        ],
    );
    // The analysts guide's data test passes, and fails when the report is wrong.
    project.write(
        "tests/daily_page_loads_add_up.sql",
        &daily_page_loads_add_up(),
    );
    project.run(0, &["test"]);
    client
        .batch_execute(
            "update reports.daily_click_through_rate set page_loads = 7 where customer_id = 2",
        )
        .await
        .unwrap();
    let output = project.run(4, &["test"]);
    assert!(
        stderr(&output).contains("daily_page_loads_add_up"),
        "{}",
        stderr(&output)
    );

    // The table is rebuilt on every refresh, so the next night shows up in it.
    project.run(0, &["run", &fixture("second_night.jsonl")]);
    let output = project.run(
        0,
        &[
            "report",
            "daily_click_through_rate",
            "--customer-id",
            "1",
            "--format",
            "csv",
        ],
    );
    let csv = stdout(&output);
    assert!(csv.contains("1,2022-01-01"), "{csv}");
    assert!(csv.contains(",5,3,0.6"), "{csv}");
    assert_rows_eq(&report_rows(&client).await, &common::second_night_reports());
}

#[tokio::test]
async fn a_deleted_file_drops_its_relation_and_only_that() {
    let project = Project::new().await;
    project.write(
        "reports/daily_click_through_rate.sql",
        &daily_click_through_rate(),
    );
    project.first_night();
    assert!(exists(&project.db, "reports.daily_click_through_rate").await);

    project.remove("reports/daily_click_through_rate.sql");
    let (rebuilt, dropped) = refresh_json(&project, &[]);
    assert_eq!(dropped, ["reports.daily_click_through_rate"]);
    assert!(rebuilt.is_empty());
    assert!(!exists(&project.db, "reports.daily_click_through_rate").await);
    let client = project.db.client().await;
    assert_rows_eq(&report_rows(&client).await, FIRST_NIGHT_REPORTS);
    let managed = rows(&client, "select relation_name from elt.managed_relations").await;
    assert_rows_eq(
        &managed,
        &[
            "intermediate.int_customer_hourly",
            "reports.click_through_rate",
            "reports.clicks",
            "reports.page_loads",
            "reports.unique_user_clicks",
            "staging.stg_events",
        ],
    );
}

#[tokio::test]
async fn removed_files_are_dropped_readers_first_whatever_their_names() {
    // A view and the table it reads, built in one refresh (the same `built_at`), named so that
    // name order would drop the table first.
    let table = "-- materialized: table\nselect customer_id, sum(clicks) as clicks from reports.clicks group by customer_id\n";
    let view = "-- materialized: view\nselect customer_id, clicks from reports.z_t\n";
    let project = Project::new().await;
    project.write("reports/z_t.sql", table);
    project.write("reports/a_v.sql", view);
    project.first_night();
    assert!(exists(&project.db, "reports.a_v").await);
    project.remove("reports/a_v.sql");
    project.remove("reports/z_t.sql");
    let (_, dropped) = refresh_json(&project, &[]);
    assert_eq!(dropped, ["reports.a_v", "reports.z_t"]);
    assert!(!exists(&project.db, "reports.a_v").await);
    assert!(!exists(&project.db, "reports.z_t").await);

    // A changed view that stops reading a table whose file is removed in the same refresh.
    let project = Project::new().await;
    project.write("reports/z_t.sql", table);
    project.write("reports/a_v.sql", view);
    project.first_night();
    project.remove("reports/z_t.sql");
    project.write(
        "reports/a_v.sql",
        "-- materialized: view\nselect customer_id, clicks from reports.clicks\n",
    );
    let (rebuilt, dropped) = refresh_json(&project, &[]);
    assert_eq!(rebuilt, ["reports.a_v"]);
    assert_eq!(dropped, ["reports.z_t"]);
    assert!(!exists(&project.db, "reports.z_t").await);
    let client = project.db.client().await;
    assert_eq!(
        count(&client, "select count(*) from reports.a_v").await,
        count(&client, "select count(*) from reports.clicks").await
    );
}

#[tokio::test]
async fn an_analysts_own_view_on_a_report_stops_its_rebuild_and_survives() {
    let project = Project::new().await;
    project.first_night();
    let client = project.db.client().await;
    client
        .batch_execute(
            "create schema analyst;
             create view analyst.busy_hours as select * from reports.page_loads where page_loads > 1;",
        )
        .await
        .unwrap();

    project.edit(
        "reports/page_loads.sql",
        "-- owner: analytics",
        "-- owner: analytics (reviewed)",
    );
    let output = project.run(1, &["refresh"]);
    let message = stderr(&output);
    assert!(
        message.contains(
            "reports/page_loads.sql: cannot rebuild reports.page_loads (changed): \
             view analyst.busy_hours depends on table reports.page_loads; \
             campaign-elt never drops objects it did not create"
        ),
        "{message}"
    );
    // A full refresh rebuilds everything and refuses just the same.
    let output = project.run(1, &["refresh", "--full-refresh"]);
    assert!(
        stderr(&output).contains("view analyst.busy_hours depends on table reports.page_loads"),
        "{}",
        stderr(&output)
    );

    // The analyst's view is still there and still reads the old report.
    assert_rows_eq(
        &rows(
            &client,
            "select customer_id, page_loads from analyst.busy_hours",
        )
        .await,
        &["1|3", "3|2"],
    );
    assert_rows_eq(&report_rows(&client).await, FIRST_NIGHT_REPORTS);

    // Once the analyst moves their view out of the way, the rebuild goes through.
    client
        .batch_execute("drop view analyst.busy_hours")
        .await
        .unwrap();
    let (rebuilt, _) = refresh_json(&project, &[]);
    assert_eq!(rebuilt, ["reports.page_loads"]);
}

#[tokio::test]
async fn a_table_the_tool_did_not_create_is_never_dropped() {
    let project = Project::new().await;
    project.first_night();
    let client = project.db.client().await;
    client
        .batch_execute(
            "create table reports.analyst_notes (note text);
             insert into reports.analyst_notes values ('keep me');",
        )
        .await
        .unwrap();
    let notes = || async {
        rows(
            &project.db.client().await,
            "select note from reports.analyst_notes",
        )
        .await
    };

    // A full rebuild drops and re-creates every managed relation, and only those.
    refresh_json(&project, &["--full-refresh"]);
    assert_eq!(notes().await, ["keep me"]);

    // A file that would take its name fails, naming the file; the table is untouched.
    project.write(
        "reports/analyst_notes.sql",
        "-- materialized: table\nselect 1 as note\n",
    );
    let output = project.run(1, &["refresh"]);
    assert!(
        stderr(&output)
            .contains("reports/analyst_notes.sql: relation \"analyst_notes\" already exists"),
        "{}",
        stderr(&output)
    );
    assert_eq!(notes().await, ["keep me"]);

    // Removing that file again does not drop the analyst's table: the tool never created it.
    project.remove("reports/analyst_notes.sql");
    let (_, dropped) = refresh_json(&project, &[]);
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(notes().await, ["keep me"]);
    assert_rows_eq(&report_rows(&client).await, FIRST_NIGHT_REPORTS);
}

#[tokio::test]
async fn new_files_build_in_dependency_order_whatever_their_names() {
    let project = Project::new().await;
    project.first_night();
    // `aaa_…` sorts first but reads `zzz_…`, which reads a report.
    project.write(
        "reports/aaa_busiest_customer.sql",
        "-- materialized: view\n\
         select customer_id, page_loads\n\
         from reports.zzz_customer_page_loads\n\
         order by page_loads desc, customer_id\n\
         limit 1\n",
    );
    project.write(
        "reports/zzz_customer_page_loads.sql",
        "-- materialized: table\n\
         select customer_id, sum(page_loads)::bigint as page_loads\n\
         from reports.page_loads\n\
         group by customer_id\n",
    );
    let (rebuilt, _) = refresh_json(&project, &[]);
    assert_eq!(
        rebuilt,
        [
            "reports.zzz_customer_page_loads",
            "reports.aaa_busiest_customer"
        ]
    );
    let client = project.db.client().await;
    assert_eq!(
        rows(&client, "select * from reports.aaa_busiest_customer").await,
        ["1|4"]
    );

    // Editing the upstream file rebuilds the downstream one too (a view on a table is dropped
    // with it, so it must be re-created after it).
    project.edit(
        "reports/zzz_customer_page_loads.sql",
        "from reports.page_loads\n",
        "from reports.page_loads\nwhere customer_id <> 1\n",
    );
    let (rebuilt, _) = refresh_json(&project, &[]);
    assert_eq!(
        rebuilt,
        [
            "reports.zzz_customer_page_loads",
            "reports.aaa_busiest_customer"
        ]
    );
    assert_eq!(
        rows(&client, "select * from reports.aaa_busiest_customer").await,
        ["3|3"]
    );
}

#[tokio::test]
async fn a_materialized_view_is_refreshed_after_each_load_concurrently_with_a_unique_key() {
    let project = Project::new().await;
    project.write(
        "reports/customer_page_loads.sql",
        "-- materialized: materialized view\n\
         -- unique_key: customer_id\n\
         select customer_id, sum(page_loads)::bigint as page_loads\n\
         from reports.page_loads\n\
         group by customer_id\n",
    );
    project.write(
        "reports/customer_clicks.sql",
        "-- materialized: materialized view\n\
         select customer_id, sum(clicks)::bigint as clicks\n\
         from reports.clicks\n\
         group by customer_id\n",
    );
    project.first_night();
    let client = project.db.client().await;
    assert_rows_eq(
        &rows(&client, "select * from reports.customer_page_loads").await,
        &["1|4", "2|1", "3|3"],
    );
    let kind: String = client
        .query_one(
            "select relkind::text from pg_class where oid = 'reports.customer_page_loads'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "m");

    let plan = stdout(&project.run(0, &["refresh", "--dry-run"]));
    assert!(
        plan.contains("-- reports/customer_page_loads.sql (refresh)\nrefresh materialized view concurrently \"reports\".\"customer_page_loads\";"),
        "{plan}"
    );
    assert!(
        plan.contains("-- reports/customer_clicks.sql (refresh)\nrefresh materialized view \"reports\".\"customer_clicks\";"),
        "{plan}"
    );

    // A reader in the middle of a transaction on the materialized view does not block the
    // nightly refresh (CONCURRENTLY takes no lock that conflicts with reads).
    let reader = project.db.client().await;
    reader
        .batch_execute("begin; select * from reports.customer_page_loads;")
        .await
        .unwrap();
    let mut nightly = campaign_elt()
        .args([
            "run",
            "--database-url",
            &project.db.url,
            "--views-dir",
            project.views_dir(),
            &fixture("second_night.jsonl"),
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = nightly.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = nightly.kill();
            let _ = nightly.wait();
            panic!("the refresh waited for a reader of the materialized view");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    reader.batch_execute("commit").await.unwrap();

    // The new night's data shows up in both materialized views.
    assert_rows_eq(
        &rows(&client, "select * from reports.customer_page_loads").await,
        &["1|5", "2|1", "3|3", "4|1", "5|1"],
    );
    assert_rows_eq(
        &rows(&client, "select * from reports.customer_clicks").await,
        &["1|5", "2|1", "4|1", "5|1"],
    );
}

/// The comment and the first five words of every statement of a `--dry-run` output.
fn plan_outline(plan: &str) -> Vec<String> {
    let mut outline = Vec::new();
    for mut chunk in plan.split(";\n\n") {
        // What the tool does itself between statements: a comment line of its own.
        while let Some((note, rest)) = chunk
            .split_once("\n\n")
            .filter(|(note, _)| note.starts_with("-- campaign-elt:") && !note.contains('\n'))
        {
            outline.push(format!("{note} | "));
            chunk = rest;
        }
        let mut lines = chunk.lines();
        let comment = lines.next().unwrap_or_default();
        let words: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .take(5)
            .collect();
        outline.push(format!("{comment} | {}", words.join(" ")));
    }
    outline
}

async fn database_state(db: &TestDatabase) -> Vec<String> {
    let client = db.client().await;
    let mut state = Vec::new();
    for query in [
        "select relation_name, materialized, checksum, built_at::text from elt.managed_relations",
        "select 'events', count(*) from elt.events",
        "select 'loads', count(*) from elt.loads",
        "select 'runs', count(*) from elt.runs",
        "select 'refreshes', count(*) from elt.refreshes",
        "select 'stale_keys', count(*) from elt.stale_keys",
        "select 'settings', click_through_window_seconds from elt.settings",
        "select n.nspname, c.relname, c.relkind::text from pg_class as c inner join pg_namespace as n on n.oid = c.relnamespace where n.nspname in ('staging', 'intermediate', 'reports')",
    ] {
        state.extend(rows(&client, query).await);
    }
    state.extend(report_rows(&client).await);
    state
}

#[tokio::test]
async fn dry_run_prints_the_statements_in_order_and_changes_nothing() {
    let project = Project::new().await;
    project.first_night();
    project.edit(
        "reports/page_loads.sql",
        "-- owner: analytics",
        "-- owner: analytics (reviewed)",
    );
    project.write(
        "reports/daily_click_through_rate.sql",
        &daily_click_through_rate(),
    );
    let before = database_state(&project.db).await;

    let refresh = project.run(0, &["refresh", "--dry-run"]);
    let run = project.run(
        0,
        &[
            "run",
            "--dry-run",
            "--click-through-window-seconds",
            "300",
            &fixture("second_night.jsonl"),
        ],
    );
    assert!(
        stderr(&run).contains("nothing was loaded or changed"),
        "{}",
        stderr(&run)
    );
    assert_eq!(database_state(&project.db).await, before);
    let plan = stdout(&refresh);
    assert_eq!(stdout(&run), plan, "run --dry-run prints the refresh");

    let claim = "-- campaign-elt (claim the queued stale keys as stale_ranges)";
    let hourly = "-- intermediate/int_customer_hourly.sql (refresh)";
    let page_loads = "-- reports/page_loads.sql (changed)";
    let daily = "-- reports/daily_click_through_rate.sql (new)";
    let delta = "-- intermediate/int_customer_hourly.delta.sql (the new events' delta)";
    let scope = "create or replace temporary view";
    // A contract relation keeps the rows of the stale keys, refreshes them and records the
    // published rows that changed.
    let refreshed = |file: &str, relation: &str| {
        let kept = format!("\"elt_published_reports_{relation}\"");
        [
            format!("-- {file} (refresh) | {scope}"),
            format!("-- {file} (refresh) | {scope}"),
            format!("-- {file} (refresh) | drop table if exists {kept}"),
            format!("-- {file} (refresh) | create temporary table {kept} on"),
            format!("-- {file} (refresh) | delete from \"reports\".\"{relation}\" as target"),
            format!("-- {file} (refresh) | insert into \"reports\".\"{relation}\""),
            format!("-- {file} (refresh) | insert into elt_restatements (relation, customer_id,"),
            format!("-- {file} (refresh) | drop table {kept}"),
        ]
    };
    let kept_page_loads = "\"elt_published_reports_page_loads\"";
    let mut expected = vec![
        format!("{claim} | create temporary table elt_queued_ranges on"),
        format!("{claim} | analyze elt_queued_ranges"),
        format!("{claim} | lock table elt.unrefreshed_events in exclusive"),
        format!("{claim} | create temporary table elt_all_ranges on"),
        format!("{claim} | analyze elt_all_ranges"),
        format!("{claim} | {scope}"),
        format!("{claim} | {scope}"),
        format!("{claim} | create temporary table elt_restatements ("),
        format!("{page_loads} | drop table if exists {kept_page_loads}"),
        format!("{page_loads} | create temporary table {kept_page_loads} on"),
        format!("{page_loads} | drop table if exists \"reports\".\"page_loads\""),
        "-- campaign-elt: copy elt.unrefreshed_events into changed_events | ".into(),
        format!("{delta} | drop table if exists elt_model_delta"),
        format!("{delta} | create temporary table elt_model_delta on"),
        format!("{delta} | analyze elt_model_delta"),
        "-- campaign-elt: add elt_model_delta to intermediate.int_customer_hourly (insert its keys; \
         add each other column to the row's), and queue its keys for the relations downstream | "
            .into(),
        format!("{hourly} | {scope}"),
        format!("{hourly} | {scope}"),
        format!("{hourly} | delete from \"intermediate\".\"int_customer_hourly\" as target"),
        format!("{hourly} | insert into \"intermediate\".\"int_customer_hourly\""),
    ];
    expected.extend(refreshed(
        "reports/click_through_rate.sql",
        "click_through_rate",
    ));
    expected.extend(refreshed("reports/clicks.sql", "clicks"));
    expected.extend([
        format!("{page_loads} | create schema if not exists"),
        format!("{page_loads} | {scope}"),
        format!("{page_loads} | {scope}"),
        format!("{page_loads} | create table \"reports\".\"page_loads\" as"),
        format!("{page_loads} | create unique index \"reports_page_loads_unique_key\" on"),
        format!("{page_loads} | drop table if exists elt_changed_rows"),
        format!("{page_loads} | create temporary table elt_changed_rows on"),
        format!("{page_loads} | insert into elt_restatements (relation, customer_id,"),
        format!("{page_loads} | insert into elt_restatements (relation, changed_rows,"),
        format!("{page_loads} | drop table {kept_page_loads}"),
    ]);
    expected.extend(refreshed(
        "reports/unique_user_clicks.sql",
        "unique_user_clicks",
    ));
    expected.extend([
        format!("{daily} | create schema if not exists"),
        format!("{daily} | create table \"reports\".\"daily_click_through_rate\" as"),
        "-- campaign-elt: record the rebuilt files in elt.managed_relations and the refresh in \
         elt.refreshes, truncate elt.unrefreshed_events, commit, then run 5 data test(s) | "
            .into(),
    ]);
    assert_eq!(plan_outline(&plan), expected, "{plan}");

    // The real refresh does what the dry run said.
    let (rebuilt, dropped) = refresh_json(&project, &[]);
    assert_eq!(
        rebuilt,
        ["reports.page_loads", "reports.daily_click_through_rate"]
    );
    assert!(dropped.is_empty());
}

#[tokio::test]
async fn a_view_file_without_the_header_fails_with_a_clear_message() {
    let project = Project::new().await;
    project.write(
        "reports/no_header.sql",
        "-- grain: one row\nselect 1 as x\n",
    );
    for args in [
        &["refresh"][..],
        &["refresh", "--dry-run"],
        &[
            "run",
            "--max-line-bytes",
            "2048",
            &fixture("first_night.jsonl"),
        ],
    ] {
        let output = project.run(1, args);
        assert!(
            stderr(&output).contains(
                "reports/no_header.sql: missing the header line `-- materialized: view|table|incremental|materialized view`"
            ),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // Nothing was loaded: the view files are read before anything else happens.
    let events = count(
        &project.db.client().await,
        "select count(*) from elt.events",
    )
    .await;
    assert_eq!(events, 0);
}

/// The first night in a copy of the database, one offending row planted by `plant`, then
/// `campaign-elt test --json`: the names of the tests that failed.
async fn failing_tests_after(first_night: &TestDatabase, plant: &str) -> Vec<String> {
    let db = first_night.copy().await;
    db.client().await.batch_execute(plant).await.unwrap();
    let output = db.run(&["test", "--json"]);
    let summary = stdout_json(&output);
    summary["data_test_failures"]
        .as_array()
        .unwrap_or_else(|| panic!("no data_test_failures in {summary}"))
        .iter()
        .map(|failure| failure["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_shipped_data_test_fails_on_the_rows_it_forbids_and_only_it() {
    let first_night = TestDatabase::new().await;
    first_night.run_first_night();
    first_night.run_expecting(0, &["test"]);
    // One report row made wrong as each test describes (any one row of the right kind).
    let one_row = |relation: &str, condition: &str| {
        format!("(select ctid from {relation} where {condition} limit 1)")
    };
    let cases = [
        (
            "reports_have_unique_keys",
            "drop index reports.reports_clicks_unique_key;
             insert into reports.clicks select * from reports.clicks limit 1"
                .to_owned(),
        ),
        (
            "reports_have_no_null_counts",
            format!(
                "update reports.unique_user_clicks set unique_user_clicks = null where ctid = {}",
                one_row("reports.unique_user_clicks", "true")
            ),
        ),
        (
            "reports_have_positive_counts",
            format!(
                "update reports.page_loads set page_loads = 0 where ctid = {}",
                one_row("reports.page_loads", "true")
            ),
        ),
        (
            "report_hours_on_utc_hour_grid",
            format!(
                "update reports.page_loads set hour = hour + interval '30 minutes' where ctid = {}",
                one_row("reports.page_loads", "true")
            ),
        ),
        (
            "related_clicks_within_clicks",
            format!(
                "update reports.click_through_rate set related_clicks = related_clicks + 1000 \
                 where ctid = {}",
                one_row("reports.click_through_rate", "page_loads > 0")
            ),
        ),
    ];
    for (test, plant) in cases {
        assert_eq!(
            failing_tests_after(&first_night, &plant).await,
            [test],
            "after: {plant}"
        );
    }
}

/// A per-key data test of the project's views: at most two clicks per customer and hour.
const AT_MOST_TWO_CLICKS: &str = "-- test: at most two clicks per customer and hour
-- sources: reports.clicks
-- scope: per key

select customer_id, hour, clicks from reports.clicks where clicks > 2
";

/// Per-key tests may read only the refreshed keys however many of the rows they are.
const ANY_SHARE_OF_KEYS: (&str, &str) = ("CAMPAIGN_ELT_TEST_KEYS_BELOW_SHARE", "1");

/// `run --json FILE` on the project's views with `env`, expecting `code`: (data tests run on the
/// refreshed keys only, keys they read, failing tests with their offending rows).
fn run_night(
    project: &Project,
    code: i32,
    path: &std::path::Path,
    env: &[(&str, &str)],
) -> (u64, Option<i64>, Vec<(String, u64)>) {
    let args = [
        "run",
        "--json",
        path.to_str().unwrap(),
        "--views-dir",
        project.views_dir(),
    ];
    let summary = stdout_json(&project.db.run_with_env_expecting(code, &args, env));
    let failures = summary["data_test_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|failure| {
            (
                failure["name"].as_str().unwrap().to_owned(),
                failure["offending_rows"].as_u64().unwrap(),
            )
        })
        .collect();
    (
        summary["data_tests_on_refreshed_keys"].as_u64().unwrap(),
        summary["data_tested_keys"].as_i64(),
        failures,
    )
}

#[tokio::test]
async fn after_a_refresh_per_key_tests_read_the_keys_it_recomputed_and_everything_when_they_must() {
    let project = Project::new().await;
    project.write("tests/at_most_two_clicks.sql", AT_MOST_TWO_CLICKS);
    let directory = tempfile::tempdir().unwrap();
    let night = |name: &str, lines: &[EventLine]| {
        let path = directory.path().join(name);
        write_lines(&path, lines);
        path
    };
    let shipped = 5;

    // Night 1: new tests read every row.
    let first = night(
        "first.jsonl",
        &[
            click("a1", 1, 10, "2022-01-01T10:05:00Z"),
            click("b1", 2, 20, "2022-01-01T11:05:00Z"),
            click("c1", 3, 30, "2022-01-01T12:05:00Z"),
        ],
    );
    assert_eq!(
        run_night(&project, 0, &first, &[ANY_SHARE_OF_KEYS]),
        (0, None, vec![])
    );

    // An offending row outside what the next night changes (nothing the tool wrote).
    project
        .db
        .client()
        .await
        .batch_execute("update reports.clicks set clicks = 99 where customer_id = 2")
        .await
        .unwrap();

    // Night 2 changes one key, which now offends: every test reads only that key, so the
    // planted row is not seen, the new offence is.
    let second = night(
        "second.jsonl",
        &[
            click("a2", 1, 11, "2022-01-01T10:15:00Z"),
            click("a3", 1, 12, "2022-01-01T10:25:00Z"),
        ],
    );
    assert_eq!(
        run_night(&project, 4, &second, &[ANY_SHARE_OF_KEYS]),
        (
            shipped + 1,
            Some(1),
            vec![("at_most_two_clicks".to_owned(), 1)]
        )
    );
    // `test` reads every row.
    let summary = stdout_json(&project.run(4, &["test", "--json"]));
    assert_eq!(summary["data_test_failures"][0]["offending_rows"], 2);
    assert_eq!(summary["data_tests_on_refreshed_keys"], 0);

    // Night 3: the test that failed reads every row again; the others the night's key.
    let third = night("third.jsonl", &[click("d1", 4, 40, "2022-01-01T13:05:00Z")]);
    assert_eq!(
        run_night(&project, 4, &third, &[ANY_SHARE_OF_KEYS]),
        (shipped, Some(1), vec![("at_most_two_clicks".to_owned(), 2)])
    );

    // An edited test reads every row once; it then passes.
    project.edit("tests/at_most_two_clicks.sql", "clicks > 2", "clicks > 100");
    let fourth = night(
        "fourth.jsonl",
        &[click("e1", 5, 50, "2022-01-01T14:05:00Z")],
    );
    assert_eq!(
        run_night(&project, 0, &fourth, &[ANY_SHARE_OF_KEYS]),
        (shipped, Some(1), vec![])
    );
    let fifth = night("fifth.jsonl", &[click("f1", 6, 60, "2022-01-01T15:05:00Z")]);
    assert_eq!(
        run_night(&project, 0, &fifth, &[ANY_SHARE_OF_KEYS]),
        (shipped + 1, Some(1), vec![])
    );

    // By default they read every row when the keys are more than a few percent of the rows
    // (here one key of six rows), and always with a share of 0.
    let sixth = night("sixth.jsonl", &[click("g1", 6, 61, "2022-01-01T15:15:00Z")]);
    assert_eq!(run_night(&project, 0, &sixth, &[]), (0, None, vec![]));
    let share_zero = [("CAMPAIGN_ELT_TEST_KEYS_BELOW_SHARE", "0")];
    let seventh = night(
        "seventh.jsonl",
        &[click("h1", 6, 62, "2022-01-01T15:25:00Z")],
    );
    assert_eq!(
        run_night(&project, 0, &seventh, &share_zero),
        (0, None, vec![])
    );
    let eighth = night(
        "eighth.jsonl",
        &[click("h2", 6, 63, "2022-01-01T15:35:00Z")],
    );
    let refused = project.db.run_with_env_expecting(
        1,
        &[
            "run",
            eighth.to_str().unwrap(),
            "--views-dir",
            project.views_dir(),
        ],
        &[("CAMPAIGN_ELT_TEST_KEYS_BELOW_SHARE", "some")],
    );
    assert!(
        stderr(&refused).contains("CAMPAIGN_ELT_TEST_KEYS_BELOW_SHARE=\"some\""),
        "{}",
        stderr(&refused)
    );
    // … before it loaded anything.
    let client = project.db.client().await;
    assert_eq!(
        count(
            &client,
            "select count(*) from elt.events where event_id_text = 'h2'"
        )
        .await,
        0
    );

    // A rebuild (here a full refresh, which also recomputes the planted row) makes every test
    // read every row.
    let summary = stdout_json(&project.db.run_with_env_expecting(
        0,
        &[
            "refresh",
            "--full-refresh",
            "--json",
            "--views-dir",
            project.views_dir(),
        ],
        &[ANY_SHARE_OF_KEYS],
    ));
    assert_eq!(summary["data_tests_run"], shipped + 1);
    assert_eq!(summary["data_tests_on_refreshed_keys"], 0);
    assert_eq!(summary["data_tested_keys"], serde_json::Value::Null);
}
