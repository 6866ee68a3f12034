//! The test server, a database of its own for every test (cloned from a migrated template), and
//! the few questions tests ask of it (counts, the load in the ledger, the run lock).
//!
//! The server comes from `CAMPAIGN_ELT_TEST_DATABASE_URL` (default
//! `postgresql://postgres@127.0.0.1:5432/postgres`); the user must be allowed to create databases
//! and roles.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use super::lines::fixture;
use super::process::{run_at, run_expecting_at};

/// The test server's URL: `CAMPAIGN_ELT_TEST_DATABASE_URL`, read once, or the local server.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("CAMPAIGN_ELT_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_owned())
    })
}

/// The URL of database `name` on the test server (same host, user and options).
pub fn url_for(name: &str) -> String {
    let server = server_url();
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let base = base.rsplit_once('/').map_or(base, |(base, _)| base);
    format!("{base}/{name}{query}")
}

/// `url` with one more query parameter (`key=value`, already percent-encoded).
pub fn with_query_parameter(url: &str, parameter: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameter}")
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

/// Runs `job` with a connection to the test server on a thread and runtime of its own and waits
/// for it: for clean-up in `Drop`, which may run inside an async runtime.
pub fn on_the_server_blocking<Job, Done>(job: Job)
where
    Job: FnOnce(Client) -> Done + Send + 'static,
    Done: Future<Output = ()>,
{
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let admin = connect(server_url()).await;
            job(admin).await;
        });
    })
    .join();
}

/// The one bigint a query returns: a count, usually.
pub async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Of a database with one load: the events visible, and the load's `loaded`,
/// `committed_line_number` and `status` in the ledger.
pub async fn events_and_the_load(client: &Client) -> (i64, i64, i64, String) {
    let row = client
        .query_one(
            "select (select count(*) from elt.events), loaded, committed_line_number, status from elt.loads",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// Waits (up to `timeout`) until the one load has committed at least `lines` lines; returns the
/// committed line number last seen.
pub async fn wait_until_committed(client: &Client, lines: i64, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let committed = client
            .query_opt("select committed_line_number from elt.loads", &[])
            .await
            .unwrap()
            .map_or(0, |row| row.get(0));
        if committed >= lines || Instant::now() > deadline {
            return committed;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Takes the run lock in `client`'s session, as a running command holds it.
pub async fn take_the_run_lock(client: &Client) {
    client
        .execute(
            "select pg_advisory_lock($1)",
            &[&campaign_elt::db::RUN_LOCK_KEY],
        )
        .await
        .unwrap();
}

pub async fn release_the_run_lock(client: &Client) {
    client
        .execute(
            "select pg_advisory_unlock($1)",
            &[&campaign_elt::db::RUN_LOCK_KEY],
        )
        .await
        .unwrap();
}

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// Applies the repository's migrations up to `version` (read from `migrations/`, as the binary
/// embeds them), for tests of upgrades from an older schema.
pub async fn migrate_to(client: &mut Client, version: u32) {
    let migrations = refinery::load_sql_migrations(migrations_dir()).expect("migrations");
    refinery::Runner::new(&migrations)
        .set_target(refinery::Target::Version(version))
        .set_grouped(true)
        .run_async(client)
        .await
        .unwrap();
}

/// Name of the template: one per migration set, so a changed migration gets a new template.
fn template_name() -> String {
    let mut hasher = blake3::Hasher::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(migrations_dir())
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
        run_expecting_at(&url_for(&building), 0, &["migrate"]);
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
    /// A migrated database (a clone of the template).
    pub async fn new() -> TestDatabase {
        let admin = connect(server_url()).await;
        let template = ensure_template(&admin).await;
        TestDatabase::create(&admin, &format!("template {template}")).await
    }

    /// A database with nothing in it (not even the migrations).
    pub async fn empty() -> TestDatabase {
        let admin = connect(server_url()).await;
        TestDatabase::create(&admin, "").await
    }

    async fn create(admin: &Client, options: &str) -> TestDatabase {
        let name = format!(
            "campaign_elt_test_{}_{}",
            std::process::id(),
            unique_suffix()
        );
        admin
            .batch_execute(&format!("create database {name} {options}"))
            .await
            .unwrap();
        let url = url_for(&name);
        TestDatabase { name, url }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    /// A copy of this database (`create database … template`): nobody may be connected to it.
    pub async fn copy(&self) -> TestDatabase {
        let admin = connect(server_url()).await;
        TestDatabase::create(&admin, &format!("template {}", self.name)).await
    }

    /// Runs `campaign-elt ARGS --database-url URL`.
    pub fn run(&self, args: &[&str]) -> Output {
        run_at(&self.url, args)
    }

    /// Runs the binary and asserts the exit code, returning the output.
    pub fn run_expecting(&self, code: i32, args: &[&str]) -> Output {
        run_expecting_at(&self.url, code, args)
    }

    /// Runs the binary with the environment variables `env` set and asserts the exit code.
    pub fn run_with_env_expecting(&self, code: i32, args: &[&str], env: &[(&str, &str)]) -> Output {
        super::process::run_with_env_expecting_at(&self.url, code, args, env)
    }

    /// `run --max-line-bytes 2048 tests/fixtures/first_night.jsonl` (the limit makes its long
    /// line a `line_too_long` reject), expecting success: the reports become
    /// [`FIRST_NIGHT_REPORTS`](super::FIRST_NIGHT_REPORTS).
    pub fn run_first_night(&self) -> Output {
        let night = fixture("first_night.jsonl");
        self.run_expecting(0, &["run", "--max-line-bytes", "2048", &night])
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        on_the_server_blocking(move |admin| async move {
            let _ = admin
                .batch_execute(&format!("drop database if exists {name} with (force)"))
                .await;
        });
    }
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{}", nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}
