//! `connect` against the test server (`CAMPAIGN_ELT_TEST_DATABASE_URL`) and against fakes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn test_database_url() -> String {
    std::env::var("CAMPAIGN_ELT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_sslmode(url: &str, mode: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}sslmode={mode}")
    } else {
        format!("{url} sslmode={mode}")
    }
}

/// Only the URL counts: the process environment must not change what these tests do.
fn settings_for(url: &str) -> ConnectionParams {
    resolve(Some(url), &|_| None).unwrap()
}

#[tokio::test]
async fn disable_and_prefer_connect_to_the_test_server() {
    for mode in ["disable", "prefer", "allow"] {
        let settings = settings_for(&with_sslmode(&test_database_url(), mode));
        let client = connect(&settings)
            .await
            .unwrap_or_else(|err| panic!("sslmode={mode}: {err:#}"));
        let row = client
            .query_one("select current_setting('application_name'), ssl from pg_stat_ssl where pid = pg_backend_pid()", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), DEFAULT_APPLICATION_NAME);
        if mode == "disable" {
            assert!(!row.get::<_, bool>(1), "sslmode=disable must not use TLS");
        }
    }
}

/// A server that answers the TLS request with "no", as one with `ssl = off` does.
async fn server_without_tls() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut ssl_request = [0; 8];
            if socket.read_exact(&mut ssl_request).await.is_ok() {
                let _ = socket.write_all(b"N").await;
            }
        }
    });
    port
}

#[tokio::test]
async fn require_fails_clearly_without_tls() {
    let port = server_without_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.crt");
    std::fs::write(&root, crate::db::tls::test_certs::CA).unwrap();
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!(
            "postgres://postgres:hunter2@127.0.0.1:{port}/postgres?sslmode={mode}&sslrootcert={}",
            root.display()
        );
        let err = format!("{:#}", connect(&settings_for(&url)).await.unwrap_err());
        assert!(
            err.starts_with(&format!(
                "cannot connect to postgres@127.0.0.1:{port}/postgres: "
            )),
            "{err}"
        );
        assert!(err.contains("server does not support TLS"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[tokio::test]
async fn refused_connection_names_the_target_but_not_the_password() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let settings = settings_for(&format!(
        "postgres://postgres:hunter2@127.0.0.1:{port}/campaign?sslmode=disable"
    ));
    let err = connect(&settings).await.unwrap_err();
    let shown = format!("{err:#} {err:?}");
    assert!(
        shown.starts_with(&format!(
            "cannot connect to postgres@127.0.0.1:{port}/campaign: "
        )),
        "{shown}"
    );
    assert!(shown.to_lowercase().contains("refused"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn verify_ca_without_a_root_certificate_file_says_which_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("root.crt");
    let settings = settings_for(&format!(
        "host=127.0.0.1 sslmode=verify-ca sslrootcert={}",
        missing.display()
    ));
    let err = format!("{:#}", connect(&settings).await.unwrap_err());
    assert!(
        err.contains("cannot connect to") && err.contains(&missing.display().to_string()),
        "{err}"
    );

    let not_pem = dir.path().join("empty.crt");
    std::fs::write(&not_pem, "no certificate here\n").unwrap();
    let settings = settings_for(&format!(
        "host=127.0.0.1 sslmode=verify-full sslrootcert={}",
        not_pem.display()
    ));
    let err = format!("{:#}", connect(&settings).await.unwrap_err());
    assert!(err.contains("holds no certificate"), "{err}");
}
