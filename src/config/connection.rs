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
        f.debug_struct("ConnectionSettings").field("display", &self.display).finish()
    }
}

/// Resolves the connection from an explicit URL (`--database-url`), else `DATABASE_URL`, else the
/// libpq variables and defaults. `env` looks up an environment variable (injected for tests).
pub fn resolve(database_url: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<ConnectionSettings> {
    let _ = (database_url, env);
    anyhow::bail!("not implemented")
}

/// `resolve` with the process environment.
pub fn resolve_from_process_env(database_url: Option<&str>) -> Result<ConnectionSettings> {
    resolve(database_url, &|name| std::env::var(name).ok())
}
