//! Tests of resolving connection parameters from URLs, libpq variables and defaults.

use std::collections::HashMap;

use super::*;

const SOCKET_DIR: &str = "/run/test-sockets";

fn resolve_in(url: Option<&str>, vars: &[(&str, &str)]) -> Result<ConnectionParams> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    resolve_with_socket_dir(url, &move |name| vars.get(name).cloned(), SOCKET_DIR)
}

fn ok(url: Option<&str>, vars: &[(&str, &str)]) -> ConnectionParams {
    resolve_in(url, vars).unwrap()
}

fn password(settings: &ConnectionParams) -> Option<&str> {
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

#[test]
fn keepalives_start_after_a_minute_unless_the_connection_string_says_otherwise() {
    use std::time::Duration;
    let settings = ok(Some("postgres://u@h/d"), &[]);
    assert!(settings.config.get_keepalives());
    assert_eq!(
        settings.config.get_keepalives_idle(),
        Duration::from_secs(60)
    );
    let settings = ok(Some("postgres://u@h/d?keepalives_idle=7"), &[]);
    assert_eq!(
        settings.config.get_keepalives_idle(),
        Duration::from_secs(7)
    );
    let settings = ok(Some("host=h user=u keepalives=0"), &[]);
    assert!(!settings.config.get_keepalives());
}
