//! Restatements (README, "Restatements"): when a refresh changes or removes a report row an
//! earlier refresh had published, `elt.restatements` records the relation, the key, the old and
//! new values, the refresh and the cause; a first appearance is not a restatement. Each test
//! computes the expected restatements in SQL from copies of the reports taken before.

mod common;

use common::{copy_of_views, count, fixture, generate, rows, stdout_json, TestDatabase};

const RELATIONS: [&str; 4] = [
    "page_loads",
    "clicks",
    "unique_user_clicks",
    "click_through_rate",
];

/// Copies the four reports into `public.before_<name>`.
async fn keep_the_reports(client: &tokio_postgres::Client) {
    for name in RELATIONS {
        client
            .batch_execute(&format!(
                "drop table if exists public.before_{name};
                 create table public.before_{name} as select * from reports.{name}"
            ))
            .await
            .unwrap();
    }
}

/// The rows of the kept copies that the reports no longer hold as they were: what the
/// restatements must be, as `relation|customer|hour|removed`.
async fn expected_restatements(client: &tokio_postgres::Client) -> Vec<String> {
    let mut expected = Vec::new();
    for name in RELATIONS {
        expected.extend(
            rows(
                client,
                &format!(
                    "select 'reports.{name}', before.customer_id, before.hour,
                         (now_row.customer_id is null)::text
                     from public.before_{name} as before
                     left join reports.{name} as now_row
                         on now_row.customer_id = before.customer_id and now_row.hour = before.hour
                     where now_row is distinct from before"
                ),
            )
            .await,
        );
    }
    expected.sort();
    expected
}

/// The restatements one refresh recorded, as `relation|customer|hour|removed`, and their causes.
async fn recorded(client: &tokio_postgres::Client, refresh_id: i64) -> (Vec<String>, Vec<String>) {
    let recorded = rows(
        client,
        &format!(
            "select relation, customer_id, hour, (new_values is null)::text
             from elt.restatements where refresh_id = {refresh_id}"
        ),
    )
    .await;
    let causes = rows(
        client,
        &format!("select distinct cause from elt.restatements where refresh_id = {refresh_id}"),
    )
    .await;
    (recorded, causes)
}

fn refresh_id(summary: &serde_json::Value) -> i64 {
    summary["refresh"]["refresh_id"].as_i64().unwrap()
}

#[tokio::test]
async fn late_lines_and_an_unload_restate_exactly_the_published_rows_they_change() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    let client = db.client().await;
    keep_the_reports(&client).await;
    let second = db.run_expecting(0, &["run", "--json", &fixture("second_night.jsonl")]);
    let summary = stdout_json(&second);
    let (restated, causes) = recorded(&client, refresh_id(&summary)).await;
    let expected = expected_restatements(&client).await;
    assert!(
        !expected.is_empty(),
        "the second night changes published hours"
    );
    assert_eq!(restated, expected);
    assert_eq!(causes, ["late lines"]);
    assert_eq!(summary["refresh"]["restated_rows"], expected.len());
    let new_hours = count(
        &client,
        "select count(*) from reports.click_through_rate as now_row
         where not exists (select 1 from public.before_click_through_rate as before
                           where before.customer_id = now_row.customer_id and before.hour = now_row.hour)",
    )
    .await;
    assert!(
        new_hours > 0,
        "the night also adds hours, which are no restatements"
    );
    let values = rows(
        &client,
        "select old_values::text || ' -> ' || new_values::text from elt.restatements
         where relation = 'reports.page_loads' and customer_id = 1 and hour = '2022-01-01 01:00+00'",
    )
    .await;
    assert_eq!(values, [r#"{"page_loads": 3} -> {"page_loads": 4}"#]);

    // Unloading the second night puts the rows back and removes the hours it added.
    keep_the_reports(&client).await;
    let load_id = count(&client, "select max(load_id) from elt.loads")
        .await
        .to_string();
    let unload = stdout_json(&db.run_expecting(0, &["unload", "--json", "--load-id", &load_id]));
    let (restated, causes) = recorded(&client, refresh_id(&unload)).await;
    let expected = expected_restatements(&client).await;
    assert_eq!(restated, expected);
    assert_eq!(causes, ["unload"]);
    assert!(
        expected.iter().any(|row| row.ends_with("|true")),
        "rows that disappear are restatements: {expected:?}"
    );
}

#[tokio::test]
async fn a_settings_change_restates_what_it_changes_and_a_full_refresh_that_changes_nothing_restates_nothing(
) {
    let db = TestDatabase::new().await;
    db.run_first_night();
    let client = db.client().await;
    let unchanged = stdout_json(&db.run_expecting(0, &["refresh", "--json", "--full-refresh"]));
    assert_eq!(unchanged["refresh"]["restated_rows"], 0);
    keep_the_reports(&client).await;
    let changed = stdout_json(&db.run_expecting(
        0,
        &[
            "refresh",
            "--json",
            "--full-refresh",
            "--click-through-window-seconds",
            "60",
        ],
    ));
    let (restated, causes) = recorded(&client, refresh_id(&changed)).await;
    let expected = expected_restatements(&client).await;
    assert!(
        !expected.is_empty(),
        "a shorter window relates fewer clicks"
    );
    assert_eq!(restated, expected);
    assert_eq!(causes, ["settings change"]);
}

#[tokio::test]
async fn an_edited_model_restates_its_rows_and_a_large_rebuild_records_one_summary_row() {
    let db = TestDatabase::new().await;
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("many.jsonl");
    // Over 10,000 hourly rows of page loads: 1,000 customers over about 100 hours.
    generate(
        &sample,
        &[
            "--lines",
            "40000",
            "--customers",
            "1000",
            "--users",
            "5000",
            "--events-per-hour",
            "400",
        ],
    );
    db.run_expecting(0, &["run", "--quiet", sample.to_str().unwrap()]);
    let client = db.client().await;
    let click_rows = count(&client, "select count(*) from reports.clicks").await;
    let page_load_rows = count(&client, "select count(*) from reports.page_loads").await;
    assert!(page_load_rows > 10_000, "{page_load_rows} rows");

    let views = copy_of_views();
    let edit = |file: &str, from: &str, to: &str| {
        let path = views.path().join(file);
        let sql = std::fs::read_to_string(&path).unwrap();
        assert!(sql.contains(from), "{file} has {from}");
        std::fs::write(&path, sql.replacen(from, to, 1)).unwrap();
    };
    let views_dir = views.path().to_str().unwrap();
    edit(
        "reports/page_loads.sql",
        "        page_loads\n",
        "        page_loads * 2 as page_loads\n",
    );
    let edited =
        stdout_json(&db.run_expecting(0, &["refresh", "--json", "--views-dir", views_dir]));
    let summary_rows = rows(
        &client,
        &format!(
            "select relation || ' ' || coalesce(customer_id::text, '-') || ' ' || changed_rows || ' ' || cause
             from elt.restatements where refresh_id = {}",
            refresh_id(&edited)
        ),
    )
    .await;
    assert_eq!(
        summary_rows,
        [format!(
            "reports.page_loads - {page_load_rows} edited model"
        )]
    );
    assert_eq!(edited["refresh"]["restated_rows"], page_load_rows);

    // Below the limit each row is recorded: a change to the clicks of one customer.
    edit(
        "reports/clicks.sql",
        "        clicks\n",
        "        case when customer_id = 12 then clicks + 1 else clicks end as clicks\n",
    );
    keep_the_reports(&client).await;
    let edited =
        stdout_json(&db.run_expecting(0, &["refresh", "--json", "--views-dir", views_dir]));
    let (restated, causes) = recorded(&client, refresh_id(&edited)).await;
    assert_eq!(restated, expected_restatements(&client).await);
    assert_eq!(causes, ["edited model"]);
    let customer_12 = count(
        &client,
        "select count(*) from reports.clicks where customer_id = 12",
    )
    .await;
    assert!(customer_12 > 0 && customer_12 < click_rows);
    assert_eq!(restated.len() as i64, customer_12);
}

#[tokio::test]
async fn a_model_opts_in_by_its_header_and_only_an_incremental_one_can() {
    let db = TestDatabase::new().await;
    let views = copy_of_views();
    let clicks = std::fs::read_to_string(views.path().join("reports/clicks.sql")).unwrap();
    let own = clicks
        .replace(
            "-- contract:",
            "-- restatements: recorded\n-- was the contract of clicks:",
        )
        .replace("-- owner: analytics", "-- owner: an analyst");
    std::fs::write(views.path().join("reports/my_clicks.sql"), &own).unwrap();
    let views_dir = views.path().to_str().unwrap();
    let night = fixture("first_night.jsonl");
    db.run_expecting(
        0,
        &[
            "run",
            "--max-line-bytes",
            "2048",
            "--views-dir",
            views_dir,
            &night,
        ],
    );
    db.run_expecting(
        0,
        &[
            "run",
            "--views-dir",
            views_dir,
            &fixture("second_night.jsonl"),
        ],
    );
    let client = db.client().await;
    let mine = rows(
        &client,
        "select customer_id, hour, old_values::text, new_values::text from elt.restatements
         where relation = 'reports.my_clicks'",
    )
    .await;
    let contract = rows(
        &client,
        "select customer_id, hour, old_values::text, new_values::text from elt.restatements
         where relation = 'reports.clicks'",
    )
    .await;
    assert_eq!(
        mine, contract,
        "the copy restates as the contract relation does"
    );

    std::fs::write(
        views.path().join("reports/a_view.sql"),
        "-- materialized: view\n-- restatements: recorded\nselect 1 as one\n",
    )
    .unwrap();
    let refused = db.run_expecting(1, &["refresh", "--views-dir", views_dir]);
    assert!(
        common::stderr(&refused)
            .contains("needs an incremental relation keyed by customer_id and hour"),
        "{}",
        common::stderr(&refused)
    );
}

#[tokio::test]
async fn status_the_html_report_and_purge_restatements_see_them() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    db.run_expecting(0, &["run", &fixture("second_night.jsonl")]);
    let client = db.client().await;
    let total = count(
        &client,
        "select sum(changed_rows)::bigint from elt.restatements",
    )
    .await;
    assert!(total > 0);
    let status = stdout_json(&db.run_expecting(0, &["status", "--json"]));
    assert_eq!(status["restated_rows"], total);
    assert_eq!(
        status["restatements"].as_array().unwrap().len() as i64,
        total.min(10)
    );
    let human = common::stdout(&db.run_expecting(0, &["status"]));
    assert!(
        human.contains(&format!("restated by later refreshes: {total}")),
        "{human}"
    );

    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("report.html");
    db.run_expecting(
        0,
        &[
            "report",
            "--format",
            "html",
            "--output",
            html_path.to_str().unwrap(),
        ],
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.contains(
            "reports.page_loads: page_loads 3 -&gt; 4 for customer 1 at 2022-01-01 01:00 UTC in the refresh of"
        ),
        "{}",
        &html[html.find("<h3>Restatements").unwrap()..]
    );

    let kept =
        stdout_json(&db.run_expecting(0, &["purge-restatements", "--json", "--older-than", "1d"]));
    assert_eq!(kept["purged_restatements"], 0);
    let purged =
        stdout_json(&db.run_expecting(0, &["purge-restatements", "--json", "--older-than", "0s"]));
    assert_eq!(purged["purged_restatements"], total);
    assert_eq!(purged["refreshes"], 1);
    assert_eq!(
        count(&client, "select count(*) from elt.restatements").await,
        0
    );
    db.run_expecting(2, &["purge-restatements"]);
}
