//! Command-line interface: the commands and the global flags, documented for `--help`; parsing
//! only (the argument structs are in [`args`], the value parsers in [`parse`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod args;
mod parse;

pub use args::*;
pub use parse::MaxRejected;

/// Loads referral-campaign JSON-lines event logs into PostgreSQL and keeps hourly reports
/// (page loads, clicks, unique clicking users, click-through rate) up to date with SQL that
/// runs inside the database.
#[derive(Debug, Parser)]
#[command(name = "campaign-elt", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// PostgreSQL URL or conninfo string (e.g. postgresql://user@host:5432/db). Without it:
    /// DATABASE_URL, else the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
    /// PGSSLMODE, PGPASSFILE (~/.pgpass) and libpq's defaults, as psql does.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Print a machine-readable, versioned summary as JSON on standard output.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log more on standard error (-v: info, -vv: debug, -vvv: debug with the libraries').
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log only errors and hide the progress bar.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Directory with the report SQL files (default: the set built into the binary).
    #[arg(
        long,
        global = true,
        env = "CAMPAIGN_ELT_VIEWS_DIR",
        value_name = "DIR"
    )]
    pub views_dir: Option<PathBuf>,

    /// If another run holds the database's run lock, exit at once with code 5 instead of waiting.
    #[arg(long, global = true)]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the schema migrations, holding the run lock (every writing command does it first).
    Migrate,
    /// Load files into the events table without refreshing the reports.
    Load(LoadArgs),
    /// Recompute the report relations for the keys that loads made stale.
    Refresh(RefreshArgs),
    /// The nightly job: migrate, load the files, refresh the reports, run the data tests.
    Run(RunArgs),
    /// Take a load back: remove its events, rejects and ledger row, then refresh what it touched.
    Unload(UnloadArgs),
    /// Show the ledger, recent runs, stale keys, rejects by reason and data freshness.
    Status(StatusArgs),
    /// Run the SQL data tests (views/tests) against the current reports.
    Test,
    /// Classify the lines of files without a database: counts and reject reasons (a dry run).
    Check(CheckArgs),
    /// Print a report relation as a table, CSV or JSON.
    Report(ReportArgs),
    /// Write synthetic referral event logs (deterministic by seed).
    Generate(GenerateArgs),
    /// Delete the stored raw rejected lines (they may hold personal data) of loads that started
    /// before a cutoff: the retention tool for elt.rejects.
    PurgeRejects(PurgeRejectsArgs),
    /// Create (idempotently) the least-privilege group roles PREFIX_loader, PREFIX_transform and
    /// PREFIX_analyst and grant them what their commands need; run as the schema owner.
    SetupRoles(SetupRolesArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
