//! The `campaign-elt` binary: parses the command line, sets up logging, runs, maps errors to exit codes.

use tracing_subscriber::EnvFilter;

use campaign_elt::{cli::Cli, commands, exit};

fn main() {
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
            let _ = error.print();
            std::process::exit(code);
        }
    };
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "warn,campaign_elt=debug",
        (false, _) => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            EnvFilter::try_from_env("CAMPAIGN_ELT_LOG").unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("campaign-elt: cannot start the async runtime: {error}");
            std::process::exit(exit::ERROR);
        }
    };
    let code = runtime.block_on(async {
        let mut stdout = std::io::stdout();
        let mut interrupt =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
                Ok(signal) => signal,
                Err(error) => {
                    eprintln!("campaign-elt: cannot listen for signals: {error}");
                    return exit::ERROR;
                }
            };
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    eprintln!("campaign-elt: cannot listen for signals: {error}");
                    return exit::ERROR;
                }
            };
        tokio::select! {
            result = commands::execute(&cli, &mut stdout) => match result {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("campaign-elt: {}", exit::describe(&error));
                    exit::code_for(&error)
                }
            },
            _ = interrupt.recv() => interrupted("interrupted", exit::INTERRUPTED).await,
            _ = terminate.recv() => interrupted("terminated", exit::TERMINATED).await,
        }
    });
    // Dropping the runtime closes the connections: the server rolls back any open transaction.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}

/// On SIGINT/SIGTERM: cancel the statement every session is running (the server would otherwise
/// finish a long index build or refresh first, holding its locks), say so, and return `code`.
async fn interrupted(what: &str, code: i32) -> i32 {
    let cancelled =
        campaign_elt::db::cancel_running_statements(std::time::Duration::from_secs(5)).await;
    eprintln!(
        "campaign-elt: {what}; cancel requested on {cancelled} session(s): the running statements \
         stop and the open transactions roll back (committed batches stay)"
    );
    code
}
