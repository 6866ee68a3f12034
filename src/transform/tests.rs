//! Tests of reading view files, their order and the refresh plan.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::*;
use super::refresh::*;
use super::views::*;

fn file(path: &str, sql: &str) -> (String, String) {
    (path.to_owned(), sql.to_owned())
}

#[test]
fn orders_models_by_dependency_and_finds_tests() {
    let views = ViewSet::from_files(
        "test".into(),
        vec![
            file(
                "reports/b.sql",
                "-- materialized: view\nselect * from intermediate.a",
            ),
            file(
                "intermediate/a.sql",
                "-- materialized: table\nselect 1 as x",
            ),
            file(
                "reports/c.sql",
                "-- materialized: view\nselect * from reports.b join intermediate.a using (x)",
            ),
            file("tests/no_rows.sql", "select 1 where false"),
        ],
    )
    .unwrap();
    let order: Vec<&str> = views.models.iter().map(|m| m.relation.as_str()).collect();
    assert_eq!(order, ["intermediate.a", "reports.b", "reports.c"]);
    assert_eq!(views.tests.len(), 1);
    assert_eq!(views.models[2].depends_on.len(), 2);
}

#[test]
fn ignores_names_in_comments_strings_and_longer_names() {
    let views = ViewSet::from_files(
        "test".into(),
        vec![
            file("reports/a.sql", "-- materialized: view\nselect 1 as x"),
            file(
                "reports/b.sql",
                "-- materialized: view\n-- reads reports.a\nselect 'reports.a' as y from reports.a_b /* reports.a */",
            ),
            file("reports/a_b.sql", "-- materialized: view\nselect 1 as x"),
        ],
    )
    .unwrap();
    let b = views
        .models
        .iter()
        .find(|m| m.relation == "reports.b")
        .unwrap();
    assert_eq!(b.depends_on.iter().collect::<Vec<_>>(), ["reports.a_b"]);
}

#[test]
fn rejects_cycles_missing_headers_and_bad_names() {
    let cycle = ViewSet::from_files(
        "test".into(),
        vec![
            file(
                "reports/a.sql",
                "-- materialized: view\nselect * from reports.b",
            ),
            file(
                "reports/b.sql",
                "-- materialized: view\nselect * from reports.a",
            ),
        ],
    );
    assert!(cycle.unwrap_err().to_string().contains("cycle"));
    let missing = ViewSet::from_files("test".into(), vec![file("reports/a.sql", "select 1")]);
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("missing the header"));
    let unknown = ViewSet::from_files(
        "test".into(),
        vec![file("reports/a.sql", "-- materialized: cube\nselect 1")],
    );
    assert!(unknown
        .unwrap_err()
        .to_string()
        .contains("unknown materialization"));
    let bad_name = ViewSet::from_files(
        "test".into(),
        vec![file(
            "reports/Bad-Name.sql",
            "-- materialized: view\nselect 1",
        )],
    );
    assert!(bad_name.is_err());
    let nested = ViewSet::from_files(
        "test".into(),
        vec![file("a/b/c.sql", "-- materialized: view\nselect 1")],
    );
    assert!(nested.is_err());
}

#[test]
fn incremental_models_are_keyed_by_customer_and_hour() {
    let views = ViewSet::from_files(
        "test".into(),
        vec![file(
            "reports/a.sql",
            "-- materialized: incremental\nselect 1 as customer_id, now() as hour;\n",
        )],
    )
    .unwrap();
    assert_eq!(views.models[0].unique_key, ["customer_id", "hour"]);
    assert!(!views.models[0].sql.ends_with(';'));
    let bad = ViewSet::from_files(
        "test".into(),
        vec![file(
            "reports/a.sql",
            "-- materialized: incremental\n-- unique_key: customer_id\nselect 1",
        )],
    );
    assert!(bad.is_err());
}

#[test]
fn maps_error_positions_to_file_lines() {
    let sql = "select 1\nfrom nowhere";
    let statement = format!("create table x as\n{sql}");
    let position = statement.find("nowhere").unwrap() + 1;
    assert_eq!(line_in_model(&statement, sql, position), Some(2));
}

fn plan_views() -> ViewSet {
    ViewSet::from_files(
        "test".into(),
        vec![
            file("staging/base.sql", "-- materialized: view\nselect 1 as x"),
            file(
                "intermediate/hourly.sql",
                "-- materialized: incremental\nselect * from staging.base",
            ),
            file(
                "reports/daily.sql",
                "-- materialized: table\nselect * from intermediate.hourly",
            ),
            file(
                "reports/totals.sql",
                "-- materialized: materialized view\n-- unique_key: customer_id\nselect * from intermediate.hourly",
            ),
            file(
                "reports/plain.sql",
                "-- materialized: materialized view\nselect 1 as x",
            ),
        ],
    )
    .unwrap()
}

fn recorded(views: &ViewSet) -> Vec<ManagedRelation> {
    views
        .models
        .iter()
        .rev()
        .map(|model| ManagedRelation {
            relation: model.relation.clone(),
            materialized: model.materialized,
            checksum: model.checksum.clone(),
            source_path: model.path.clone(),
            read_by: BTreeSet::new(),
        })
        .collect()
}

/// `path (why): ` and the first five words of the statement's first line, for every statement
/// of a plan but the tool's own.
fn outline(plan: &RefreshPlan) -> Vec<String> {
    plan.steps
        .iter()
        .flat_map(|step| {
            step.statements.iter().map(move |statement| {
                let first_line = statement.lines().next().unwrap_or_default();
                let words: Vec<&str> = first_line.split_whitespace().take(5).collect();
                format!("{} ({}): {}", step.path, step.why, words.join(" "))
            })
        })
        .filter(|line| !line.starts_with("campaign-elt"))
        .collect()
}

#[test]
fn plans_a_first_build_in_dependency_order() {
    let views = plan_views();
    let plan = plan_refresh(&views, &[], false);
    assert_eq!(plan.steps[0].action, Action::Prepare);
    assert_eq!(
        outline(&plan),
        [
            "reports/plain.sql (new): create schema if not exists",
            "reports/plain.sql (new): create materialized view \"reports\".\"plain\" as",
            "staging/base.sql (new): create schema if not exists",
            "staging/base.sql (new): create view \"staging\".\"base\" as",
            "intermediate/hourly.sql (new): create schema if not exists",
            "intermediate/hourly.sql (new): create or replace temporary view",
            "intermediate/hourly.sql (new): create or replace temporary view",
            "intermediate/hourly.sql (new): create table \"intermediate\".\"hourly\" as",
            "intermediate/hourly.sql (new): create unique index \"intermediate_hourly_unique_key\" on",
            "reports/daily.sql (new): create schema if not exists",
            "reports/daily.sql (new): create table \"reports\".\"daily\" as",
            "reports/totals.sql (new): create schema if not exists",
            "reports/totals.sql (new): create materialized view \"reports\".\"totals\" as",
            "reports/totals.sql (new): create unique index \"reports_totals_unique_key\" on",
        ]
    );
    assert_eq!(plan.rebuilt().len(), 5);
    assert!(plan.dropped().is_empty());
}

#[test]
fn plans_an_unchanged_set_as_refreshes_only() {
    let views = plan_views();
    let plan = plan_refresh(&views, &recorded(&views), false);
    assert_eq!(
        outline(&plan),
        [
            "reports/plain.sql (refresh): refresh materialized view \"reports\".\"plain\"",
            "intermediate/hourly.sql (refresh): create or replace temporary view",
            "intermediate/hourly.sql (refresh): create or replace temporary view",
            "intermediate/hourly.sql (refresh): delete from \"intermediate\".\"hourly\" as target",
            "intermediate/hourly.sql (refresh): insert into \"intermediate\".\"hourly\"",
            "reports/daily.sql (refresh): truncate \"reports\".\"daily\"",
            "reports/daily.sql (refresh): insert into \"reports\".\"daily\"",
            "reports/totals.sql (refresh): refresh materialized view concurrently \"reports\".\"totals\"",
        ]
    );
    assert!(plan.rebuilt().is_empty());
}

#[test]
fn plans_a_change_as_drops_downstream_first_then_builds() {
    let views = plan_views();
    let mut managed = recorded(&views);
    for relation in &mut managed {
        if relation.relation == "intermediate.hourly" {
            relation.checksum = "old".into();
        }
    }
    managed.insert(
        0,
        ManagedRelation {
            relation: "reports.gone".into(),
            materialized: Materialization::View,
            checksum: "x".into(),
            source_path: "reports/gone.sql".into(),
            read_by: BTreeSet::new(),
        },
    );
    let plan = plan_refresh(&views, &managed, false);
    assert_eq!(
        outline(&plan),
        [
            "reports/gone.sql (file removed): drop view if exists \"reports\".\"gone\"",
            "reports/totals.sql (depends on intermediate.hourly): drop materialized view if exists",
            "reports/daily.sql (depends on intermediate.hourly): drop table if exists \"reports\".\"daily\"",
            "intermediate/hourly.sql (changed): drop table if exists \"intermediate\".\"hourly\"",
            "reports/plain.sql (refresh): refresh materialized view \"reports\".\"plain\"",
            "intermediate/hourly.sql (changed): create schema if not exists",
            "intermediate/hourly.sql (changed): create or replace temporary view",
            "intermediate/hourly.sql (changed): create or replace temporary view",
            "intermediate/hourly.sql (changed): create table \"intermediate\".\"hourly\" as",
            "intermediate/hourly.sql (changed): create unique index \"intermediate_hourly_unique_key\" on",
            "reports/daily.sql (depends on intermediate.hourly): create schema if not exists",
            "reports/daily.sql (depends on intermediate.hourly): create table \"reports\".\"daily\" as",
            "reports/totals.sql (depends on intermediate.hourly): create schema if not exists",
            "reports/totals.sql (depends on intermediate.hourly): create materialized view \"reports\".\"totals\" as",
            "reports/totals.sql (depends on intermediate.hourly): create unique index \"reports_totals_unique_key\" on",
        ]
    );
    assert_eq!(plan.dropped(), ["reports.gone"]);
    assert_eq!(
        plan.rebuilt(),
        ["intermediate.hourly", "reports.daily", "reports.totals"]
    );
    let full = plan_refresh(&views, &recorded(&views), true);
    assert_eq!(full.rebuilt().len(), 5);
    assert!(full
        .steps
        .iter()
        .skip(1)
        .all(|step| step.why == Why::FullRefresh));
}

#[test]
fn renders_a_comment_before_every_statement() {
    let views = plan_views();
    let text = plan_refresh(&views, &recorded(&views), false).render();
    let lines: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
    assert!(lines[0].starts_with("-- campaign-elt (claim the queued stale keys"));
    assert!(text.contains(
        "-- reports/totals.sql (refresh)\nrefresh materialized view concurrently \"reports\".\"totals\";\n"
    ));
    // Every statement ends in `;` and a blank line; the next non-empty line is its comment.
    let statements = text.matches(";\n\n").count();
    let comments = text
        .split(";\n\n")
        .filter(|chunk| !chunk.is_empty())
        .filter(|chunk| chunk.starts_with("-- ") && chunk.lines().next().unwrap().ends_with(')'))
        .count();
    assert_eq!(statements, comments);
}

#[test]
fn built_in_views_parse() {
    let views = ViewSet::load(None).unwrap();
    for name in [
        "reports.page_loads",
        "reports.clicks",
        "reports.unique_user_clicks",
        "reports.click_through_rate",
    ] {
        assert!(
            views.models.iter().any(|m| m.relation == name),
            "{name} missing"
        );
    }
    assert!(!views.tests.is_empty());
}

/// A model that declares its stale-keys file beside it (issue 12).
fn model_with_stale_keys(stale_keys_sql: &str) -> Vec<(String, String)> {
    vec![
        file(
            "intermediate/hourly.sql",
            "-- materialized: incremental\n-- stale keys: hourly.stale_keys.sql\nselect 1",
        ),
        file("intermediate/hourly.stale_keys.sql", stale_keys_sql),
    ]
}

#[test]
fn a_declared_stale_keys_file_belongs_to_its_model_and_to_its_checksum() {
    let views =
        ViewSet::from_files("test".into(), model_with_stale_keys("select 1 as a;\n")).unwrap();
    assert_eq!(views.models.len(), 1, "the stale-keys file is not a model");
    let stale_keys = views.models[0].stale_keys.as_ref().unwrap();
    assert_eq!(stale_keys.path, "intermediate/hourly.stale_keys.sql");
    assert_eq!(stale_keys.sql, "select 1 as a");
    assert_eq!(views.stale_key_queries(true).count(), 1);
    let edited =
        ViewSet::from_files("test".into(), model_with_stale_keys("select 2 as a")).unwrap();
    assert_ne!(
        views.models[0].checksum, edited.models[0].checksum,
        "editing the stale-keys file rebuilds its model"
    );
}

#[test]
fn a_missing_stale_keys_file_is_named() {
    let mut files = model_with_stale_keys("select 1");
    files.pop();
    let error = ViewSet::from_files("test".into(), files)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("intermediate/hourly.sql")
            && error.contains("intermediate/hourly.stale_keys.sql is missing"),
        "{error}"
    );
}

#[test]
fn a_stale_keys_file_no_model_declares_is_refused() {
    let mut files = model_with_stale_keys("select 1");
    files[0].1 = "-- materialized: incremental\nselect 1".into();
    let error = ViewSet::from_files("test".into(), files)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no model declares this stale-keys file"),
        "{error}"
    );
}

#[test]
fn the_built_in_attribution_model_declares_its_stale_keys() {
    let views = ViewSet::load(None).unwrap();
    let model = views
        .models
        .iter()
        .find(|model| model.relation == "intermediate.int_customer_hourly")
        .unwrap();
    let stale_keys = model.stale_keys.as_ref().unwrap();
    assert_eq!(
        stale_keys.path,
        "intermediate/int_customer_hourly.stale_keys.sql"
    );
    assert!(stale_keys.sql.contains("changed_events"));
}

#[test]
fn an_older_views_dir_copy_without_the_stale_keys_file_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let intermediate = directory.path().join("intermediate");
    std::fs::create_dir_all(&intermediate).unwrap();
    let built_in = include_str!("../../views/intermediate/int_customer_hourly.sql");
    // Copies made before the delta file existed declare none; that is allowed (the refresh
    // recomputes the keys instead).
    let built_in = &built_in.replace("-- delta: int_customer_hourly.delta.sql\n", "");
    let older = built_in.replace("-- stale keys: int_customer_hourly.stale_keys.sql\n", "");
    assert_ne!(&older, built_in);
    std::fs::write(intermediate.join("int_customer_hourly.sql"), older).unwrap();
    let error = ViewSet::load(Some(directory.path()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("int_customer_hourly.sql: declares no stale-keys file")
            && error.contains("intermediate/int_customer_hourly.stale_keys.sql"),
        "{error}"
    );
    // With the header but without the file: the missing file is named.
    std::fs::write(intermediate.join("int_customer_hourly.sql"), built_in).unwrap();
    let error = ViewSet::load(Some(directory.path()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("int_customer_hourly.stale_keys.sql is missing"),
        "{error}"
    );
}

/// Issue 13: a refresh that rebuilds nothing prepares no range of all customers, which reads
/// `elt.events` whole; one that rebuilds an incremental model does.
#[test]
fn only_a_refresh_that_rebuilds_reads_every_customers_range() {
    let views = ViewSet::load(None).unwrap();
    let prepare = |plan: &RefreshPlan| plan.steps[0].statements.join(";\n");
    let nightly = plan_refresh(&views, &recorded(&views), false);
    assert!(
        !prepare(&nightly).contains("elt.events"),
        "{}",
        prepare(&nightly)
    );
    let full = plan_refresh(&views, &recorded(&views), true);
    assert!(prepare(&full).contains("create temporary table elt_all_ranges"));
    let first = plan_refresh(&views, &[], false);
    assert!(prepare(&first).contains("create temporary table elt_all_ranges"));
}

/// Issue 13: reading the stale keys by scan keeps the stale ranges (only their rows are
/// deleted and re-inserted) but tells the model to read the events as a whole build does; it
/// drops nothing, reads no range of all customers, and applies to the model it was decided for
/// only.
#[test]
fn reading_stale_keys_by_scan_recomputes_only_them_with_the_whole_build_branch() {
    let views = ViewSet::load(None).unwrap();
    let hourly = "intermediate.int_customer_hourly";
    let by_index = plan_refresh(&views, &recorded(&views), false);
    let reads = BTreeMap::from([(hourly.to_owned(), StaleKeysRead::ByScan)]);
    let by_scan = plan_refresh_reading(&views, &recorded(&views), false, &reads);
    let build_of = |plan: &RefreshPlan, relation: &str| -> String {
        plan.steps
            .iter()
            .find(|step| step.relation == relation && matches!(step.action, Action::Build { .. }))
            .map(|step| step.statements.join(";\n"))
            .unwrap()
    };
    assert!(build_of(&by_index, hourly).contains("select false as is_full_refresh"));
    assert!(build_of(&by_scan, hourly).contains("select true as is_full_refresh"));
    assert!(build_of(&by_scan, "reports.clicks").contains("select false as is_full_refresh"));
    for plan in [&by_index, &by_scan] {
        // The hourly model has a delta: it recomputes only the keys the delta does not cover.
        assert!(build_of(plan, hourly).contains(
            "create or replace temporary view stale_ranges as select * from elt_queued_ranges where not delta_covered"
        ));
        assert!(build_of(plan, "reports.clicks").contains(
            "create or replace temporary view stale_ranges as select * from elt_queued_ranges;\n"
        ));
        assert!(!plan.steps[0]
            .statements
            .join(";\n")
            .contains("elt_all_ranges"));
        assert!(plan.steps.iter().all(|step| step.action != Action::Drop));
        assert!(plan.rebuilt().is_empty());
    }
    let outline = |plan: &RefreshPlan| -> Vec<(String, Why)> {
        plan.steps[1..]
            .iter()
            .map(|step| (step.relation.clone(), step.why.clone()))
            .collect()
    };
    assert_eq!(
        outline(&by_index),
        outline(&by_scan),
        "the same steps, in order"
    );
}

/// Issue 13: a model with a delta is refreshed by adding it first (its own step, before the
/// model recomputes what the delta does not cover); a rebuild has no delta step.
#[test]
fn a_model_with_a_delta_adds_it_before_recomputing_and_not_when_rebuilt() {
    let views = ViewSet::load(None).unwrap();
    let hourly = "intermediate.int_customer_hourly";
    let nightly = plan_refresh(&views, &recorded(&views), false);
    let hourly_steps: Vec<&PlanStep> = nightly
        .steps
        .iter()
        .filter(|step| step.relation == hourly)
        .collect();
    assert_eq!(hourly_steps.len(), 2, "{hourly_steps:?}");
    assert_eq!(hourly_steps[0].why, Why::Delta);
    assert_eq!(
        hourly_steps[0].path,
        "intermediate/int_customer_hourly.delta.sql"
    );
    assert!(hourly_steps[0]
        .statements
        .iter()
        .any(|statement| statement.starts_with("create temporary table elt_model_delta")));
    assert!(nightly
        .render()
        .contains("-- campaign-elt: add elt_model_delta to intermediate.int_customer_hourly"));
    assert!(matches!(
        hourly_steps[1].action,
        Action::Build { rebuild: false, .. }
    ));
    for rebuilt in [
        plan_refresh(&views, &recorded(&views), true),
        plan_refresh(&views, &[], false),
    ] {
        assert!(rebuilt.steps.iter().all(|step| step.why != Why::Delta));
        // The unrefreshed events are locked by every refresh (and emptied when it commits).
        assert!(rebuilt.steps[0]
            .statements
            .join(";\n")
            .contains("lock table elt.unrefreshed_events"));
    }
}

#[test]
fn a_stale_keys_header_that_names_another_model_is_refused() {
    let files = vec![
        file(
            "intermediate/hourly.sql",
            "-- materialized: incremental\n-- stale keys: other.sql\nselect 1",
        ),
        file("intermediate/other.sql", "-- materialized: view\nselect 1"),
    ];
    let error = ViewSet::from_files("test".into(), files)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("must be named <model>.stale_keys.sql"),
        "{error}"
    );
}

#[test]
fn a_relation_is_replaced_only_where_the_code_names_it() {
    let sql = "-- sources: reports.clicks\n\
               select 'reports.clicks' as name, clicks.clicks, \"reports\".\"clicks\".hour\n\
               from REPORTS.Clicks as clicks, reports.clicks_daily, my_reports.clicks\n\
               join \"reports\".clicks on true /* reports.clicks */ where x = 'it''s reports.clicks'";
    assert_eq!(
        replace_references(sql, "reports.clicks", "pg_temp.clicks"),
        "-- sources: reports.clicks\n\
         select 'reports.clicks' as name, clicks.clicks, pg_temp.clicks.hour\n\
         from pg_temp.clicks as clicks, reports.clicks_daily, my_reports.clicks\n\
         join pg_temp.clicks on true /* reports.clicks */ where x = 'it''s reports.clicks'"
    );
}

#[test]
fn a_data_test_reads_the_refreshed_keys_only_when_its_header_says_per_key() {
    let test = |sql: &str| {
        ViewSet::from_files("test".into(), vec![file("tests/t.sql", sql)])
            .map(|views| views.tests[0].per_key)
    };
    assert!(!test("select 1 where false").unwrap());
    assert!(test("-- test: t\n-- scope: per key\nselect 1 where false").unwrap());
    assert!(test("-- Scope: Per Key\nselect 1 where false").unwrap());
    let error = test("-- scope: per customer\nselect 1 where false").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("tests/t.sql: unknown scope \"per customer\""),
        "{error}"
    );
    let checksum = |sql: &str| {
        ViewSet::from_files("test".into(), vec![file("tests/t.sql", sql)])
            .unwrap()
            .tests[0]
            .checksum
            .clone()
    };
    assert_ne!(
        checksum("select 1 where false"),
        checksum("select 2 where false")
    );
}
