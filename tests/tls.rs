//! TLS against the local server and credentials that never show (issue 6).
//!
//! The server must have `ssl = on` (Debian's packages do, with the self-signed "snakeoil"
//! certificate for `localhost`); these tests fail, not skip, when it is off.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_exit, campaign_elt, fixture, stderr, stdout, stdout_and_stderr, TestDatabase};

/// An unrelated CA (shared with the unit tests in src/config/tls.rs): it signed nothing the server has.
const UNRELATED_CA: &str = include_str!("fixtures/unrelated-ca.pem");

/// `scheme://user@HOST:port/db?query` with the host replaced (and the address kept in
/// `hostaddr`, so that a name like `localhost` is only used for the certificate check).
fn url_with_host(url: &str, host: &str, query: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, rest) = rest.split_once('@').expect("a user in the test URL");
    let (host_port, rest) = rest.split_once('/').expect("a database in the URL");
    let (address, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
    let (database, old_query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut params: Vec<&str> = old_query.split('&').filter(|p| !p.is_empty()).collect();
    let hostaddr = format!("hostaddr={address}");
    if address != host {
        params.push(&hostaddr);
    }
    params.extend(query.split('&').filter(|p| !p.is_empty()));
    format!(
        "{scheme}://{user}@{host}:{port}/{database}?{}",
        params.join("&")
    )
}

/// The server's certificate, copied where the test can name it; fails loudly when TLS is off.
async fn server_certificate(dir: &Path) -> PathBuf {
    let admin = common::connect(common::server_url()).await;
    let ssl: String = admin.query_one("show ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the test server must have ssl = on (Debian's default, with the snakeoil certificate)"
    );
    let file: String = admin
        .query_one("show ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let pem = std::fs::read(&file).unwrap_or_else(|e| {
        panic!(
            "cannot read the server certificate {file} (run the tests as root or as postgres): {e}"
        )
    });
    let path = dir.join("server.crt");
    std::fs::write(&path, pem).unwrap();
    path
}

/// The binary with HOME pointing at an empty directory: no `~/.postgresql/root.crt`, no
/// `~/.pgpass` from the machine.
fn run_with_home(home: &Path, url: &str, args: &[&str]) -> Output {
    campaign_elt()
        .env("HOME", home)
        .args(args)
        .args(["--database-url", url])
        .output()
        .unwrap()
}

#[tokio::test]
async fn require_encrypts_and_verify_full_needs_the_right_root_certificate() {
    let home = tempfile::tempdir().unwrap();
    let certificate = server_certificate(home.path()).await;
    let unrelated = home.path().join("unrelated.crt");
    std::fs::write(&unrelated, UNRELATED_CA).unwrap();
    let db = TestDatabase::new().await;
    db.client()
        .await
        .batch_execute(
            "create view public.connection_security as
             select ssl, version from pg_stat_ssl where pid = pg_backend_pid()",
        )
        .await
        .unwrap();
    let report = ["report", "public.connection_security", "--format", "csv"];
    let ip = db
        .url
        .split('@')
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_owned();

    // require: TLS without a certificate check (no root certificate file in HOME).
    let output = run_with_home(
        home.path(),
        &url_with_host(&db.url, &ip, "sslmode=require"),
        &report,
    );
    assert_exit(&output, 0, "sslmode=require");
    let csv = stdout(&output);
    assert!(
        csv.contains("true,TLSv1."),
        "the connection is encrypted: {csv}"
    );

    // disable: no TLS, to show the view would say so.
    let output = run_with_home(
        home.path(),
        &url_with_host(&db.url, &ip, "sslmode=disable"),
        &report,
    );
    assert_exit(&output, 0, "sslmode=disable");
    assert!(stdout(&output).contains("false"));

    // verify-full without any root certificate: refused, naming the missing file.
    let output = run_with_home(
        home.path(),
        &url_with_host(&db.url, "localhost", "sslmode=verify-full"),
        &report,
    );
    assert_exit(&output, 1, "verify-full without a root certificate");
    let message = stderr(&output);
    assert!(message.contains("root.crt"), "{message}");

    // verify-full with an unrelated root: the chain does not verify.
    let with_root = |host: &str, mode: &str, root: &Path| {
        url_with_host(
            &db.url,
            host,
            &format!("sslmode={mode}&sslrootcert={}", root.display()),
        )
    };
    let output = run_with_home(
        home.path(),
        &with_root("localhost", "verify-full", &unrelated),
        &report,
    );
    assert_exit(&output, 1, "verify-full with an unrelated root");
    let message = stderr(&output).to_lowercase();
    assert!(
        message.contains("cannot connect") && message.contains("certificate"),
        "{message}"
    );

    // verify-full with the server's certificate as the root, by its name: succeeds.
    let output = run_with_home(
        home.path(),
        &with_root("localhost", "verify-full", &certificate),
        &report,
    );
    assert_exit(
        &output,
        0,
        "verify-full by name with the server's certificate",
    );
    assert!(stdout(&output).contains("true,TLSv1."));

    // ... but not by an address the certificate does not name.
    let output = run_with_home(
        home.path(),
        &with_root(&ip, "verify-full", &certificate),
        &report,
    );
    assert_exit(
        &output,
        1,
        "verify-full by an address the certificate does not name",
    );
    // verify-ca checks the chain only, so the address is fine.
    let output = run_with_home(
        home.path(),
        &with_root(&ip, "verify-ca", &certificate),
        &report,
    );
    assert_exit(&output, 0, "verify-ca by address");

    // PGSSLMODE / PGSSLROOTCERT do the same as the URL.
    let output = campaign_elt()
        .env("HOME", home.path())
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &certificate)
        .args(report)
        .args(["--database-url", &url_with_host(&db.url, "localhost", "")])
        .output()
        .unwrap();
    assert_exit(&output, 0, "PGSSLMODE=verify-full with PGSSLROOTCERT");
    assert!(stdout(&output).contains("true,TLSv1."));
}

/// Passwords from the URL, PGPASSWORD and a .pgpass file never appear in stdout or stderr of
/// successful and failing commands, with debug logging and `--json`. (The test server trusts
/// every local connection, so any password "works".)
#[tokio::test]
async fn passwords_never_appear_in_any_output() {
    let home = tempfile::tempdir().unwrap();
    let db = TestDatabase::new().await;
    let in_url = "pw-in-url-7Hq2";
    let in_env = "pw-in-env-9Zk4";
    let in_pgpass = "pw-in-pgpass-3Xc8";
    let passfile = home.path().join("pgpass");
    std::fs::write(&passfile, format!("*:*:*:*:{in_pgpass}\n")).unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (user, rest) = rest.split_once('@').unwrap();
    let with_password = format!("{scheme}://{user}:{in_url}@{rest}");
    let refused = |url: &str| {
        // the same URL on a port where nothing listens
        let (before, after) = url.split_once(":5432/").expect("port 5432 in the test URL");
        format!("{before}:1/{after}")
    };
    let missing_db = |url: &str| url.replace(&format!("/{}", db.name), "/no_such_database_x");
    let night = fixture("first_night.jsonl");
    let commands: Vec<Vec<&str>> = vec![
        vec!["run", "--json", "-vv", "--max-line-bytes", "2048", &night],
        vec!["status", "--json", "-vv"],
        vec!["report", "page_loads", "--format", "json", "-vv"],
        vec!["run", "--json", "-vv", "/no/such/file.jsonl"],
        vec!["purge-rejects", "--json", "-vv", "--older-than", "30d"],
    ];
    let mut outputs = Vec::new();
    for url in [
        with_password.clone(),
        refused(&with_password),
        missing_db(&with_password),
    ] {
        for command in &commands {
            outputs.push(run_with_home(home.path(), &url, command));
        }
    }
    for url in [db.url.clone(), refused(&db.url), missing_db(&db.url)] {
        for command in &commands {
            // PGPASSWORD
            outputs.push(
                campaign_elt()
                    .env("HOME", home.path())
                    .env("PGPASSWORD", in_env)
                    .args(command)
                    .args(["--database-url", &url])
                    .output()
                    .unwrap(),
            );
            // .pgpass via PGPASSFILE
            outputs.push(
                campaign_elt()
                    .env("HOME", home.path())
                    .env("PGPASSFILE", &passfile)
                    .args(command)
                    .args(["--database-url", &url])
                    .output()
                    .unwrap(),
            );
            // DATABASE_URL instead of the flag
            outputs.push(
                campaign_elt()
                    .env("HOME", home.path())
                    .env("DATABASE_URL", url.replacen("@", &format!(":{in_url}@"), 1))
                    .args(command)
                    .output()
                    .unwrap(),
            );
        }
    }
    assert!(
        outputs.iter().any(|o| o.status.code() == Some(0))
            && outputs.iter().any(|o| o.status.code() == Some(1)),
        "both successes and failures are checked"
    );
    for output in &outputs {
        let all = stdout_and_stderr(output);
        for password in [in_url, in_env, in_pgpass] {
            assert!(
                !all.contains(password),
                "password {password} leaked:\n{all}"
            );
        }
    }
}
