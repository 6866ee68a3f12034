//! The command line: exit codes (README, section "Exit codes": 0 success, 1 error, 2 usage error,
//! 3 too many rejected lines, 4 a failed data test, 5 the lock is held with `--no-wait`, 130/143
//! SIGINT/SIGTERM), the JSON summary, report output and connection settings (README, section
//! "Connection": `--database-url`, else `DATABASE_URL`, else the libpq variables).

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use common::{
    assert_exit, campaign_elt, copy_of_views, count, fixture, release_the_run_lock, report_rows,
    stderr, stdout, stdout_and_stderr, stdout_json, take_the_run_lock, with_query_parameter,
    TestDatabase,
};

const DIRTY: &str = "first_night.jsonl";

#[test]
fn bad_flags_are_a_usage_error() {
    let output = campaign_elt()
        .args(["run", "--no-such-flag", "x.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = campaign_elt().args(["run"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "run needs files");
    let output = campaign_elt()
        .args(["run", "--max-rejected", "lots", "x.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = campaign_elt()
        .args(["run", "--click-through-window-seconds", "-5", "x.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn help_documents_every_command() {
    let output = campaign_elt().arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    for command in [
        "migrate",
        "load",
        "refresh",
        "run",
        "status",
        "unload",
        "test",
        "check",
        "report",
        "generate",
        "purge-rejects",
        "purge-restatements",
        "setup-roles",
    ] {
        assert!(help.contains(command), "{command} missing from --help");
    }
}

#[test]
fn an_unreachable_database_is_an_error_without_the_password() {
    let output = campaign_elt()
        .args([
            "run",
            "--database-url",
            "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere",
            &fixture(DIRTY),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "password leaked: {stderr}");
}

#[tokio::test]
async fn an_unreadable_input_is_an_error() {
    let db = TestDatabase::new().await;
    let output = db.run_expecting(1, &["run", "/no/such/file.jsonl"]);
    assert!(stderr(&output).contains("/no/such/file.jsonl"));
    let directory = std::env::temp_dir();
    db.run_expecting(1, &["run", directory.to_str().unwrap()]);
}

#[tokio::test]
async fn too_many_rejects_exit_3_but_keep_the_load() {
    let db = TestDatabase::new().await;
    // 13 of 34 lines are rejected.
    db.run_expecting(
        3,
        &[
            "run",
            "--max-line-bytes",
            "2048",
            "--max-rejected",
            "12",
            &fixture(DIRTY),
        ],
    );
    let client = db.client().await;
    let events = count(&client, "select count(*) from elt.events").await;
    assert_eq!(events, 17, "the loaded events stay");
    let fresh = TestDatabase::new().await;
    fresh.run_expecting(
        0,
        &[
            "run",
            "--max-line-bytes",
            "2048",
            "--max-rejected",
            "13",
            &fixture(DIRTY),
        ],
    );
    let percent = TestDatabase::new().await;
    percent.run_expecting(
        3,
        &[
            "run",
            "--max-line-bytes",
            "2048",
            "--max-rejected",
            "30%",
            &fixture(DIRTY),
        ],
    );
    let percent = TestDatabase::new().await;
    percent.run_expecting(
        0,
        &[
            "run",
            "--max-line-bytes",
            "2048",
            "--max-rejected",
            "40%",
            &fixture(DIRTY),
        ],
    );
}

#[tokio::test]
async fn a_failing_data_test_exits_4_and_keeps_the_events() {
    let db = TestDatabase::new().await;
    let views = copy_of_views();
    std::fs::write(
        views.path().join("tests/no_customer_three.sql"),
        "-- fails when customer 3 has page loads\nselect * from reports.page_loads where customer_id = 3\n",
    )
    .unwrap();
    let views_dir = views.path().to_str().unwrap();
    let output = db.run_expecting(
        4,
        &[
            "run",
            "--json",
            "--views-dir",
            views_dir,
            "--max-line-bytes",
            "2048",
            &fixture(DIRTY),
        ],
    );
    let summary = stdout_json(&output);
    assert_eq!(
        summary["data_test_failures"][0]["name"],
        "no_customer_three"
    );
    assert_eq!(summary["data_test_failures"][0]["offending_rows"], 2);
    assert!(stderr(&output).contains("no_customer_three"));
    let client = db.client().await;
    let events = count(&client, "select count(*) from elt.events").await;
    assert_eq!(events, 17);
    // The test command says the same, with the directory given after the command, before it,
    // or by CAMPAIGN_ELT_VIEWS_DIR; a flag wins over the variable.
    db.run_expecting(4, &["test", "--views-dir", views_dir]);
    db.run_expecting(4, &["--views-dir", views_dir, "test"]);
    let from_env = [("CAMPAIGN_ELT_VIEWS_DIR", views_dir)];
    db.run_with_env_expecting(4, &["test"], &from_env);
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/views");
    db.run_with_env_expecting(0, &["test", "--views-dir", shipped], &from_env);
    db.run_expecting(0, &["test"]);
}

#[tokio::test]
async fn after_the_last_byte_each_phase_is_shown_in_the_order_it_runs() {
    let phases = |output: &std::process::Output| -> Vec<String> {
        stderr(output)
            .lines()
            .filter_map(|line| line.split_once("phase: "))
            .map(|(_, phase)| phase.trim().to_owned())
            .collect()
    };
    let db = TestDatabase::new().await;
    let night = fixture(DIRTY);
    let debug = [("CAMPAIGN_ELT_LOG", "campaign_elt=debug")];
    let first = db.run_with_env_expecting(0, &["run", "--max-line-bytes", "2048", &night], &debug);
    let first = phases(&first);
    let expected_start = [
        format!("{night}: committing the last batch"),
        "building the events table's key and indexes".to_owned(),
        "analyzing elt.events".to_owned(),
        "refresh: planning".to_owned(),
        "refresh: claiming the stale keys".to_owned(),
    ];
    assert_eq!(first[..expected_start.len()], expected_start, "{first:#?}");
    for relation in [
        "int_customer_hourly",
        "reports.clicks",
        "reports.click_through_rate",
    ] {
        let building = first
            .iter()
            .position(|phase| phase.starts_with("refresh: building") && phase.ends_with(relation));
        assert!(building.is_some(), "builds {relation}: {first:#?}");
    }
    assert_eq!(
        first[first.len() - 2..],
        [
            "refresh: recording and committing",
            "running the data tests"
        ],
        "{first:#?}"
    );

    let second_night = fixture("second_night.jsonl");
    let second = db.run_with_env_expecting(0, &["run", &second_night], &debug);
    let second = phases(&second);
    assert_eq!(
        second[0],
        format!("{second_night}: merging the last batch"),
        "{second:#?}"
    );
    assert!(
        second
            .iter()
            .any(|phase| phase.starts_with("refresh: ") && phase.contains("int_customer_hourly")),
        "{second:#?}"
    );
    assert!(
        !second
            .iter()
            .any(|phase| phase.contains("building the events table")),
        "{second:#?}"
    );
    assert_eq!(
        second.last().map(String::as_str),
        Some("running the data tests")
    );
}

#[tokio::test]
async fn a_held_lock_exits_5_with_no_wait_and_waits_without() {
    let db = TestDatabase::new().await;
    let holder = db.client().await;
    take_the_run_lock(&holder).await;
    let output = db.run_expecting(5, &["run", "--no-wait", &fixture("second_night.jsonl")]);
    assert!(stderr(&output).contains("lock"));

    // Without --no-wait the second run waits for the first and then completes.
    let mut waiting = campaign_elt()
        .args([
            "run",
            "--database-url",
            &db.url,
            &fixture("second_night.jsonl"),
        ])
        .spawn()
        .unwrap();
    let mut waited = false;
    for _ in 0..100 {
        let blocked = count(
            &holder,
            "select count(*) from pg_locks where locktype = 'advisory' and not granted",
        )
        .await;
        if blocked > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(waited, "the second run should wait for the lock");
    assert!(waiting.try_wait().unwrap().is_none(), "still waiting");
    release_the_run_lock(&holder).await;
    let status = tokio::task::spawn_blocking(move || waiting.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let events = count(&holder, "select count(*) from elt.events").await;
    assert_eq!(events, 4);
}

/// Sends SIG`signal` (`TERM`, `INT`, `KILL`) to the child and waits for it to end.
async fn signal_and_wait(child: std::process::Child, signal: &str) -> std::process::Output {
    let killed = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn sigterm_and_sigint_roll_back_the_open_batch() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let db = TestDatabase::new().await;
        let mut child = campaign_elt()
            .args(["run", "--database-url", &db.url, "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(&std::fs::read(fixture("second_night.jsonl")).unwrap())
            .unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        let client = db.client().await;
        // Wait until the run has started its load (the ledger row exists), then signal it.
        for _ in 0..100 {
            let loads = count(&client, "select count(*) from elt.loads").await;
            if loads > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let output = signal_and_wait(child, signal).await;
        drop(stdin);
        assert_exit(&output, code, &format!("run - stopped by SIG{signal}"));
        let events = count(&client, "select count(*) from elt.events").await;
        assert_eq!(events, 0, "the open batch was rolled back");
    }
}

/// The statements the server runs for this test's database right now that sleep.
async fn sleeping_statements(admin: &tokio_postgres::Client, database: &str) -> i64 {
    admin
        .query_one(
            "select count(*) from pg_stat_activity
             where datname = $1 and state = 'active' and query like '%pg_sleep%'
                 and pid <> pg_backend_pid()",
            &[&database],
        )
        .await
        .unwrap()
        .get(0)
}

/// A signal cancels what the server is running for the run: without it the backend would sleep
/// on (PostgreSQL notices a dead client only when it next talks to it), holding its locks.
/// SIGTERM and SIGINT cancel at once; after SIGKILL the server notices the dead client itself,
/// within the `client_connection_check_interval` of 10 s each session sets.
#[tokio::test]
async fn a_signal_cancels_the_statement_the_server_is_running() {
    for (signal, code, within_seconds) in [
        ("TERM", Some(143), 3),
        ("INT", Some(130), 3),
        ("KILL", None, 20),
    ] {
        let db = TestDatabase::new().await;
        db.run_first_night();
        let views = copy_of_views();
        std::fs::write(
            views.path().join("reports/slow.sql"),
            "-- materialized: table\nselect pg_sleep(60)::text as slept\n",
        )
        .unwrap();
        let child = campaign_elt()
            .args(["refresh", "--database-url", &db.url, "--views-dir"])
            .arg(views.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let admin = common::connect(common::server_url()).await;
        let started = std::time::Instant::now();
        while sleeping_statements(&admin, &db.name).await == 0 {
            assert!(started.elapsed().as_secs() < 30, "the slow model never ran");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let output = signal_and_wait(child, signal).await;
        assert_eq!(output.status.code(), code, "refresh stopped by SIG{signal}");
        if code.is_some() {
            assert!(
                stderr(&output).contains("cancel requested on"),
                "{}",
                stderr(&output)
            );
        }
        let stopped = std::time::Instant::now();
        while sleeping_statements(&admin, &db.name).await > 0 {
            assert!(
                stopped.elapsed().as_secs() < within_seconds,
                "the server still runs the refresh's statement {within_seconds} s after SIG{signal}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Nothing of the rolled-back refresh is left, and the next run does not wait for it.
        db.run_expecting(0, &["--no-wait", "refresh"]);
        let client = db.client().await;
        assert_eq!(
            count(
                &client,
                "select count(*) from pg_class where relname = 'slow'"
            )
            .await,
            0
        );
    }
}

/// Every session asks the server to notice a client that is gone (PostgreSQL 14 and later),
/// unless the operator set it (the keepalives: `src/db/connection/tests.rs`).
#[tokio::test]
async fn sessions_ask_the_server_to_notice_a_dead_client() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "create view public.session_checks as
             select current_setting('client_connection_check_interval', true) as check_interval",
        )
        .await
        .unwrap();
    let report = ["report", "public.session_checks", "--format", "csv"];
    let output = db.run_expecting(0, &report);
    let version: i32 = client
        .query_one("select current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    if version >= 140000 {
        assert_eq!(stdout(&output), "check_interval\n10s\n");
    }
    // An operator's own value is kept.
    let url = common::with_query_parameter(
        &db.url,
        "options=-c%20client_connection_check_interval%3D3s",
    );
    let output = common::run_expecting_at(&url, 0, &report);
    if version >= 140000 {
        assert_eq!(stdout(&output), "check_interval\n3s\n");
    }
}

/// On a machine where no server answers, the quick start starts a private one (and reuses it).
#[tokio::test]
async fn the_quickstart_starts_a_private_server_when_none_answers() {
    let place = tempfile::tempdir().unwrap();
    std::fs::set_permissions(place.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cluster = place.path().join("pg");
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/quickstart");
    let run = || {
        std::process::Command::new(quickstart)
            .env_remove("DATABASE_URL")
            .env_remove("PGDATABASE")
            // a port nothing listens on: no server answers
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", "1")
            .env("CAMPAIGN_ELT_QUICKSTART_PG", &cluster)
            // the binary under test, not a build of its own
            .env("CAMPAIGN_ELT_BIN", env!("CARGO_BIN_EXE_campaign-elt"))
            .output()
            .unwrap()
    };
    let first = run();
    let stop_with = |program: &std::path::Path| {
        common::as_cluster_owner(
            program,
            &["--pgdata", cluster.join("data").to_str().unwrap(), "stop"],
        )
    };
    let outcome = std::panic::catch_unwind(|| {
        assert_exit(&first, 0, "scripts/quickstart without a server");
        let said = stdout_and_stderr(&first);
        assert!(said.contains("creating a private one"), "{said}");
        assert!(said.contains("stop it with"), "{said}");
        assert!(
            said.contains("row(s) from reports.click_through_rate"),
            "{said}"
        );
        let report = said
            .lines()
            .find_map(|line| line.strip_prefix("quickstart: the HTML report is "))
            .and_then(|rest| rest.split(" (").next())
            .unwrap_or_else(|| panic!("where the HTML report is: {said}"));
        let html = std::fs::read_to_string(report).unwrap();
        assert!(html.contains("<h1>Referral campaigns,"), "{report}");
        let second = run();
        assert_exit(&second, 0, "scripts/quickstart again");
        let said = stdout_and_stderr(&second);
        assert!(!said.contains("creating a private one"), "{said}");
        assert!(said.contains("using the private server"), "{said}");
    });
    let stopped = stop_with(&common::server_bindir().join("pg_ctl"));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(stopped.status.success(), "{stopped:?}");
}

#[tokio::test]
async fn libpq_variables_are_used_when_no_url_is_given() {
    let db = TestDatabase::new().await;
    let output = campaign_elt()
        .args(["run", "--json", &fixture("second_night.jsonl")])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", "5432")
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &db.name)
        .env("PGPASSWORD", "unused-trust-auth-secret")
        .output()
        .unwrap();
    assert_exit(&output, 0, "run with the libpq variables");
    assert_eq!(stdout_json(&output)["totals"]["loaded"], 4);
    assert!(!stdout_and_stderr(&output).contains("unused-trust-auth-secret"));
}

#[tokio::test]
async fn the_same_settings_spelled_another_way_are_no_change() {
    let db = TestDatabase::new().await;
    let night = fixture("second_night.jsonl");
    db.run_expecting(
        0,
        &[
            "run",
            "--source-time-zone",
            "Europe/Berlin",
            "--event-types",
            "ReferralPageLoad,ReferralRecommendClick,FaqClick",
            &fixture("first_night.jsonl"),
        ],
    );
    // The zone in another case, the types in another order and repeated: the same settings.
    db.run_expecting(
        0,
        &[
            "run",
            "--source-time-zone",
            "europe/BERLIN",
            "--event-types",
            "FaqClick,ReferralRecommendClick,ReferralPageLoad,FaqClick",
            &night,
        ],
    );
    // Event types compare case-sensitively, and another zone is another zone.
    for (flag, value) in [
        (
            "--event-types",
            "ReferralPageLoad,ReferralRecommendClick,faqclick",
        ),
        ("--event-types", "ReferralPageLoad,ReferralRecommendClick"),
        ("--source-time-zone", "Europe/Paris"),
    ] {
        let output = db.run_expecting(1, &["run", flag, value, &night]);
        assert!(stderr(&output).contains("--full-refresh"), "{flag} {value}");
    }
    // Every name of UTC is UTC.
    let utc = TestDatabase::new().await;
    utc.run_first_night();
    for name in ["utc", "Etc/UTC", "zulu"] {
        utc.run_expecting(0, &["run", "--source-time-zone", name, &night]);
    }
    let client = utc.client().await;
    let stored: String = client
        .query_one("select source_time_zone from elt.settings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "UTC");
}

#[tokio::test]
async fn changed_report_settings_are_refused_unless_full_refresh() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    let output = db.run_expecting(
        1,
        &[
            "run",
            "--click-through-window-seconds",
            "400",
            &fixture("second_night.jsonl"),
        ],
    );
    let stderr = stderr(&output);
    assert!(stderr.contains("--full-refresh"), "{stderr}");
    let client = db.client().await;
    let events = count(&client, "select count(*) from elt.events").await;
    assert_eq!(events, 17, "nothing was loaded by the refused run");
    // The environment variable of the original solution works too; a full refresh applies it.
    let output = campaign_elt()
        .args(["refresh", "--full-refresh", "--database-url", &db.url])
        .env("CLICK_THROUGH_WINDOW_SECONDS", "400")
        .output()
        .unwrap();
    assert_exit(
        &output,
        0,
        "refresh --full-refresh with CLICK_THROUGH_WINDOW_SECONDS",
    );
    // c2 (301 s after its page load) is related with a 400 s window.
    let rows = report_rows(&client).await;
    assert!(
        rows.contains(&"click_through_rate|1|2022-01-01 01:00|3|4|1.333333".to_owned()),
        "{rows:#?}"
    );
    // Later runs without the flag keep the stored window.
    db.run_expecting(0, &["run", &fixture("second_night.jsonl")]);
    let window: i32 = client
        .query_one("select click_through_window_seconds from elt.settings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(window, 400);
}

#[tokio::test]
async fn reports_print_as_table_csv_and_json_with_filters() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    let table = db.run_expecting(0, &["report", "click_through_rate", "--customer-id", "1"]);
    let table = stdout(&table);
    assert!(
        table.contains("related_clicks") && table.contains("2 row(s)"),
        "{table}"
    );
    let csv = db.run_expecting(
        0,
        &[
            "report",
            "page_loads",
            "--format",
            "csv",
            "--from",
            "2022-01-01",
            "--to",
            "2022-01-01T01:00:00Z",
        ],
    );
    assert_eq!(
        stdout(&csv),
        "customer_id,hour,page_loads\n1,2022-01-01T00:00:00+00:00,1\n3,2022-01-01T00:00:00+00:00,1\n"
    );
    let json = db.run_expecting(
        0,
        &[
            "report",
            "reports.clicks",
            "--format",
            "json",
            "--customer-id",
            "2",
        ],
    );
    let rows = stdout_json(&json);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["clicks"], 1);
    db.run_expecting(1, &["report", "no_such_report"]);

    // The rate prints with every digit PostgreSQL's numeric has, in every format (one hour
    // with 3 page loads: a rate of n/3 has no exact binary float).
    let client = db.client().await;
    client
        .batch_execute(
            "update reports.click_through_rate set page_loads = 3, related_clicks = 1,
                 click_through_rate = 1::numeric / 3
             where customer_id = 1 and hour = '2022-01-01 00:00+00'",
        )
        .await
        .unwrap();
    let exact = "0.33333333333333333333";
    let only_that_hour = [
        "report",
        "click_through_rate",
        "--customer-id",
        "1",
        "--to",
        "2022-01-01T01:00:00Z",
        "--format",
    ];
    let csv = stdout(&db.run_expecting(0, &[&only_that_hour[..], &["csv"]].concat()));
    assert!(csv.ends_with(&format!(",3,1,{exact}\n")), "{csv}");
    let json = stdout(&db.run_expecting(0, &[&only_that_hour[..], &["json"]].concat()));
    assert!(
        json.contains(&format!("\"click_through_rate\": {exact}")),
        "{json}"
    );
    let table = stdout(&db.run_expecting(0, &[&only_that_hour[..], &["table"]].concat()));
    assert!(table.contains(exact), "{table}");
}

#[tokio::test]
async fn status_shows_ledger_stale_keys_rejects_and_freshness() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    db.run_expecting(0, &["load", &fixture("second_night.jsonl")]);
    let status = stdout_json(&db.run_expecting(0, &["status", "--json"]));
    assert!(
        status["stale_keys"].as_i64().unwrap() > 0,
        "load leaves keys for refresh: {status}"
    );
    assert_eq!(
        status["unrefreshed_events"], 3,
        "and its new events for the delta: {status}"
    );
    assert_eq!(status["events"], 20);
    assert!(status["newest_fired_at"]
        .as_str()
        .unwrap()
        .starts_with("2022-01-01T06:03:00"));
    assert_eq!(status["loads"][0]["loaded"], 3, "newest first");
    assert_eq!(status["loads"][1]["rejected"], 13);
    assert!(status["rejects_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["reason"] == "invalid_utf8"));
    let server = &status["server"];
    assert!(server["shared_buffers"].as_str().unwrap().ends_with("B"));
    assert!(server["max_wal_size"].as_str().unwrap().ends_with("B"));
    assert!(server["events_bytes"].as_i64().unwrap() > 0);
    assert!(
        server["events_btree_index_bytes"].as_i64().unwrap() >= 2 * 8192,
        "the key and the refresh index: {server}"
    );
    assert!(server["checkpoints_timed"].as_i64().unwrap() >= 0);
    assert!(server["advice"].is_array());
    db.run_expecting(0, &["refresh"]);
    let status = stdout_json(&db.run_expecting(0, &["status", "--json"]));
    assert_eq!(status["stale_keys"], 0);
    assert_eq!(status["unrefreshed_events"], 0);
    let human = stdout(&db.run_expecting(0, &["status"]));
    assert!(
        human.contains("new events waiting for its delta: 0"),
        "{human}"
    );
    assert!(human.contains("rejected lines by reason"));
    assert!(human.contains("server: shared_buffers "), "{human}");
    // One timestamp format throughout, RFC 3339 (`2022-01-01T06:03:00+00:00`).
    let timestamps: Vec<&str> = human
        .split(|c: char| c.is_whitespace() || c == '│' || c == '┆')
        .filter(|word| word.starts_with("20") && word.len() >= 19 && word.as_bytes()[4] == b'-')
        .collect();
    assert!(timestamps.len() >= 3, "{human}");
    // and no date followed by a space and a time (PostgreSQL's text form)
    let bytes = human.as_bytes();
    for at in 0..bytes.len().saturating_sub(12) {
        let date = &bytes[at..at + 10];
        let is_date = date.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
        assert!(
            !(is_date && bytes[at + 10] == b' ' && bytes[at + 11].is_ascii_digit()),
            "a timestamp in text form in:\n{human}"
        );
    }
    for timestamp in timestamps {
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp} is not RFC 3339 in:\n{human}"
        );
    }
}

#[tokio::test]
async fn check_classifies_without_a_database() {
    let output = campaign_elt()
        .args([
            "check",
            "--json",
            "--max-line-bytes",
            "2048",
            &fixture(DIRTY),
        ])
        .env("PGHOST", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let summary = stdout_json(&output);
    assert_eq!(summary["totals"]["lines"], 34);
    assert_eq!(
        summary["totals"]["loaded"], 19,
        "valid lines (loaded or duplicate)"
    );
    assert_eq!(summary["totals"]["rejected"], 13);
}

#[tokio::test]
async fn a_settings_change_whose_rebuild_failed_is_finished_by_the_next_refresh() {
    let db = TestDatabase::new().await;
    db.run_first_night();
    // The new window is stored, but the full rebuild it needs fails (a broken report).
    let views = copy_of_views();
    let clicks = views.path().join("reports/clicks.sql");
    let broken = std::fs::read_to_string(&clicks)
        .unwrap()
        .replace("from ", "from no_such_relation, ");
    std::fs::write(&clicks, broken).unwrap();
    let views_dir = views.path().to_str().unwrap();
    db.run_expecting(
        1,
        &[
            "refresh",
            "--full-refresh",
            "--click-through-window-seconds",
            "400",
            "--views-dir",
            views_dir,
        ],
    );
    let client = db.client().await;
    let rows = report_rows(&client).await;
    assert!(
        rows.contains(&"click_through_rate|1|2022-01-01 01:00|3|3|1.000000".to_owned()),
        "{rows:#?}"
    );
    // A plain refresh, with nothing queued, still owes that rebuild: c2 (301 s) becomes related.
    db.run_expecting(0, &["refresh"]);
    let rows = report_rows(&client).await;
    assert!(
        rows.contains(&"click_through_rate|1|2022-01-01 01:00|3|4|1.333333".to_owned()),
        "{rows:#?}"
    );
    let pending: bool = client
        .query_one("select full_refresh_pending from elt.settings", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!pending, "the completed rebuild clears the flag");
}

/// Issue 12: the read commands only check the schema version — they take no lock, apply no
/// migration and say what to run — while `migrate` waits for the run lock.
#[tokio::test]
async fn read_commands_never_migrate_and_migrate_takes_the_run_lock() {
    let db = TestDatabase::empty().await;
    let mut client = db.client().await;
    common::migrate_to(&mut client, 4).await;
    let applied = "select max(version)::bigint from refinery_schema_history";
    for command in [&["status"][..], &["report", "page_loads"], &["test"]] {
        let output = db.run_expecting(1, command);
        assert!(
            stderr(&output).contains("run `campaign-elt migrate`"),
            "{command:?}: {}",
            stderr(&output)
        );
        assert_eq!(count(&client, applied).await, 4, "{command:?} migrated");
    }
    take_the_run_lock(&client).await;
    let output = db.run_expecting(5, &["--no-wait", "migrate"]);
    assert!(
        stderr(&output).contains("holds the lock"),
        "{}",
        stderr(&output)
    );
    assert_eq!(count(&client, applied).await, 4);
    release_the_run_lock(&client).await;
    db.run_expecting(0, &["migrate"]);
    assert!(count(&client, applied).await > 4);
    db.run_expecting(0, &["status"]);
}

/// A session an earlier run left working (its client was killed while the server ran its
/// statement) holds the run-sessions lock shared until its backend ends: a new run waits for it,
/// and with `--no-wait` exits 5 without keeping the run lock.
#[tokio::test]
async fn a_run_waits_for_the_sessions_an_earlier_run_left_working() {
    let db = TestDatabase::new().await;
    let orphan = db.client().await;
    let hold = "select pg_advisory_lock_shared($1)";
    let key = campaign_elt::db::RUN_SESSIONS_KEY;
    orphan.execute(hold, &[&key]).await.unwrap();
    let night = fixture("first_night.jsonl");
    let output = db.run_expecting(5, &["--no-wait", "run", &night]);
    assert!(
        stderr(&output).contains("holds the lock"),
        "{}",
        stderr(&output)
    );
    let run_lock_is_free = db
        .client()
        .await
        .query_one(
            "select pg_try_advisory_lock($1)",
            &[&campaign_elt::db::RUN_LOCK_KEY],
        )
        .await
        .unwrap()
        .get::<_, bool>(0);
    assert!(run_lock_is_free, "the refused run let go of the run lock");
    let mut waiting = campaign_elt()
        .args(["run", "--database-url", &db.url, &night])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(waiting.try_wait().unwrap().is_none(), "the run waits");
    assert_eq!(count(&orphan, "select count(*) from elt.loads").await, 0);
    orphan
        .execute("select pg_advisory_unlock_shared($1)", &[&key])
        .await
        .unwrap();
    assert!(waiting.wait().unwrap().success());
    assert_eq!(count(&orphan, "select count(*) from elt.loads").await, 1);
}

/// Issue 13: `generate --mix realistic` writes the realistic mix (dirt of every kind, re-sends),
/// and a rate flag overrides the mix's value.
#[test]
fn generate_mix_realistic_writes_dirt_and_re_sends_and_flags_override_it() {
    let directory = tempfile::tempdir().unwrap();
    let check = |args: &[&str]| {
        let path = directory.path().join("mix.jsonl");
        common::generate(&path, args);
        let output = campaign_elt()
            .args(["check", "--json", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_exit(&output, 0, "check");
        stdout_json(&output)["totals"].clone()
    };
    // The clean mix's only rejects are its EMPTY_VALUE events.
    let reasons = |totals: &serde_json::Value| -> Vec<String> {
        totals["rejected_by_reason"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let realistic = check(&["--mix", "realistic", "--lines", "20000", "--seed", "3"]);
    assert!(reasons(&realistic).len() > 5, "{realistic}");
    assert!(realistic["blank"].as_u64().unwrap() > 0, "{realistic}");
    let clean = check(&["--lines", "20000", "--seed", "3"]);
    assert_eq!(reasons(&clean), ["unknown_event_type"], "{clean}");
    let overridden = check(&["--mix", "realistic", "--dirt-rate", "0", "--lines", "20000"]);
    assert_eq!(reasons(&overridden), ["unknown_event_type"], "{overridden}");
}

#[test]
fn generate_customer_skew_gives_the_first_customers_most_lines_and_refuses_out_of_range() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("skewed.jsonl");
    common::generate(
        &path,
        &[
            "--customers",
            "1000",
            "--customer-skew",
            "1.1",
            "--lines",
            "20000",
            "--seed",
            "2",
        ],
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let first_customer = text.matches("\"customer_id\":12,").count();
    let lines = text.lines().count();
    // Zipf with exponent 1.1 over 1,000 customers: the first gets about 18 % of the lines.
    assert!(
        first_customer * 100 / lines >= 15,
        "{first_customer} of {lines} lines"
    );
    let output = campaign_elt()
        .args(["generate", "--customer-skew", "11", "--lines", "1"])
        .output()
        .unwrap();
    assert_exit(&output, 2, "generate --customer-skew 11");
    assert!(
        common::stderr(&output).contains("customer_skew"),
        "{}",
        common::stderr(&output)
    );
}

/// The server sees the application name the operator gave (`PGAPPNAME`, or `application_name`
/// in the URL, which wins), and `campaign-elt` only when none is given: a DBA's view of
/// `pg_stat_activity` and the server log name the job.
#[tokio::test]
async fn the_server_sees_the_application_name_the_operator_gave() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    for (url, app_name, expected) in [
        (
            db.url.clone(),
            Some("nightly-referrals"),
            "nightly-referrals",
        ),
        (
            with_query_parameter(&db.url, "application_name=from-the-url"),
            Some("nightly-referrals"),
            "from-the-url",
        ),
        (db.url.clone(), None, "campaign-elt"),
    ] {
        let mut command = campaign_elt();
        command
            .args(["run", "--batch-seconds", "0.2", "--database-url", &url, "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .env_remove("PGAPPNAME");
        if let Some(app_name) = app_name {
            command.env("PGAPPNAME", app_name);
        }
        // The previous run's backend may still be ending: start from a database without it.
        for _ in 0..100 {
            let others = count(
                &client,
                "select count(*) from pg_stat_activity
                 where datname = current_database() and pid <> pg_backend_pid()",
            )
            .await;
            if others == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let mut child = command.spawn().unwrap();
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = client
                .query(
                    "select application_name from pg_stat_activity
                     where datname = current_database() and pid <> pg_backend_pid()
                         and backend_type = 'client backend'",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect();
            // Connected and past the session's set-up (the run has taken its lock by then).
            let locked = count(
                &client,
                "select count(*) from pg_locks
                 where locktype = 'advisory' and granted and database =
                     (select oid from pg_database where datname = current_database())",
            )
            .await;
            if locked > 0 && !seen.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            stdout_and_stderr(&output)
        );
        assert_eq!(
            seen,
            vec![expected.to_string()],
            "PGAPPNAME={app_name:?}, url {url}"
        );
    }
}
