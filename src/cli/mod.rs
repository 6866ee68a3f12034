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

/// The help headings of the global flags (valid before or after the command):
/// where the database is and how to wait for it, what is printed, which report SQL runs.
const CONNECTION: &str = "Database (every command but generate and check)";
const OUTPUT: &str = "Output";
const REPORT_SQL: &str = "Report SQL";

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// PostgreSQL URL or conninfo string (e.g. postgresql://user@host:5432/db). Without it:
    /// DATABASE_URL, else the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
    /// PGSSLMODE, PGPASSFILE (~/.pgpass) and libpq's defaults, as psql does.
    #[arg(long, global = true, value_name = "URL", help_heading = CONNECTION)]
    pub database_url: Option<String>,

    /// Print a machine-readable, versioned summary as JSON on standard output.
    #[arg(long, global = true, help_heading = OUTPUT)]
    pub json: bool,

    /// Log more on standard error (-v: info, -vv: debug, -vvv: debug with the libraries').
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = OUTPUT)]
    pub verbose: u8,

    /// Log only errors and hide the progress bar.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = OUTPUT)]
    pub quiet: bool,

    /// Directory with the report SQL files (default: the set built into the binary).
    #[arg(
        long,
        global = true,
        env = "CAMPAIGN_ELT_VIEWS_DIR",
        value_name = "DIR",
        help_heading = REPORT_SQL
    )]
    pub views_dir: Option<PathBuf>,

    /// If another run holds the database's run lock, exit at once with code 5 instead of waiting.
    #[arg(long, global = true, help_heading = CONNECTION)]
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

    #[test]
    fn global_flags_are_grouped_by_what_they_are_for_and_valid_before_the_command() {
        let help = Cli::command().render_long_help().to_string();
        let heading = |name: &str| {
            help.find(&format!("{name}:"))
                .unwrap_or_else(|| panic!("no heading {name} in {help}"))
        };
        let at = |flag: &str| help.find(flag).unwrap_or_else(|| panic!("no {flag}"));
        let (database, output, sql) = (heading(CONNECTION), heading(OUTPUT), heading(REPORT_SQL));
        for flag in ["--database-url", "--no-wait"] {
            assert!(at(flag) > database, "{flag} under {CONNECTION}");
        }
        for flag in ["--json", "--verbose", "--quiet"] {
            assert!(at(flag) > output, "{flag} under {OUTPUT}");
        }
        assert!(at("--views-dir") > sql);
        let mut cli = Cli::command();
        cli.build(); // propagates the global flags to the commands
        let run = cli
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        // The heading a flag is listed under: the last unindented line ending in ':' before it.
        let under = |flag: &str, heading: &str| {
            let mut current = "";
            for line in run.lines() {
                if !line.starts_with(' ') && line.ends_with(':') {
                    current = line;
                }
                if line.trim_start().starts_with(flag) {
                    assert!(
                        current.starts_with(heading),
                        "{flag} under {current:?}:\n{run}"
                    );
                    return;
                }
            }
            panic!("{flag} not in run --help");
        };
        under("--batch-lines", "Input and batches:");
        under("--source-time-zone", "Report settings");
        under("--full-refresh", "Refresh:");
        under("--database-url", CONNECTION);
        let before =
            Cli::try_parse_from(["campaign-elt", "--database-url", "u", "--json", "status"]);
        let after =
            Cli::try_parse_from(["campaign-elt", "status", "--database-url", "u", "--json"]);
        for parsed in [before.unwrap(), after.unwrap()] {
            assert_eq!(parsed.global.database_url.as_deref(), Some("u"));
            assert!(parsed.global.json);
        }
    }
}
