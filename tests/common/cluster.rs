//! A private PostgreSQL cluster for tests that need what the shared test server does not have
//! (it trusts every local connection): started from the installed programs (`pg_config
//! --bindir`) on a free loopback port, as `postgres` when the tests run as root (initdb and
//! pg_ctl refuse root), never touching `/etc/postgresql`; stopped and removed when dropped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// Runs `program args` as the owner of a private cluster: `postgres` when this process is root,
/// else this user.
pub fn as_cluster_owner(program: &Path, args: &[&str]) -> Output {
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    command.args(args).output().unwrap()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| output.stdout == b"0\n")
        .unwrap_or(false)
}

/// The directory of the installed server programs.
pub fn server_bindir() -> PathBuf {
    let output = Command::new("pg_config").arg("--bindir").output().unwrap();
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// A running private cluster whose superuser `postgres` has a password and must give it over
/// TCP (`scram-sha-256`; no Unix socket).
pub struct ScramCluster {
    pub port: u16,
    pub password: String,
    dir: TempDir,
}

impl ScramCluster {
    pub fn start(password: &str) -> ScramCluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        if running_as_root() {
            let chown = Command::new("chown")
                .arg("postgres")
                .arg(&data)
                .status()
                .unwrap();
            assert!(chown.success(), "chown postgres {}", data.display());
        }
        let bindir = server_bindir();
        let initdb = as_cluster_owner(
            &bindir.join("initdb"),
            &[
                "--pgdata",
                data.to_str().unwrap(),
                "--username",
                "postgres",
                "--auth-host",
                "scram-sha-256",
                "--auth-local",
                "reject",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--no-instructions",
            ],
        );
        assert!(initdb.status.success(), "initdb: {initdb:?}");
        std::fs::remove_file(&pwfile).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' -c password_encryption=scram-sha-256"
        );
        let log = data.join("server.log");
        let started = as_cluster_owner(
            &bindir.join("pg_ctl"),
            &[
                "--pgdata",
                data.to_str().unwrap(),
                "--log",
                log.to_str().unwrap(),
                "--wait",
                "-o",
                &options,
                "start",
            ],
        );
        assert!(started.status.success(), "pg_ctl start: {started:?}");
        ScramCluster {
            port,
            password: password.to_owned(),
            dir,
        }
    }

    /// `postgresql://postgres@127.0.0.1:PORT/postgres`, without the password.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for ScramCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_cluster_owner(
            &server_bindir().join("pg_ctl"),
            &[
                "--pgdata",
                data.to_str().unwrap(),
                "--mode",
                "immediate",
                "stop",
            ],
        );
    }
}
