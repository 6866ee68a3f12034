//! Running the binary under test and reading what it printed: exit code, stdout, stderr, JSON.

use std::process::{Command, Output};

/// The binary under test, with a clean environment for the connection variables and settings.
pub fn campaign_elt() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_campaign-elt"));
    for variable in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSSLMODE",
        "PGPASSFILE",
        "CLICK_THROUGH_WINDOW_SECONDS",
        "CAMPAIGN_ELT_VIEWS_DIR",
        "CAMPAIGN_ELT_SOURCE_TIME_ZONE",
        "CAMPAIGN_ELT_EVENT_TYPES",
        "CAMPAIGN_ELT_SCAN_AT_STALE_SHARE",
    ] {
        command.env_remove(variable);
    }
    command
}

/// Runs `campaign-elt ARGS --database-url URL`.
pub fn run_at(url: &str, args: &[&str]) -> Output {
    campaign_elt()
        .args(args)
        .args(["--database-url", url])
        .output()
        .expect("run campaign-elt")
}

/// Runs `campaign-elt ARGS --database-url URL` and asserts the exit code.
pub fn run_expecting_at(url: &str, code: i32, args: &[&str]) -> Output {
    run_with_env_expecting_at(url, code, args, &[])
}

/// Runs `campaign-elt ARGS --database-url URL` with the environment variables `env` set and
/// asserts the exit code.
pub fn run_with_env_expecting_at(
    url: &str,
    code: i32,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let output = campaign_elt()
        .args(args)
        .args(["--database-url", url])
        .envs(env.iter().copied())
        .output()
        .expect("run campaign-elt");
    assert_exit(
        &output,
        code,
        &format!("campaign-elt {args:?} (env {env:?}) on {url}"),
    );
    output
}

/// Asserts the exit code; the message shows `what` ran and everything it printed.
pub fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: expected exit {code}\n{}",
        describe(output)
    );
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    )
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Everything the command printed, stdout then stderr (to check that a secret shows nowhere).
pub fn stdout_and_stderr(output: &Output) -> String {
    stdout(output) + &stderr(output)
}

/// The last line of stderr: the error `main` prints.
pub fn last_stderr_line(output: &Output) -> String {
    stderr(output)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

pub fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(output),
            stderr(output)
        )
    })
}
