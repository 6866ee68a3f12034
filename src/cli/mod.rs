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

/// The help headings of the flags every command shares (output) and of those only the commands
/// that use them take (database, report SQL); both are also valid before the command.
pub(crate) const CONNECTION: &str = "Database";
const OUTPUT: &str = "Output";
pub(crate) const REPORT_SQL: &str = "Report SQL";

/// The flags before the command. The output flags are global (valid anywhere); the database
/// and report-SQL flags are valid before the command too (`campaign-elt --database-url URL run
/// …`) but are offered by the commands that use them only — `generate` and `check` touch no
/// database — and [`Cli::resolve`] merges them with the command's own.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub run_lock: RunLockArgs,

    #[command(flatten)]
    pub views: ViewsArgs,

    /// Print a machine-readable, versioned summary as JSON on standard output.
    #[arg(long, global = true, help_heading = OUTPUT)]
    pub json: bool,

    /// Log more on standard error (-v: info, -vv: debug, -vvv: debug with the libraries').
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = OUTPUT)]
    pub verbose: u8,

    /// Log only errors and hide the progress bar.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = OUTPUT)]
    pub quiet: bool,
}

impl Cli {
    /// Parses the process's arguments and merges the scoped flags (see [`Cli::resolve`]).
    pub fn parse_args() -> Result<Self, clap::Error> {
        Self::try_parse()?.resolve()
    }

    /// Merges the database and report-SQL flags given before the command into the command's
    /// own (the command's win), then `CAMPAIGN_ELT_VIEWS_DIR`. Such a flag before a command
    /// that does not use it is a usage error, as it is after the command.
    pub fn resolve(mut self) -> Result<Self, clap::Error> {
        let scoped = self.command.scoped_flags();
        let unused = |flag: &str| {
            let name = self.command.name();
            clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                format!("{name} does not use {flag}\n"),
            )
        };
        let global = &mut self.global;
        match scoped.database {
            Some(database) => {
                let url = &mut global.database.database_url;
                *url = database.database_url.clone().or(url.take());
            }
            None if global.database.database_url.is_some() => return Err(unused("--database-url")),
            None => {}
        }
        match scoped.run_lock {
            Some(run_lock) => global.run_lock.no_wait |= run_lock.no_wait,
            None if global.run_lock.no_wait => return Err(unused("--no-wait")),
            None => {}
        }
        match scoped.views {
            Some(views) => {
                let dir = &mut global.views.views_dir;
                *dir = views
                    .views_dir
                    .clone()
                    .or(dir.take())
                    .or_else(|| std::env::var_os(VIEWS_DIR_VARIABLE).map(PathBuf::from))
                    .filter(|dir| !dir.as_os_str().is_empty());
            }
            None if global.views.views_dir.is_some() => return Err(unused("--views-dir")),
            None => {}
        }
        Ok(self)
    }
}

/// The environment variable that names the report SQL directory when no flag does.
pub const VIEWS_DIR_VARIABLE: &str = "CAMPAIGN_ELT_VIEWS_DIR";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the schema migrations, holding the run lock (every writing command does it first).
    Migrate(MigrateArgs),
    /// Load files into the events table without refreshing the reports.
    Load(LoadArgs),
    /// Recompute the report relations for the keys that loads made stale.
    Refresh(RefreshArgs),
    /// The nightly job: migrate, load the files, refresh the reports, run the data tests.
    Run(RunArgs),
    /// Take a load back: remove its events, rejects and ledger row, then refresh what it touched.
    Unload(UnloadArgs),
    /// Show the ledger, recent runs, stale keys, rejects by reason, restatements and data
    /// freshness.
    Status(StatusArgs),
    /// Run the SQL data tests (views/tests) against the current reports.
    Test(TestArgs),
    /// Classify the lines of files without a database: counts and reject reasons (a dry run).
    Check(CheckArgs),
    /// Print a report relation as a table, CSV or JSON, or write the HTML report of every report
    /// (`--format html --output FILE`).
    Report(ReportArgs),
    /// Write synthetic referral event logs (deterministic by seed).
    Generate(GenerateArgs),
    /// Delete the stored raw rejected lines (they may hold personal data) of loads that started
    /// before a cutoff: the retention tool for elt.rejects.
    PurgeRejects(PurgeRejectsArgs),
    /// Delete the restatements (published report rows a later refresh changed) recorded by
    /// refreshes that finished before a cutoff: the retention tool for elt.restatements.
    PurgeRestatements(PurgeRestatementsArgs),
    /// Create (idempotently) the least-privilege group roles PREFIX_loader, PREFIX_transform and
    /// PREFIX_analyst and grant them what their commands need; run as the schema owner.
    SetupRoles(SetupRolesArgs),
}

/// The database and report-SQL flags a command takes (none: it does not use them).
pub struct ScopedFlags<'a> {
    pub database: Option<&'a DatabaseArgs>,
    pub run_lock: Option<&'a RunLockArgs>,
    pub views: Option<&'a ViewsArgs>,
}

impl Command {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Migrate(_) => "migrate",
            Command::Load(_) => "load",
            Command::Refresh(_) => "refresh",
            Command::Run(_) => "run",
            Command::Unload(_) => "unload",
            Command::Status(_) => "status",
            Command::Test(_) => "test",
            Command::Check(_) => "check",
            Command::Report(_) => "report",
            Command::Generate(_) => "generate",
            Command::PurgeRejects(_) => "purge-rejects",
            Command::PurgeRestatements(_) => "purge-restatements",
            Command::SetupRoles(_) => "setup-roles",
        }
    }

    /// Which of the database and report-SQL flags the command takes.
    pub fn scoped_flags(&self) -> ScopedFlags<'_> {
        let (database, run_lock, views) = match self {
            Command::Migrate(args) => (Some(&args.database), Some(&args.run_lock), None),
            Command::Load(args) => (
                Some(&args.database),
                Some(&args.run_lock),
                Some(&args.views),
            ),
            Command::Run(RunArgs { load: args, .. }) => (
                Some(&args.database),
                Some(&args.run_lock),
                Some(&args.views),
            ),
            Command::Refresh(args) => (
                Some(&args.database),
                Some(&args.run_lock),
                Some(&args.views),
            ),
            Command::Unload(args) => (
                Some(&args.database),
                Some(&args.run_lock),
                Some(&args.views),
            ),
            Command::Status(args) => (Some(&args.database), None, None),
            Command::Report(args) => (Some(&args.database), None, None),
            Command::Test(args) => (Some(&args.database), None, Some(&args.views)),
            Command::PurgeRejects(args) => (Some(&args.database), Some(&args.run_lock), None),
            Command::PurgeRestatements(args) => (Some(&args.database), Some(&args.run_lock), None),
            Command::SetupRoles(args) => (Some(&args.database), Some(&args.run_lock), None),
            Command::Check(_) | Command::Generate(_) => (None, None, None),
        };
        ScopedFlags {
            database,
            run_lock,
            views,
        }
    }
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
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["campaign-elt"].iter().chain(args)).and_then(Cli::resolve)
        };
        let before = parse(&["--database-url", "u", "--json", "status"]);
        let after = parse(&["status", "--database-url", "u", "--json"]);
        for parsed in [before.unwrap(), after.unwrap()] {
            assert_eq!(parsed.global.database.database_url.as_deref(), Some("u"));
            assert!(parsed.global.json);
        }
        let both = parse(&[
            "--database-url",
            "before",
            "run",
            "--database-url",
            "after",
            "f",
        ]);
        assert_eq!(
            both.unwrap().global.database.database_url.as_deref(),
            Some("after"),
            "the command's own flag wins"
        );
        let run = parse(&["--no-wait", "--views-dir", "v", "run", "f"]).unwrap();
        assert!(run.global.run_lock.no_wait);
        assert_eq!(run.global.views.views_dir, Some(PathBuf::from("v")));
        let run = parse(&["run", "--no-wait", "--views-dir", "w", "f"]).unwrap();
        assert!(run.global.run_lock.no_wait);
        assert_eq!(run.global.views.views_dir, Some(PathBuf::from("w")));
    }

    /// The help of every command, after the global flags were propagated.
    fn command_help(name: &str) -> String {
        let mut cli = Cli::command();
        cli.build();
        cli.find_subcommand_mut(name)
            .unwrap_or_else(|| panic!("no command {name}"))
            .render_long_help()
            .to_string()
    }

    #[test]
    fn commands_offer_only_the_database_and_report_sql_flags_they_use() {
        let offered = |name: &str| {
            let help = command_help(name);
            ["--database-url", "--no-wait", "--views-dir"]
                .into_iter()
                .filter(|flag| help.contains(flag))
                .collect::<Vec<_>>()
        };
        let all = vec!["--database-url", "--no-wait", "--views-dir"];
        for name in ["generate", "check"] {
            assert!(offered(name).is_empty(), "{name}: {:?}", offered(name));
        }
        for name in ["load", "refresh", "run", "unload"] {
            assert_eq!(offered(name), all, "{name}");
        }
        for name in [
            "migrate",
            "purge-rejects",
            "purge-restatements",
            "setup-roles",
        ] {
            assert_eq!(offered(name), ["--database-url", "--no-wait"], "{name}");
        }
        for name in ["status", "report"] {
            assert_eq!(offered(name), ["--database-url"], "{name}");
        }
        assert_eq!(offered("test"), ["--database-url", "--views-dir"]);
        for name in ["generate", "check"] {
            assert!(
                command_help(name).contains("--json"),
                "output flags stay global"
            );
        }
        // Before a command that does not use it, such a flag is refused as it is after it.
        for (flag, value, command) in [
            ("--database-url", Some("u"), "generate"),
            ("--no-wait", None, "status"),
            ("--views-dir", Some("v"), "report"),
        ] {
            let mut args = vec!["campaign-elt", flag];
            args.extend(value);
            args.push(command);
            if command == "report" {
                args.push("clicks");
            }
            let error = Cli::try_parse_from(&args)
                .and_then(Cli::resolve)
                .expect_err(&format!("{args:?}"));
            assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
            assert!(error
                .to_string()
                .contains(&format!("{command} does not use {flag}")));
            let mut after = vec!["campaign-elt", command, flag];
            after.extend(value);
            let error = Cli::try_parse_from(&after).expect_err(&format!("{after:?}"));
            assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        }
    }
}
