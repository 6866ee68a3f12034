//! Resolves the database connection like psql does: URL, `DATABASE_URL`, libpq variables, `.pgpass`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::Host;

use super::tls::{self, Check, RootCerts};
use super::{conninfo, pgpass};

/// The `application_name` the server sees unless the connection string or `PGAPPNAME` names one.
pub const DEFAULT_APPLICATION_NAME: &str = "campaign-elt";

/// Seconds of silence after which the client's TCP keepalives start, unless the connection
/// string sets `keepalives_idle`: a network that drops the client is noticed in about a minute
/// and a half, not after the operating system's two hours.
pub const DEFAULT_KEEPALIVES_IDLE_SECONDS: &str = "60";

/// A resolved connection: what to connect with, and a description safe to print (no password).
#[derive(Clone)]
pub struct ConnectionParams {
    /// Host, port, user, password, dbname and the rest, for tokio-postgres. Its `ssl_mode` is only
    /// whether to ask for TLS; [`ConnectionParams::ssl_mode`] says what to check.
    pub config: tokio_postgres::Config,
    /// e.g. `postgres@127.0.0.1:5432/campaign` — never contains the password.
    pub display: String,
    /// libpq's sslmode.
    pub ssl_mode: SslMode,
    /// The trusted roots for verify-ca / verify-full: `sslrootcert`, else `~/.postgresql/root.crt`;
    /// `None` when neither is known (no `HOME`).
    pub ssl_root_cert: Option<RootCerts>,
}

impl fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionParams")
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
) -> Result<ConnectionParams> {
    resolve_with_socket_dir(database_url, env, default_socket_dir())
}

/// `resolve` with the process environment.
pub fn resolve_from_process_env(database_url: Option<&str>) -> Result<ConnectionParams> {
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

/// Connection parameters by name, each with where it came from (for error messages).
type Params = BTreeMap<String, (String, &'static str)>;

fn resolve_with_socket_dir(
    database_url: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    socket_dir: &str,
) -> Result<ConnectionParams> {
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    let mut params = gather(database_url, &env)?;
    let home = env("HOME").map(PathBuf::from);
    let (ssl_mode, ssl_root_cert) = tls_settings(&mut params, home.as_deref())?;
    let password = params.remove("password").map(|(value, _)| value);
    let passfile = params
        .remove("passfile")
        .map(|(value, _)| PathBuf::from(value));
    let user = match params.remove("user") {
        Some((user, _)) => user,
        None => env("USER")
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "postgres".to_owned()),
    };
    let dbname = params
        .remove("dbname")
        .map_or_else(|| user.clone(), |(dbname, _)| dbname);
    let mut config = tokio_config(params, socket_dir, &user, &dbname)?;
    let display = display(&config);
    let password = password.or_else(|| {
        let passfile = passfile.or_else(|| home.map(|home| home.join(".pgpass")))?;
        password_from_passfile(&passfile, &config, &dbname, &user)
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
    Ok(ConnectionParams {
        config,
        display,
        ssl_mode,
        ssl_root_cert,
    })
}

/// The parameters of `--database-url` (else `DATABASE_URL`), then the libpq variables for the
/// ones it does not set.
fn gather(database_url: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Params> {
    let source = match database_url.filter(|url| !url.trim().is_empty()) {
        Some(url) => Some((url.to_owned(), "--database-url")),
        None => env("DATABASE_URL").map(|url| (url, "DATABASE_URL")),
    };
    let mut params = Params::new();
    if let Some((url, origin)) = source {
        let parsed = conninfo::parse(&url)
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
    Ok(params)
}

/// `sslmode` and `sslrootcert` (default `~/.postgresql/root.crt`), as libpq combines them.
fn tls_settings(
    params: &mut Params,
    home: Option<&std::path::Path>,
) -> Result<(SslMode, Option<RootCerts>)> {
    let ssl_mode_given = match params.remove("sslmode") {
        Some((value, origin)) => Some(
            value
                .parse::<SslMode>()
                .with_context(|| format!("invalid setting in {origin}"))?,
        ),
        None => None,
    };
    let ssl_root_cert = match params.remove("sslrootcert") {
        Some((value, _)) if value == "system" => Some(RootCerts::System),
        Some((value, _)) => Some(RootCerts::File(value.into())),
        None => home.map(|home| RootCerts::File(home.join(".postgresql/root.crt"))),
    };
    let ssl_mode = match (ssl_mode_given, &ssl_root_cert) {
        (None, Some(RootCerts::System)) => SslMode::VerifyFull,
        (Some(mode), Some(RootCerts::System)) if mode != SslMode::VerifyFull => {
            bail!("weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")")
        }
        (mode, _) => mode.unwrap_or_default(),
    };
    Ok((ssl_mode, ssl_root_cert))
}

/// The tokio-postgres configuration, without the password: host (default the socket
/// directory), port, user, dbname, application_name and every other parameter as given.
fn tokio_config(
    mut params: Params,
    socket_dir: &str,
    user: &str,
    dbname: &str,
) -> Result<tokio_postgres::Config> {
    // libpq connects to hostaddr alone when no host is given; otherwise the default is a socket.
    let host = match params.remove("host") {
        Some((host, _)) => Some(host),
        None if params.contains_key("hostaddr") => None,
        None => Some(socket_dir.to_owned()),
    };
    let port = match params.remove("port") {
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
    let application_name = params
        .remove("application_name")
        .map_or_else(|| DEFAULT_APPLICATION_NAME.to_owned(), |(name, _)| name);
    let keepalives_idle = params.remove("keepalives_idle").map_or_else(
        || DEFAULT_KEEPALIVES_IDLE_SECONDS.to_owned(),
        |(seconds, _)| seconds,
    );
    // Everything else (connect_timeout, options, keepalives, target_session_attrs, ...) goes to
    // tokio-postgres as it is; it rejects what it does not know. The password is set separately so
    // that no parse error can ever involve it.
    let (user, dbname) = (user.to_owned(), dbname.to_owned());
    let known = [
        ("host", host.as_ref()),
        ("port", Some(&port)),
        ("user", Some(&user)),
        ("dbname", Some(&dbname)),
        ("application_name", Some(&application_name)),
        ("keepalives_idle", Some(&keepalives_idle)),
    ];
    let rest = params.iter().map(|(key, (value, _))| (key.as_str(), value));
    let known = known
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)));
    let mut conninfo = String::new();
    for (key, value) in known.chain(rest) {
        conninfo.push_str(&format!("{key}={} ", conninfo::quote(value)));
    }
    conninfo.parse().context("invalid connection settings")
}

/// The password for the first host from a passfile (`~/.pgpass` format).
fn password_from_passfile(
    passfile: &std::path::Path,
    config: &tokio_postgres::Config,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let first_host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.to_string_lossy().into_owned(),
        None => config.get_hostaddrs().first()?.to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    pgpass::lookup(
        passfile,
        pgpass::Target {
            host: &first_host,
            port,
            dbname,
            user,
        },
    )
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

impl ConnectionParams {
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
pub async fn connect(params: &ConnectionParams) -> Result<tokio_postgres::Client> {
    let context = || format!("cannot connect to {}", params.display);
    let (client, tls) = match params.tls_check() {
        None => {
            let client = spawn(params.config.connect(tokio_postgres::NoTls).await, params)
                .with_context(context)?;
            (client, None)
        }
        Some(check) => {
            let config =
                tls::client_config(check, params.ssl_root_cert.as_ref()).with_context(context)?;
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config.clone());
            let client = spawn(params.config.connect(tls).await, params).with_context(context)?;
            (client, Some(config))
        }
    };
    let session = OpenSession {
        token: client.cancel_token(),
        tls,
    };
    OPEN_SESSIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(session);
    Ok(client)
}

/// What cancelling one session's running statement takes: its cancel key, and how it connected.
struct OpenSession {
    token: tokio_postgres::CancelToken,
    tls: Option<rustls::ClientConfig>,
}

/// Every session this process opened, for [`cancel_running_statements`]. A session that has
/// closed keeps its entry: a cancel request names the backend by process id and secret key, so
/// one for a backend that is gone cancels nothing.
static OPEN_SESSIONS: std::sync::Mutex<Vec<OpenSession>> = std::sync::Mutex::new(Vec::new());

/// Asks the server to cancel the statement each session of this process is running (what libpq's
/// `PQcancel` does, on a connection of its own), all at once, waiting at most `wait` for the
/// server to take the requests; returns how many it took. On an interrupt the process then
/// exits: the server aborts the statements and rolls back the open transactions, releasing
/// their locks.
pub async fn cancel_running_statements(wait: std::time::Duration) -> usize {
    let sessions: Vec<(tokio_postgres::CancelToken, Option<rustls::ClientConfig>)> = OPEN_SESSIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .map(|session| (session.token.clone(), session.tls.clone()))
        .collect();
    let mut requests = tokio::task::JoinSet::new();
    for (token, tls) in sessions {
        requests.spawn(async move {
            let sent = match tls {
                None => token.cancel_query(tokio_postgres::NoTls).await,
                Some(config) => {
                    token
                        .cancel_query(tokio_postgres_rustls::MakeRustlsConnect::new(config))
                        .await
                }
            };
            if let Err(error) = &sent {
                tracing::debug!("cannot send a cancel request: {error}");
            }
            sent.is_ok()
        });
    }
    let mut sent = 0;
    let _ = tokio::time::timeout(wait, async {
        while let Some(done) = requests.join_next().await {
            sent += usize::from(done.unwrap_or(false));
        }
    })
    .await;
    sent
}

fn spawn<S, T>(
    connected: Result<
        (tokio_postgres::Client, tokio_postgres::Connection<S, T>),
        tokio_postgres::Error,
    >,
    params: &ConnectionParams,
) -> Result<tokio_postgres::Client>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = connected?;
    let address = params.display.clone();
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            // The command that used the connection reports the failure itself.
            tracing::debug!("database connection to {address} failed: {err}");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests;

/// `connect` against the test server (`CAMPAIGN_ELT_TEST_DATABASE_URL`) and against fakes.
#[cfg(test)]
mod connect_tests;
