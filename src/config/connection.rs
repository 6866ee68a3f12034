//! Resolves the database connection like psql does: URL, `DATABASE_URL`, libpq variables, `.pgpass`.

use anyhow::Result;

/// A resolved connection: what to connect with, and a description safe to print (no password).
#[derive(Clone)]
pub struct ConnectionSettings {
    pub config: tokio_postgres::Config,
    /// e.g. `postgres@127.0.0.1:5432/campaign` — never contains the password.
    pub display: String,
}

impl std::fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("display", &self.display)
            .finish()
    }
}

/// Resolves the connection from an explicit URL (`--database-url`), else `DATABASE_URL`, else the
/// libpq variables and defaults. `env` looks up an environment variable (injected for tests).
pub fn resolve(
    database_url: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnectionSettings> {
    let url = database_url
        .map(str::to_owned)
        .or_else(|| env("DATABASE_URL"))
        .unwrap_or_else(|| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let config: tokio_postgres::Config = url.parse()?;
    Ok(ConnectionSettings {
        config,
        display: "database".into(),
    })
}

/// `resolve` with the process environment.
pub fn resolve_from_process_env(database_url: Option<&str>) -> Result<ConnectionSettings> {
    resolve(database_url, &|name| std::env::var(name).ok())
}

/// Connects (temporary plain-TCP version until TLS lands).
pub async fn connect(settings: &ConnectionSettings) -> Result<tokio_postgres::Client> {
    use anyhow::Context;
    let (client, connection) = settings
        .config
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to {}", settings.display))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("database connection closed: {error}");
        }
    });
    Ok(client)
}
