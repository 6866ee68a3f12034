//! Least privilege (issue 6): `setup-roles` creates the loader, transform and analyst roles;
//! each can do its job and nothing more. Roles are cluster-wide: every test uses a prefix of its
//! own and drops its roles at the end.

mod common;

use common::{
    campaign_elt, fixture, run_expecting_at, stderr, stdout, stdout_json, RolesUnderTest,
};

/// Runs `sql` as the client's role and returns the SQLSTATE of the error, if any.
async fn sqlstate(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    client.batch_execute(sql).await.err().map(|error| {
        error
            .code()
            .map_or_else(|| error.to_string(), |c| c.code().to_owned())
    })
}

const DENIED: Option<&str> = Some("42501");

async fn assert_denied(client: &tokio_postgres::Client, who: &str, sql: &str) {
    assert_eq!(
        sqlstate(client, sql).await.as_deref(),
        DENIED,
        "{who} must not be allowed: {sql}"
    );
}

async fn assert_allowed(client: &tokio_postgres::Client, who: &str, sql: &str) {
    assert_eq!(
        sqlstate(client, sql).await,
        None,
        "{who} must be allowed: {sql}"
    );
}

#[tokio::test]
async fn each_role_does_its_job_and_no_more() {
    let test = RolesUnderTest::new().await;
    let night = fixture("first_night.jsonl");
    let summary = stdout_json(
        &test
            .db
            .run_expecting(0, &["setup-roles", "--json", "--role-prefix", &test.prefix]),
    );
    assert_eq!(summary["created"].as_array().unwrap().len(), 3);
    // Idempotent: a second run creates nothing and fails on nothing.
    let summary = stdout_json(
        &test
            .db
            .run_expecting(0, &["setup-roles", "--json", "--role-prefix", &test.prefix]),
    );
    assert_eq!(summary["created"].as_array().unwrap().len(), 0);
    let loader_url = test.login("loader").await;
    let transform_url = test.login("transform").await;
    let analyst_url = test.login("analyst").await;

    // loader: loads, cannot refresh.
    run_expecting_at(
        &loader_url,
        0,
        &["load", "--max-line-bytes", "2048", &night],
    );
    run_expecting_at(&loader_url, 0, &["status"]);
    let output = run_expecting_at(&loader_url, 1, &["refresh"]);
    assert!(stderr(&output).contains("permission denied"));
    // transform: refreshes, cannot load.
    run_expecting_at(&transform_url, 0, &["refresh"]);
    let output = run_expecting_at(&transform_url, 1, &["load", "--force", &night]);
    assert!(stderr(&output).contains("permission denied"));
    run_expecting_at(&transform_url, 0, &["refresh", "--full-refresh"]);
    // analyst: reads the reports.
    let output = run_expecting_at(
        &analyst_url,
        0,
        &["report", "page_loads", "--format", "csv"],
    );
    assert!(stdout(&output).lines().count() > 1);

    let loader = common::connect(&loader_url).await;
    let transform = common::connect(&transform_url).await;
    let analyst = common::connect(&analyst_url).await;
    let who = "loader";
    assert_allowed(&loader, who, "select count(*) from elt.rejects").await;
    assert_denied(&loader, who, "delete from reports.page_loads").await;
    assert_denied(
        &loader,
        who,
        "insert into reports.clicks values (1, now(), 1)",
    )
    .await;
    assert_denied(&loader, who, "drop table reports.clicks").await;
    assert_denied(
        &loader,
        who,
        "update elt.settings set click_through_window_seconds = 1",
    )
    .await;
    assert_denied(&loader, who, "delete from elt.managed_relations").await;
    assert_denied(&loader, who, "create table elt.mine (x int)").await;

    let who = "transform";
    assert_allowed(&transform, who, "select count(*) from elt.events").await;
    assert_denied(&transform, who, "delete from elt.events").await;
    assert_denied(&transform, who, "update elt.events set user_id = 0").await;
    assert_denied(&transform, who, "truncate elt.events").await;
    assert_denied(
        &transform,
        who,
        "insert into elt.events (event_id_uuid, event_id_text, event_type, customer_id, user_id,
             fired_at, load_id, line_number)
         values ('00000000-0000-0000-0000-000000000000', 'x', 'FaqClick', 1, 1, now(), 1, 1)",
    )
    .await;
    assert_denied(&transform, who, "update elt.loads set status = 'failed'").await;
    assert_denied(&transform, who, "delete from elt.loads").await;
    assert_denied(&transform, who, "select count(*) from elt.rejects").await;
    assert_denied(&transform, who, "create table elt.mine (x int)").await;

    let who = "analyst";
    assert_allowed(
        &analyst,
        who,
        "select count(*) from reports.click_through_rate",
    )
    .await;
    assert_allowed(
        &analyst,
        who,
        "create view analyst.busy_customers as
         select customer_id, sum(page_loads) as page_loads from reports.page_loads group by customer_id",
    )
    .await;
    assert_allowed(&analyst, who, "select * from analyst.busy_customers").await;
    assert_denied(&analyst, who, "select count(*) from elt.rejects").await;
    assert_denied(&analyst, who, "select count(*) from elt.events").await;
    assert_denied(&analyst, who, "delete from reports.page_loads").await;
    assert_denied(
        &analyst,
        who,
        "insert into reports.clicks values (1, now(), 1)",
    )
    .await;
    assert_denied(&analyst, who, "create table reports.mine (x int)").await;
    assert_denied(&analyst, who, "drop table reports.clicks").await;
    // Dropping the analyst's view lets the transform rebuild page_loads again later.
    assert_allowed(&analyst, who, "drop view analyst.busy_customers").await;
}

/// Report relations built by the owner before the roles existed are handed to the transform
/// role, which can then rebuild them; the analyst can read them.
#[tokio::test]
async fn relations_built_before_setup_are_handed_to_the_transform_role() {
    let test = RolesUnderTest::new().await;
    let night = fixture("first_night.jsonl");
    test.db
        .run_expecting(0, &["run", "--max-line-bytes", "2048", &night]);
    let summary = stdout_json(
        &test
            .db
            .run_expecting(0, &["setup-roles", "--json", "--role-prefix", &test.prefix]),
    );
    let reassigned = summary["reassigned_relations"].as_array().unwrap();
    assert!(
        reassigned.iter().any(|r| r == "reports.page_loads"),
        "{summary}"
    );
    let transform_url = test.login("transform").await;
    let analyst_url = test.login("analyst").await;
    run_expecting_at(&transform_url, 0, &["refresh", "--full-refresh"]);
    let analyst = common::connect(&analyst_url).await;
    assert_allowed(
        &analyst,
        "analyst",
        "select * from reports.unique_user_clicks",
    )
    .await;
    // The counts of the loads, never their lines or the events.
    for sql in [
        "select * from reports.load_quality",
        "select * from reports.freshness",
        "select * from reports.clicking_users('2022-01-01', '2022-01-02')",
    ] {
        assert_allowed(&analyst, "analyst", sql).await;
    }
    for sql in [
        "select * from elt.rejects",
        "select * from elt.events",
        "select * from elt.loads",
    ] {
        assert_denied(&analyst, "analyst", sql).await;
    }
    // The views the migrations create (load_quality, freshness, restatements) stay with the
    // schema's owner: they read the ledger with its rights.
    let owners = common::rows(
        &test.db.client().await,
        "select distinct pg_get_userbyid(relowner) from pg_class
         where relnamespace = 'reports'::regnamespace and relkind in ('r', 'v', 'm')
             and relname not in ('load_quality', 'freshness', 'restatements')",
    )
    .await;
    assert_eq!(owners, vec![test.role("transform")]);
}

#[test]
fn a_role_prefix_that_is_not_a_plain_identifier_is_a_usage_error() {
    for prefix in ["x\"; drop table elt.events; --", "Upper", "1x", ""] {
        let output = campaign_elt()
            .args(["setup-roles", "--role-prefix", prefix])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{prefix:?}");
    }
}
