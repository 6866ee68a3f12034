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

/// A self-signed X.509 v1 certificate for `localhost` and its key, made with openssl (whose
/// `x509 -req` without extensions writes v1, as Citus's `citus-auto-ssl` does): (cert, key) PEM.
fn v1_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key, request) = (dir.join("v1.crt"), dir.join("v1.key"), dir.join("v1.csr"));
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl makes the test's certificate");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    let path = |path: &PathBuf| path.to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &path(&key),
        "-out",
        &path(&request),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &path(&request),
        "-signkey",
        &path(&key),
        "-out",
        &path(&cert),
    ]);
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &path(&cert)])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"));
    (cert, key)
}

/// A certificate resolver that serves one certificate and key whatever the client asks.
#[derive(Debug)]
struct Serve(std::sync::Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Serve {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// What the fake server answers once the handshake is done, as a PostgreSQL error.
const HANDSHAKE_DONE: &str = "fake server: the TLS handshake succeeded";

/// A TCP endpoint that speaks as much of PostgreSQL's protocol as a TLS test needs: it accepts
/// the SSLRequest, completes the handshake with `cert`/`key`, reads the startup message and
/// answers with a FATAL error saying [`HANDSHAKE_DONE`]. Serves connections until dropped.
async fn fake_tls_server(cert: &Path, key: &Path) -> (u16, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    // rustls's own `with_single_cert` refuses a v1 certificate; a resolver serves it as is.
    let signing_key = provider.key_provider.load_private_key(key).unwrap();
    let served = std::sync::Arc::new(rustls::sign::CertifiedKey::new(certs, signing_key));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(std::sync::Arc::new(Serve(served)));
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                socket.read_exact(&mut request).await?;
                // length 8, code 80877103: the SSLRequest
                assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47], "an SSLRequest first");
                socket.write_all(b"S").await?;
                let mut tls = acceptor.accept(socket).await?;
                let mut length = [0u8; 4];
                tls.read_exact(&mut length).await?;
                let mut startup = vec![0u8; u32::from_be_bytes(length) as usize - 4];
                tls.read_exact(&mut startup).await?;
                let mut fields = Vec::new();
                for (code, value) in [
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', "28000"),
                    (b'M', HANDSHAKE_DONE),
                ] {
                    fields.push(code);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut message = vec![b'E'];
                message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                message.extend_from_slice(&fields);
                tls.write_all(&message).await?;
                tls.shutdown().await?;
                Ok::<_, std::io::Error>(())
            });
        }
    });
    (port, server)
}

/// libpq encrypts without verifying with sslmode=prefer and require; so must the tool with a
/// server whose certificate is X.509 v1 (Citus's self-signed one is), which certificate
/// verification refuses. verify-ca and verify-full keep verifying, and say what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_and_require_reach_a_server_with_an_x509_v1_certificate() {
    let home = tempfile::tempdir().unwrap();
    let (cert, key) = v1_certificate(home.path());
    let (port, server) = fake_tls_server(&cert, &key).await;
    let url = |query: &str| {
        format!("postgresql://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1&{query}")
    };
    let run = |url: String| {
        let home = home.path().to_owned();
        tokio::task::spawn_blocking(move || run_with_home(&home, &url, &["status"]))
    };
    for mode in ["sslmode=prefer", "sslmode=require"] {
        let output = run(url(mode)).await.unwrap();
        assert_exit(&output, 1, mode);
        assert!(
            stderr(&output).contains(HANDSHAKE_DONE),
            "{mode}: {}",
            stderr(&output)
        );
    }
    let root = format!("sslrootcert={}", cert.display());
    for mode in ["sslmode=verify-ca", "sslmode=verify-full"] {
        let output = run(url(&format!("{mode}&{root}"))).await.unwrap();
        assert_exit(&output, 1, mode);
        let stderr = stderr(&output);
        assert!(
            !stderr.contains(HANDSHAKE_DONE),
            "{mode} connected: {stderr}"
        );
        assert!(
            stderr.contains("X.509 v1") && stderr.contains("reissue it as an X.509 v3"),
            "{mode}: {stderr}"
        );
    }
    // As in libpq, require with a root certificate file verifies the chain (verify-ca).
    let output = run(url(&format!("sslmode=require&{root}"))).await.unwrap();
    assert!(
        stderr(&output).contains("reissue it as an X.509 v3"),
        "{}",
        stderr(&output)
    );
    server.abort();
}

/// Passwords against a server that checks them (a private cluster with `scram-sha-256`; the
/// shared test server trusts everyone): the right one from the URL, `PGPASSWORD` or a `.pgpass`
/// connects, a wrong or missing one fails with PostgreSQL's reason and exit 1, a `.pgpass` that
/// others may read is ignored with a warning, and no password ever shows.
#[tokio::test]
async fn passwords_are_checked_by_a_scram_server_and_never_shown() {
    let password = "scram-pw-5Rt8";
    let wrong = "wrong-pw-2Lm6";
    let cluster = tokio::task::spawn_blocking(move || common::ScramCluster::start(password))
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let url = cluster.url();
    let with = |secret: &str| url.replacen("postgres@", &format!("postgres:{secret}@"), 1);
    let status = ["status", "--json", "-vv"];
    let run = |url: &str, env: &[(&str, &str)]| {
        let mut command = campaign_elt();
        command.env("HOME", home.path()).env_remove("PGPASSWORD");
        for (name, value) in env {
            command.env(name, value);
        }
        command
            .args(["migrate", "-vv", "--database-url", url])
            .output()
            .unwrap();
        let mut command = campaign_elt();
        command.env("HOME", home.path()).env_remove("PGPASSWORD");
        for (name, value) in env {
            command.env(name, value);
        }
        command
            .args(status)
            .args(["--database-url", url])
            .output()
            .unwrap()
    };
    let mut outputs = Vec::new();

    let right = run(&with(password), &[]);
    assert_exit(&right, 0, "the right password in the URL");
    outputs.push(right);
    let right = run(&url, &[("PGPASSWORD", password)]);
    assert_exit(&right, 0, "the right password in PGPASSWORD");
    outputs.push(right);

    for (what, output) in [
        ("a wrong password in the URL", run(&with(wrong), &[])),
        ("a wrong PGPASSWORD", run(&url, &[("PGPASSWORD", wrong)])),
        ("no password", run(&url, &[])),
    ] {
        assert_exit(&output, 1, what);
        let said = stderr(&output);
        assert!(
            said.contains("password authentication failed") || said.contains("password missing"),
            "{what}: {said}"
        );
        outputs.push(output);
    }

    // .pgpass: used when private to its owner, ignored (with a warning) when others may read it.
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{}:*:postgres:{password}\n", cluster.port),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let from_pgpass = run(&url, &[]);
    assert_exit(&from_pgpass, 0, "the password from ~/.pgpass");
    outputs.push(from_pgpass);
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let readable = run(&url, &[]);
    assert_exit(&readable, 1, "a ~/.pgpass others may read");
    assert!(
        stderr(&readable).contains("pgpass"),
        "{}",
        stderr(&readable)
    );
    outputs.push(readable);

    for output in &outputs {
        let all = stdout_and_stderr(output);
        for secret in [password, wrong] {
            assert!(!all.contains(secret), "password {secret} shown:\n{all}");
        }
    }
    drop(cluster);
}
