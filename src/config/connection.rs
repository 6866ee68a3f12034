//! Resolves the database connection like psql does: URL, `DATABASE_URL`, libpq variables, `.pgpass`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::Host;

use super::tls::{self, Check};
use super::{conninfo, pgpass};

/// The `application_name` the server sees unless the connection string or `PGAPPNAME` names one.
pub const DEFAULT_APPLICATION_NAME: &str = "campaign-elt";

/// A resolved connection: what to connect with, and a description safe to print (no password).
#[derive(Clone)]
pub struct ConnectionSettings {
    /// Host, port, user, password, dbname and the rest, for tokio-postgres. Its `ssl_mode` is only
    /// whether to ask for TLS; [`ConnectionSettings::ssl_mode`] says what to check.
    pub config: tokio_postgres::Config,
    /// e.g. `postgres@127.0.0.1:5432/campaign` — never contains the password.
    pub display: String,
    /// libpq's sslmode.
    pub ssl_mode: SslMode,
    /// The trusted roots for verify-ca / verify-full: `sslrootcert`, else `~/.postgresql/root.crt`;
    /// `None` when neither is known (no `HOME`).
    pub ssl_root_cert: Option<RootCerts>,
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("display", &self.display)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .finish()
    }
}

/// libpq's `sslmode`: whether to use TLS and how much of the server certificate to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, no certificate check (libpq tries plain first; we try TLS
    /// first, like prefer).
    Allow,
    /// TLS if the server offers it, no certificate check.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is checked like verify-ca only if root certificates exist.
    Require,
    /// TLS; the certificate chain must lead to a trusted root; the host name is not checked.
    VerifyCa,
    /// TLS; chain and host name are checked.
    VerifyFull,
}

impl SslMode {
    const ALL: [(&'static str, SslMode); 6] = [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];
}

impl FromStr for SslMode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match SslMode::ALL.iter().find(|(name, _)| *name == s) {
            Some((_, mode)) => Ok(*mode),
            None => bail!(
                "invalid sslmode {s:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
            ),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = SslMode::ALL
            .iter()
            .find(|(_, mode)| mode == self)
            .map_or("?", |(name, _)| name);
        f.write_str(name)
    }
}

/// Where the trusted root certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`, which implies verify-full).
    System,
}

/// The libpq variables read, and the connection parameter each fills in.
const LIBPQ_VARIABLES: [(&str, &str); 10] = [
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGDATABASE", "dbname"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGPASSFILE", "passfile"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGAPPNAME", "application_name"),
];

/// Resolves the connection from an explicit URL (`--database-url`), else `DATABASE_URL`, else the
/// libpq variables and defaults. `env` looks up an environment variable (injected for tests).
///
/// The supported subset of libpq:
/// - the connection string comes from `--database-url`, else `DATABASE_URL`; it is a
///   `postgres://` / `postgresql://` URL or a `key=value` string;
/// - its values win; these variables fill in what it leaves unset: `PGHOST` (a name, an address or
///   a Unix-socket directory starting with `/`), `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`,
///   `PGSSLMODE`, `PGSSLROOTCERT`, `PGPASSFILE`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`; an empty
///   variable counts as unset;
/// - defaults: host = the socket directory `/var/run/postgresql` if it exists (Debian's libpq),
///   else `/tmp` (upstream libpq); port 5432; user = `USER`, else `LOGNAME`, else `postgres`;
///   dbname = user; application_name `campaign-elt`;
/// - without a password, the first matching line of `PGPASSFILE` or `~/.pgpass` (ignored with a
///   warning if group or others can read it);
/// - sslmode disable, allow, prefer (default), require, verify-ca, verify-full; sslrootcert is a
///   PEM file (default `~/.postgresql/root.crt`) or `system`;
/// - other keywords (`options`, `hostaddr`, `keepalives`, `target_session_attrs`, ...) go to
///   tokio-postgres, which rejects those it does not know (`sslcert`, `service`, ...); other `PG*`
///   variables are not read.
pub fn resolve(
    database_url: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnectionSettings> {
    resolve_with_socket_dir(database_url, env, default_socket_dir())
}

/// `resolve` with the process environment.
pub fn resolve_from_process_env(database_url: Option<&str>) -> Result<ConnectionSettings> {
    resolve(database_url, &|name| std::env::var(name).ok())
}

/// libpq's default host when none is given: Debian builds use `/var/run/postgresql`, upstream
/// builds `/tmp`; we take the first that exists.
fn default_socket_dir() -> &'static str {
    if std::path::Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql"
    } else {
        "/tmp"
    }
}

fn resolve_with_socket_dir(
    database_url: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    socket_dir: &str,
) -> Result<ConnectionSettings> {
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    let source = match database_url.filter(|url| !url.trim().is_empty()) {
        Some(url) => Some((url.to_owned(), "--database-url")),
        None => env("DATABASE_URL").map(|url| (url, "DATABASE_URL")),
    };

    // Where each parameter came from, for error messages.
    let mut params: BTreeMap<String, (String, &str)> = BTreeMap::new();
    if let Some((url, origin)) = &source {
        let parsed = conninfo::parse(url)
            .with_context(|| format!("invalid connection string in {origin}"))?;
        for (key, value) in parsed {
            params.insert(key, (value, origin));
        }
    }
    params.retain(|_, (value, _)| !value.is_empty());
    for (variable, key) in LIBPQ_VARIABLES {
        if !params.contains_key(key) {
            if let Some(value) = env(variable) {
                params.insert(key.to_owned(), (value, variable));
            }
        }
    }
    let take = |params: &mut BTreeMap<_, _>, key: &str| params.remove(key);

    let ssl_mode_given = match take(&mut params, "sslmode") {
        Some((value, origin)) => Some(
            value
                .parse::<SslMode>()
                .with_context(|| format!("invalid setting in {origin}"))?,
        ),
        None => None,
    };
    let home = env("HOME").map(PathBuf::from);
    let ssl_root_cert = match take(&mut params, "sslrootcert") {
        Some((value, _)) if value == "system" => Some(RootCerts::System),
        Some((value, _)) => Some(RootCerts::File(value.into())),
        None => home
            .as_ref()
            .map(|home| RootCerts::File(home.join(".postgresql/root.crt"))),
    };
    let ssl_mode = match (ssl_mode_given, &ssl_root_cert) {
        (None, Some(RootCerts::System)) => SslMode::VerifyFull,
        (Some(mode), Some(RootCerts::System)) if mode != SslMode::VerifyFull => {
            bail!("weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")")
        }
        (mode, _) => mode.unwrap_or_default(),
    };
    let password = take(&mut params, "password").map(|(value, _)| value);
    let passfile = take(&mut params, "passfile").map(|(value, _)| PathBuf::from(value));

    let user = match take(&mut params, "user") {
        Some((user, _)) => user,
        None => env("USER")
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "postgres".to_owned()),
    };
    let dbname = take(&mut params, "dbname").map_or_else(|| user.clone(), |(dbname, _)| dbname);
    // libpq connects to hostaddr alone when no host is given; otherwise the default is a socket.
    let host = match take(&mut params, "host") {
        Some((host, _)) => Some(host),
        None if params.contains_key("hostaddr") => None,
        None => Some(socket_dir.to_owned()),
    };
    let port = match take(&mut params, "port") {
        Some((port, origin)) => {
            if !port
                .split(',')
                .all(|port| port.is_empty() || port.parse::<u16>().is_ok())
            {
                bail!("invalid port {port:?} in {origin}");
            }
            port
        }
        None => "5432".to_owned(),
    };
    let application_name = take(&mut params, "application_name")
        .map_or_else(|| DEFAULT_APPLICATION_NAME.to_owned(), |(name, _)| name);

    // Everything else (connect_timeout, options, keepalives, target_session_attrs, ...) goes to
    // tokio-postgres as it is; it rejects what it does not know. The password is set separately so
    // that no parse error can ever involve it.
    let mut conninfo = String::new();
    let known = [
        ("host", host.as_ref()),
        ("port", Some(&port)),
        ("user", Some(&user)),
        ("dbname", Some(&dbname)),
        ("application_name", Some(&application_name)),
    ];
    let rest: Vec<_> = params
        .iter()
        .map(|(key, (value, _))| (key.as_str(), value))
        .collect();
    let known = known
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)));
    for (key, value) in known.chain(rest) {
        conninfo.push_str(&format!("{key}={} ", conninfo::quote(value)));
    }
    let mut config: tokio_postgres::Config =
        conninfo.parse().context("invalid connection settings")?;

    let display = display(&config);
    let password = password.or_else(|| {
        let passfile = passfile.or_else(|| home.map(|home| home.join(".pgpass")))?;
        let first_host = match config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(path)) => path.to_string_lossy().into_owned(),
            None => config.get_hostaddrs().first()?.to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        pgpass::lookup(
            &passfile,
            pgpass::Target {
                host: &first_host,
                port,
                dbname: &dbname,
                user: &user,
            },
        )
    });
    if let Some(password) = password {
        config.password(password);
    }

    // TLS is never used over Unix sockets (the server refuses it there anyway).
    let all_sockets = config.get_hostaddrs().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|host| matches!(host, Host::Unix(_)));
    config.ssl_mode(match ssl_mode {
        _ if all_sockets => tokio_postgres::config::SslMode::Disable,
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });

    Ok(ConnectionSettings {
        config,
        display,
        ssl_mode,
        ssl_root_cert,
    })
}

/// `user@host:port[,host:port...]/dbname`; a socket host is shown as its directory.
fn display(config: &tokio_postgres::Config) -> String {
    let names: Vec<String> = match config.get_hosts() {
        [] => config
            .get_hostaddrs()
            .iter()
            .map(|addr| addr.to_string())
            .collect(),
        hosts => hosts
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect(),
    };
    let ports = config.get_ports();
    let hosts: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            if name.contains(':') && !name.starts_with('/') {
                format!("[{name}]:{port}")
            } else {
                format!("{name}:{port}")
            }
        })
        .collect();
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or_default(),
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

impl ConnectionSettings {
    /// How to check the server certificate, or `None` for no TLS at all.
    fn tls_check(&self) -> Option<Check> {
        if self.config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
            return None;
        }
        Some(match self.ssl_mode {
            SslMode::Disable => return None,
            SslMode::Allow | SslMode::Prefer => Check::Nothing,
            // libpq: "if a root CA file exists, require behaves like verify-ca"
            SslMode::Require if tls::roots_exist(self.ssl_root_cert.as_ref()) => Check::Chain,
            SslMode::Require => Check::Nothing,
            SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndName,
        })
    }
}

/// Connects, spawns the connection task (its error is logged) and returns the client.
///
/// Errors name `user@host:port/dbname`, never the password.
pub async fn connect(settings: &ConnectionSettings) -> Result<tokio_postgres::Client> {
    let context = || format!("cannot connect to {}", settings.display);
    match settings.tls_check() {
        None => spawn(
            settings.config.connect(tokio_postgres::NoTls).await,
            settings,
        )
        .with_context(context),
        Some(check) => {
            let tls =
                tls::client_config(check, settings.ssl_root_cert.as_ref()).with_context(context)?;
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
            spawn(settings.config.connect(tls).await, settings).with_context(context)
        }
    }
}

fn spawn<S, T>(
    connected: Result<
        (tokio_postgres::Client, tokio_postgres::Connection<S, T>),
        tokio_postgres::Error,
    >,
    settings: &ConnectionSettings,
) -> Result<tokio_postgres::Client>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = connected?;
    let address = settings.display.clone();
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            // The command that used the connection reports the failure itself.
            tracing::debug!("database connection to {address} failed: {err}");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SOCKET_DIR: &str = "/run/test-sockets";

    fn resolve_in(url: Option<&str>, vars: &[(&str, &str)]) -> Result<ConnectionSettings> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve_with_socket_dir(url, &move |name| vars.get(name).cloned(), SOCKET_DIR)
    }

    fn ok(url: Option<&str>, vars: &[(&str, &str)]) -> ConnectionSettings {
        resolve_in(url, vars).unwrap()
    }

    fn password(settings: &ConnectionSettings) -> Option<&str> {
        settings
            .config
            .get_password()
            .map(|p| std::str::from_utf8(p).unwrap())
    }

    #[test]
    fn explicit_url_wins_over_database_url_and_libpq_variables() {
        let vars = [
            ("DATABASE_URL", "postgres://env-user@env-host/env-db"),
            ("PGHOST", "pg-host"),
            ("PGUSER", "pg-user"),
        ];
        let settings = ok(Some("postgresql://flag-user@flag-host:6000/flag-db"), &vars);
        assert_eq!(settings.display, "flag-user@flag-host:6000/flag-db");
        assert_eq!(ok(None, &vars).display, "env-user@env-host:5432/env-db");
        // an empty --database-url or DATABASE_URL counts as unset
        assert_eq!(ok(Some(""), &vars).display, "env-user@env-host:5432/env-db");
        let vars = [
            ("DATABASE_URL", ""),
            ("PGHOST", "pg-host"),
            ("PGUSER", "pg-user"),
        ];
        assert_eq!(ok(None, &vars).display, "pg-user@pg-host:5432/pg-user");
    }

    #[test]
    fn url_values_win_and_variables_fill_in_the_rest() {
        let vars = [
            ("PGHOST", "pg-host"),
            ("PGPORT", "7000"),
            ("PGUSER", "pg-user"),
            ("PGPASSWORD", "pg-password"),
            ("PGDATABASE", "pg-db"),
            ("PGAPPNAME", "pg-app"),
        ];
        let settings = ok(Some("postgres://url-user@url-host/url-db"), &vars);
        // a host without a port in the URL leaves the port to PGPORT, as in libpq
        assert_eq!(settings.display, "url-user@url-host:7000/url-db");
        assert_eq!(password(&settings), Some("pg-password"));
        assert_eq!(settings.config.get_application_name(), Some("pg-app"));

        let settings = ok(
            Some("host=kv-host password=kv-password application_name=kv-app"),
            &vars,
        );
        assert_eq!(settings.display, "pg-user@kv-host:7000/pg-db");
        assert_eq!(password(&settings), Some("kv-password"));
        assert_eq!(settings.config.get_application_name(), Some("kv-app"));
    }

    #[test]
    fn each_libpq_variable() {
        let settings = ok(
            None,
            &[
                ("PGHOST", "db.example"),
                ("PGPORT", "5433"),
                ("PGUSER", "alice"),
                ("PGPASSWORD", "s3cret"),
                ("PGDATABASE", "campaign"),
                ("PGSSLMODE", "verify-ca"),
                ("PGSSLROOTCERT", "/etc/ca.pem"),
                ("PGCONNECT_TIMEOUT", "7"),
                ("PGAPPNAME", "nightly"),
            ],
        );
        assert_eq!(
            settings.config.get_hosts(),
            [Host::Tcp("db.example".into())]
        );
        assert_eq!(settings.config.get_ports(), [5433]);
        assert_eq!(settings.config.get_user(), Some("alice"));
        assert_eq!(password(&settings), Some("s3cret"));
        assert_eq!(settings.config.get_dbname(), Some("campaign"));
        assert_eq!(settings.ssl_mode, SslMode::VerifyCa);
        assert_eq!(
            settings.ssl_root_cert,
            Some(RootCerts::File("/etc/ca.pem".into()))
        );
        assert_eq!(
            settings.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );
        assert_eq!(settings.config.get_application_name(), Some("nightly"));
        assert_eq!(settings.display, "alice@db.example:5433/campaign");
    }

    #[test]
    fn pghost_socket_directory() {
        let settings = ok(None, &[("PGHOST", "/var/run/postgresql"), ("PGUSER", "u")]);
        assert_eq!(
            settings.config.get_hosts(),
            [Host::Unix("/var/run/postgresql".into())]
        );
        assert_eq!(settings.display, "u@/var/run/postgresql:5432/u");
        // never TLS over a socket, whatever the sslmode
        let settings = ok(None, &[("PGHOST", "/tmp"), ("PGSSLMODE", "verify-full")]);
        assert_eq!(
            settings.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        assert_eq!(settings.tls_check(), None);
    }

    #[test]
    fn defaults() {
        let settings = ok(None, &[("USER", "carol"), ("LOGNAME", "not-used")]);
        assert_eq!(settings.config.get_hosts(), [Host::Unix(SOCKET_DIR.into())]);
        assert_eq!(settings.config.get_ports(), [5432]);
        assert_eq!(settings.config.get_user(), Some("carol"));
        assert_eq!(
            settings.config.get_dbname(),
            Some("carol"),
            "dbname defaults to the user"
        );
        assert_eq!(settings.config.get_password(), None);
        assert_eq!(
            settings.config.get_application_name(),
            Some(DEFAULT_APPLICATION_NAME)
        );
        assert_eq!(settings.ssl_mode, SslMode::Prefer);
        assert_eq!(
            settings.ssl_root_cert, None,
            "no HOME, no default root certificate"
        );
        assert_eq!(settings.display, format!("carol@{SOCKET_DIR}:5432/carol"));

        assert_eq!(
            ok(None, &[("LOGNAME", "dave")]).config.get_user(),
            Some("dave")
        );
        assert_eq!(ok(None, &[]).config.get_user(), Some("postgres"));
        let settings = ok(None, &[("HOME", "/home/erin")]);
        assert_eq!(
            settings.ssl_root_cert,
            Some(RootCerts::File("/home/erin/.postgresql/root.crt".into()))
        );
        assert!(["/var/run/postgresql", "/tmp"].contains(&default_socket_dir()));
    }

    #[test]
    fn url_forms() {
        let settings = ok(Some("postgres://u@[::1]:6000,h2/d?connect_timeout=3"), &[]);
        assert_eq!(settings.display, "u@[::1]:6000,h2:5432/d");
        let settings = ok(Some("postgresql://u@%2Ftmp%2Fpg:5433/d"), &[]);
        assert_eq!(settings.display, "u@/tmp/pg:5433/d");
        let settings = ok(Some("user=u host=h port=1 dbname='my db'"), &[]);
        assert_eq!(settings.display, "u@h:1/my db");
    }

    #[test]
    fn hostaddr_without_host_connects_over_tcp() {
        let settings = ok(Some("hostaddr=10.0.0.5 user=u dbname=d"), &[]);
        assert_eq!(settings.config.get_hosts(), []);
        assert_eq!(settings.display, "u@10.0.0.5:5432/d");
        assert_eq!(settings.tls_check(), Some(Check::Nothing));
    }

    #[test]
    fn unsupported_or_malformed_settings_are_errors() {
        let err = format!(
            "{:#}",
            resolve_in(Some("postgres://h/d?sslcert=/x.pem"), &[]).unwrap_err()
        );
        assert!(err.contains("sslcert"), "{err}");
        let err = format!("{:#}", resolve_in(None, &[("PGPORT", "54x")]).unwrap_err());
        assert!(err.contains("invalid port \"54x\" in PGPORT"), "{err}");
        let err = format!("{:#}", resolve_in(Some("mysql://h/d"), &[]).unwrap_err());
        assert!(err.contains("--database-url"), "{err}");
    }

    #[test]
    fn pgpass_from_pgpassfile_and_home() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let write = |path: &std::path::Path, contents: &str| {
            std::fs::write(path, contents).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        write(
            &home.path().join(".pgpass"),
            "h:5432:d:u:from-home\nlocalhost:*:*:*:socket\n",
        );
        let passfile = home.path().join("other");
        write(&passfile, "*:*:*:u:from-passfile\n");
        let home_var = ("HOME", home.path().to_str().unwrap());
        let passfile_var = ("PGPASSFILE", passfile.to_str().unwrap());

        let settings = ok(Some("postgres://u@h/d"), &[home_var]);
        assert_eq!(password(&settings), Some("from-home"));
        let settings = ok(Some("postgres://u@h/d"), &[home_var, passfile_var]);
        assert_eq!(password(&settings), Some("from-passfile"));
        let settings = ok(
            Some(&format!(
                "host=h user=u dbname=d passfile={}",
                passfile.display()
            )),
            &[home_var],
        );
        assert_eq!(password(&settings), Some("from-passfile"));
        // a socket host matches `localhost`
        let settings = ok(None, &[home_var, ("PGUSER", "x")]);
        assert_eq!(password(&settings), Some("socket"));
        // a password given otherwise wins
        let settings = ok(Some("postgres://u:given@h/d"), &[home_var]);
        assert_eq!(password(&settings), Some("given"));
        let settings = ok(Some("postgres://u@h/d"), &[home_var, ("PGPASSWORD", "env")]);
        assert_eq!(password(&settings), Some("env"));
        // no match, no password
        let settings = ok(Some("postgres://v@h2/d"), &[home_var]);
        assert_eq!(password(&settings), None);
        // readable by others: ignored (with a warning)
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let settings = ok(Some("postgres://u@h/d"), &[passfile_var]);
        assert_eq!(password(&settings), None);
    }

    #[test]
    fn every_sslmode_from_url_conninfo_and_env() {
        for (name, mode) in SslMode::ALL {
            assert_eq!(
                ok(Some(&format!("postgres://h/d?sslmode={name}")), &[]).ssl_mode,
                mode
            );
            assert_eq!(
                ok(Some(&format!("host=h sslmode={name}")), &[]).ssl_mode,
                mode
            );
            assert_eq!(
                ok(None, &[("PGHOST", "h"), ("PGSSLMODE", name)]).ssl_mode,
                mode
            );
            assert_eq!(mode.to_string(), name);
        }
        let url_wins = ok(
            Some("postgres://h/d?sslmode=disable"),
            &[("PGSSLMODE", "verify-full")],
        );
        assert_eq!(url_wins.ssl_mode, SslMode::Disable);
    }

    #[test]
    fn sslmode_maps_to_tokio_postgres_and_certificate_checks() {
        use tokio_postgres::config::SslMode as Wire;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.crt");
        std::fs::write(&root, "not read here").unwrap();
        let cases = [
            ("disable", Wire::Disable, None, None),
            (
                "allow",
                Wire::Prefer,
                Some(Check::Nothing),
                Some(Check::Nothing),
            ),
            (
                "prefer",
                Wire::Prefer,
                Some(Check::Nothing),
                Some(Check::Nothing),
            ),
            (
                "require",
                Wire::Require,
                Some(Check::Nothing),
                Some(Check::Chain),
            ),
            (
                "verify-ca",
                Wire::Require,
                Some(Check::Chain),
                Some(Check::Chain),
            ),
            (
                "verify-full",
                Wire::Require,
                Some(Check::ChainAndName),
                Some(Check::ChainAndName),
            ),
        ];
        for (name, wire, without_root, with_root) in cases {
            let settings = ok(Some(&format!("host=h sslmode={name}")), &[]);
            assert_eq!(settings.config.get_ssl_mode(), wire, "{name}");
            assert_eq!(settings.tls_check(), without_root, "{name}");
            let url = format!("host=h sslmode={name} sslrootcert={}", root.display());
            assert_eq!(
                ok(Some(&url), &[]).tls_check(),
                with_root,
                "{name} with a root certificate"
            );
        }
    }

    #[test]
    fn sslrootcert_system_means_verify_full() {
        let settings = ok(Some("postgres://h/d?sslrootcert=system"), &[]);
        assert_eq!(
            (settings.ssl_mode, settings.ssl_root_cert),
            (SslMode::VerifyFull, Some(RootCerts::System))
        );
        let err = format!(
            "{:#}",
            resolve_in(
                Some("postgres://h/d?sslrootcert=system&sslmode=require"),
                &[]
            )
            .unwrap_err()
        );
        assert!(err.contains("verify-full"), "{err}");
    }

    #[test]
    fn invalid_sslmode_is_a_clear_error() {
        let err = format!(
            "{:#}",
            resolve_in(Some("postgres://h/d?sslmode=verify_full"), &[]).unwrap_err()
        );
        assert!(
            err.contains("--database-url")
                && err.contains("\"verify_full\"")
                && err.contains("verify-full"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            resolve_in(None, &[("PGSSLMODE", "on")]).unwrap_err()
        );
        assert!(err.contains("PGSSLMODE") && err.contains("\"on\""), "{err}");
    }

    #[test]
    fn password_never_shown() {
        let secret = "hunter2-secret";
        for settings in [
            ok(Some(&format!("postgres://u:{secret}@h/d")), &[]),
            ok(Some(&format!("host=h password={secret}")), &[]),
            ok(None, &[("PGPASSWORD", secret)]),
        ] {
            assert_eq!(password(&settings), Some(secret));
            assert!(!settings.display.contains(secret));
            assert!(!format!("{settings:?}").contains(secret), "{settings:?}");
        }
        for (url, vars) in [
            (format!("postgres://u:{secret}@h:notaport/d"), vec![]),
            (format!("postgres://u:{secret}@h/d?sslmode=bogus"), vec![]),
            (format!("postgres://u:{secret}@h/d?bogus=1"), vec![]),
            (
                format!("postgres://u:{secret}@h/d?connect_timeout=x"),
                vec![],
            ),
            (format!("host=h password='{secret}"), vec![]),
            (
                "host=h".to_owned(),
                vec![("PGPASSWORD", secret), ("PGPORT", "x")],
            ),
        ] {
            let err = resolve_in(Some(&url), &vars).unwrap_err();
            assert!(!format!("{err:#} {err:?}").contains(secret), "{err:#}");
        }
    }
}

/// `connect` against the test server (`CAMPAIGN_ELT_TEST_DATABASE_URL`) and against fakes.
#[cfg(test)]
mod connect_tests {
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
    fn settings_for(url: &str) -> ConnectionSettings {
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
        std::fs::write(&root, crate::config::tls::test_certs::CA).unwrap();
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
}
