//! Test support: a fresh PostgreSQL database per test, cloned from a migrated template.
//!
//! The server comes from `CAMPAIGN_ELT_TEST_DATABASE_URL` (default
//! `postgresql://postgres@127.0.0.1:5432/postgres`); the user must be allowed to create databases.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokio_postgres::{Client, NoTls};

pub const DEFAULT_SERVER_URL: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

pub fn server_url() -> String {
    std::env::var("CAMPAIGN_ELT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// The URL of database `name` on the test server (same host, user and options).
pub fn url_for(name: &str) -> String {
    let server = server_url();
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (server.clone(), String::new()),
    };
    let base = base
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .unwrap_or(base);
    format!("{base}/{name}{query}")
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Name of the template: one per migration set, so a changed migration gets a new template.
fn template_name() -> String {
    let mut hasher = blake3::Hasher::new();
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
            .expect("migrations directory")
            .map(|entry| entry.expect("entry").path())
            .collect();
    entries.sort();
    for path in entries {
        hasher.update(path.file_name().unwrap().as_encoded_bytes());
        hasher.update(&std::fs::read(&path).expect("migration file"));
    }
    format!(
        "campaign_elt_template_{}",
        &hasher.finalize().to_hex()[..12]
    )
}

/// Creates the migrated template once per server (serialized with an advisory lock, so parallel
/// test binaries do not race).
async fn ensure_template(admin: &Client) -> String {
    let template = template_name();
    admin
        .execute("select pg_advisory_lock(7231001)", &[])
        .await
        .unwrap();
    let exists = admin
        .query_opt("select 1 from pg_database where datname = $1", &[&template])
        .await
        .unwrap()
        .is_some();
    if !exists {
        // Templates of earlier migration sets are not used any more.
        let stale = admin
            .query(
                "select datname from pg_database where datname like 'campaign\\_elt\\_template\\_%' and datname <> $1",
                &[&template],
            )
            .await
            .unwrap();
        for row in stale {
            let name: String = row.get(0);
            // A template cannot be dropped; each statement on its own (no transaction block).
            let _ = admin
                .batch_execute(&format!("alter database {name} is_template false"))
                .await;
            let _ = admin
                .batch_execute(&format!("drop database if exists {name} with (force)"))
                .await;
        }
        let building = format!("{template}_building");
        admin
            .batch_execute(&format!("drop database if exists {building} with (force)"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("create database {building}"))
            .await
            .unwrap();
        let output = campaign_elt()
            .args(["migrate", "--database-url", &url_for(&building)])
            .output()
            .expect("run campaign-elt migrate");
        assert!(
            output.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        admin
            .batch_execute(&format!("alter database {building} rename to {template}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("alter database {template} is_template true"))
            .await
            .unwrap();
    }
    admin
        .execute("select pg_advisory_unlock(7231001)", &[])
        .await
        .unwrap();
    template
}

/// A database of its own for one test; dropped when the value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn new() -> TestDatabase {
        let admin = connect(&server_url()).await;
        let template = ensure_template(&admin).await;
        let name = format!("campaign_elt_test_{}_{}", std::process::id(), rand_suffix());
        admin
            .batch_execute(&format!("create database {name} template {template}"))
            .await
            .unwrap();
        let url = url_for(&name);
        TestDatabase { name, url }
    }

    /// A database with nothing in it (not even the migrations).
    pub async fn empty() -> TestDatabase {
        let admin = connect(&server_url()).await;
        let name = format!("campaign_elt_test_{}_{}", std::process::id(), rand_suffix());
        admin
            .batch_execute(&format!("create database {name}"))
            .await
            .unwrap();
        let url = url_for(&name);
        TestDatabase { name, url }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    /// Runs `campaign-elt ARGS --database-url URL`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = campaign_elt();
        command.args(args).args(["--database-url", &self.url]);
        command.output().expect("run campaign-elt")
    }

    /// Runs the binary and asserts the exit code, returning the output.
    pub fn run_expecting(&self, code: i32, args: &[&str]) -> Output {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "campaign-elt {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop from a thread of its own: Drop may run inside an async runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = connect(&server_url()).await;
                let _ = admin
                    .batch_execute(&format!("drop database if exists {name} with (force)"))
                    .await;
            });
        })
        .join();
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{}", nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The binary under test, with a clean environment for the connection variables.
pub fn campaign_elt() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_campaign-elt"));
    for variable in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSSLMODE",
        "PGPASSFILE",
        "CLICK_THROUGH_WINDOW_SECONDS",
        "CAMPAIGN_ELT_VIEWS_DIR",
        "CAMPAIGN_ELT_SOURCE_TIME_ZONE",
        "CAMPAIGN_ELT_EVENT_TYPES",
    ] {
        command.env_remove(variable);
    }
    command
}

pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// All rows of a query as text lines `a|b|c` (NULL as `∅`), sorted, for whole-table comparison.
pub async fn rows(client: &Client, sql: &str) -> Vec<String> {
    let wrapped = format!(
        "select array_to_string(array(select coalesce(value, '∅') from json_each_text(row_to_json(t)) as cell(key, value)), '|') from ({sql}) as t"
    );
    let mut rows: Vec<String> = client
        .query(&wrapped, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| row.get(0))
        .collect();
    rows.sort();
    rows
}

/// The four contract reports as sorted text rows, hours in UTC.
pub async fn report_rows(client: &Client) -> Vec<String> {
    client.batch_execute("set time zone 'UTC'").await.unwrap();
    let mut all = Vec::new();
    for (relation, columns) in [
        ("page_loads", "page_loads"),
        ("clicks", "clicks"),
        ("unique_user_clicks", "unique_user_clicks"),
        (
            "click_through_rate",
            "page_loads, related_clicks, round(click_through_rate, 6)",
        ),
    ] {
        for row in rows(
            client,
            &format!("select '{relation}' as report, customer_id, to_char(hour, 'YYYY-MM-DD HH24:MI') as hour, {columns} from reports.{relation}"),
        )
        .await
        {
            all.push(row);
        }
    }
    all.sort();
    all
}

/// Compares whole tables with a readable diff.
pub fn assert_rows_eq(actual: &[String], expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    if actual != expected.as_slice() {
        let missing: Vec<&String> = expected
            .iter()
            .filter(|row| !actual.contains(row))
            .collect();
        let unexpected: Vec<&String> = actual
            .iter()
            .filter(|row| !expected.contains(row))
            .collect();
        panic!("rows differ\n  missing:    {missing:#?}\n  unexpected: {unexpected:#?}\n  actual:     {actual:#?}");
    }
}

pub fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The four reports after `tests/fixtures/first_night.jsonl` (with `--max-line-bytes 2048`).
pub const FIRST_NIGHT_REPORTS: &[&str] = &[
    "page_loads|1|2022-01-01 00:00|1",
    "page_loads|1|2022-01-01 01:00|3",
    "page_loads|2|2022-01-01 01:00|1",
    "page_loads|3|2021-12-31 23:00|2",
    "page_loads|3|2022-01-01 00:00|1",
    "clicks|1|2022-01-01 01:00|5",
    "clicks|2|2022-01-01 02:00|1",
    "clicks|4|2022-01-01 05:00|1",
    "clicks|5|2022-01-01 06:00|1",
    "unique_user_clicks|1|2022-01-01 01:00|4",
    "unique_user_clicks|2|2022-01-01 02:00|1",
    "unique_user_clicks|4|2022-01-01 05:00|1",
    "unique_user_clicks|5|2022-01-01 06:00|1",
    "click_through_rate|1|2022-01-01 00:00|1|0|0.000000",
    // a1 (same id, page load in the previous hour), b2 (window, 240 s), b3 (window, exactly
    // 300 s) are related; c2 (301 s) and d1 (same id, other user) are not.
    "click_through_rate|1|2022-01-01 01:00|3|3|1.000000",
    "click_through_rate|2|2022-01-01 01:00|1|0|0.000000",
    "click_through_rate|2|2022-01-01 02:00|0|1|∅",
    "click_through_rate|3|2021-12-31 23:00|2|0|0.000000",
    "click_through_rate|3|2022-01-01 00:00|1|0|0.000000",
    "click_through_rate|4|2022-01-01 05:00|0|0|∅",
    "click_through_rate|5|2022-01-01 06:00|0|0|∅",
];

/// Copies a directory tree (e.g. `views/`, for a test that edits the SQL).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The four reports after `first_night.jsonl` and then `second_night.jsonl`: a1 is a duplicate
/// from the first night; k1's page load arrives late, in the hour before its click (that hour is
/// recomputed); m1 arrives after its click m2, within the window; n1 is a new page load.
pub fn second_night_reports() -> Vec<&'static str> {
    let mut expected: Vec<&str> = FIRST_NIGHT_REPORTS
        .iter()
        .copied()
        .filter(|row| {
            !row.starts_with("page_loads|1|2022-01-01 01:00")
                && !row.starts_with("click_through_rate|1|2022-01-01 01:00")
                && !row.starts_with("click_through_rate|4|")
                && !row.starts_with("click_through_rate|5|")
        })
        .collect();
    expected.extend([
        "page_loads|1|2022-01-01 01:00|4",
        "click_through_rate|1|2022-01-01 01:00|4|3|0.750000",
        "page_loads|4|2022-01-01 04:00|1",
        "click_through_rate|4|2022-01-01 04:00|1|0|0.000000",
        "click_through_rate|4|2022-01-01 05:00|0|1|∅",
        "page_loads|5|2022-01-01 06:00|1",
        "click_through_rate|5|2022-01-01 06:00|1|1|1.000000",
    ]);
    expected
}
