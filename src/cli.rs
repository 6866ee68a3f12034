//! Command-line interface: every command and flag, documented for `--help`.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Apply the schema migrations (also done at the start of load, refresh and run).
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
    PurgeRejects(crate::purge::PurgeRejectsArgs),
    /// Create (idempotently) the least-privilege group roles PREFIX_loader, PREFIX_transform and
    /// PREFIX_analyst and grant them what their commands need; run as the schema owner.
    SetupRoles(crate::roles::SetupRolesArgs),
}

/// Settings that change what the reports mean; stored in the database by the first run.
#[derive(Debug, Clone, Args, Default)]
pub struct SettingsArgs {
    /// Seconds after a page load within which a click of the same customer and user counts as
    /// related when no page load shares its event id [default: the stored value, else 300].
    #[arg(long, env = "CLICK_THROUGH_WINDOW_SECONDS", value_name = "SECONDS",
          value_parser = clap::value_parser!(i32).range(0..))]
    pub click_through_window_seconds: Option<i32>,

    /// Time zone of naive `MM/DD/YYYY, HH:MM:SS` timestamps (IANA name)
    /// [default: the stored value, else UTC].
    #[arg(long, env = "CAMPAIGN_ELT_SOURCE_TIME_ZONE", value_name = "ZONE")]
    pub source_time_zone: Option<String>,

    /// Accepted event types, comma-separated; others are rejected as unknown_event_type
    /// [default: the stored value, else ReferralPageLoad,ReferralRecommendClick,FaqClick].
    #[arg(
        long,
        env = "CAMPAIGN_ELT_EVENT_TYPES",
        value_name = "TYPES",
        value_delimiter = ','
    )]
    pub event_types: Option<Vec<String>>,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Input files: JSON lines, `.gz` read transparently, `-` for standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Lines per batch; each batch commits in one transaction.
    #[arg(long, default_value_t = crate::load::DEFAULT_BATCH_LINES, value_name = "LINES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_lines: u64,

    /// A batch with lines also commits once it is this many seconds old — also while standard
    /// input is quiet — so the reports can follow a live log.
    #[arg(long, default_value_t = crate::load::DEFAULT_BATCH_SECONDS, value_name = "SECONDS",
          value_parser = parse_seconds)]
    pub batch_seconds: f64,

    /// Longest accepted line in bytes; longer lines are rejected as line_too_long.
    #[arg(long, default_value_t = crate::load::DEFAULT_MAX_LINE_BYTES, value_name = "BYTES")]
    pub max_line_bytes: usize,

    /// Load files even if their content was loaded before (deduplication still applies).
    #[arg(long)]
    pub force: bool,

    /// Store keyed hashes of `ip` and `email` (never the values), with the secret key in this
    /// file; the environment variable CAMPAIGN_ELT_PII_HASH_KEY can hold the key instead.
    /// Without a key neither is stored in any form.
    #[arg(long, env = "CAMPAIGN_ELT_PII_HASH_KEY_FILE", value_name = "FILE")]
    pub pii_hash_key_file: Option<PathBuf>,

    /// Exit with code 3 when more lines than this were rejected: a count (`100`) or a share of
    /// the lines read (`0.5%`).
    #[arg(long, value_name = "N|N%")]
    pub max_rejected: Option<MaxRejected>,
}

#[derive(Debug, Clone, Args)]
pub struct RefreshArgs {
    /// Rebuild every report relation from all events (needed after a settings change).
    #[arg(long)]
    pub full_refresh: bool,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Print the SQL this refresh would execute, in order, each statement after a comment naming
    /// its file and why it runs (new, changed, depends on X, refresh); change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// Rebuild every report relation from all events (needed after a settings change).
    #[arg(long)]
    pub full_refresh: bool,

    /// Load nothing: print the SQL the refresh would execute, in order (as refresh --dry-run).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Input files: JSON lines, `.gz` read transparently, `-` for standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Longest accepted line in bytes; longer lines are rejected as line_too_long.
    #[arg(long, default_value_t = crate::load::DEFAULT_MAX_LINE_BYTES, value_name = "BYTES")]
    pub max_line_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct UnloadArgs {
    /// The load to take back (`load_id` in `campaign-elt status`).
    #[arg(long, value_name = "N")]
    pub load_id: i64,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// How many ledger rows and runs to show.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Report relation: a name in schema `reports` (page_loads, clicks, unique_user_clicks,
    /// click_through_rate, or one an analyst added) or a `schema.name`.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Only this customer.
    #[arg(long, value_name = "ID")]
    pub customer_id: Option<i64>,

    /// Only hours at or after this UTC time (RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]`).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,

    /// Only hours before this UTC time (RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]`).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,

    /// At most this many rows.
    #[arg(long, value_name = "N")]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Number of lines to write.
    #[arg(long, default_value_t = 120_104, value_name = "N")]
    pub lines: u64,

    /// Seed: the same seed and options give the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Write here instead of standard output (`.gz` compresses).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// `fired_at` of the first event, UTC (`YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD`).
    #[arg(long, default_value = "2022-01-01T00:00:00", value_parser = parse_start, value_name = "TIME")]
    pub start: chrono::NaiveDateTime,

    /// Clean events per hour (sets the time span; dirt and re-sends come on top).
    #[arg(long, default_value_t = 550.0, value_name = "N")]
    pub events_per_hour: f64,

    /// Number of customers (the real file's 8 ids first).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub customers: u32,

    /// Number of users.
    #[arg(long, default_value_t = 99, value_name = "N")]
    pub users: u32,

    /// Share of lines that are dirty, spread over every reject reason (0–1).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub dirt_rate: f64,

    /// Share of lines that re-send an earlier line byte for byte (0–1).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub exact_duplicate_rate: f64,

    /// Share of lines that re-send an earlier event id and type with other fields (0–1).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub conflicting_resend_rate: f64,

    /// Share of clean events written 2–300 s late, out of time order (0–1).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub late_rate: f64,
}

fn parse_seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("{value:?} is not a positive number of seconds")),
    }
}

fn parse_start(value: &str) -> Result<chrono::NaiveDateTime, String> {
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(time) = chrono::NaiveDateTime::parse_from_str(value, format) {
            return Ok(time);
        }
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|date| date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .map_err(|_| format!("{value:?} is not a time (YYYY-MM-DDTHH:MM:SS or YYYY-MM-DD)"))
}

/// `--max-rejected`: an absolute count or a percentage of the lines read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxRejected {
    Count(u64),
    Percent(f64),
}

impl MaxRejected {
    /// Whether `rejected` out of `lines` exceeds the limit.
    pub fn is_exceeded(self, rejected: u64, lines: u64) -> bool {
        match self {
            MaxRejected::Count(limit) => rejected > limit,
            MaxRejected::Percent(percent) => {
                lines > 0 && (rejected as f64) * 100.0 > percent * lines as f64
            }
        }
    }
}

impl FromStr for MaxRejected {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if let Some(percent) = value.strip_suffix('%') {
            match percent.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxRejected::Percent(p)),
                _ => Err(format!("{value:?} is not a percentage between 0% and 100%")),
            }
        } else {
            value.parse::<u64>().map(MaxRejected::Count).map_err(|_| {
                format!("{value:?} is not a count (e.g. 100) or a percentage (e.g. 0.5%)")
            })
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
    fn parses_max_rejected() {
        assert_eq!("10".parse::<MaxRejected>().unwrap(), MaxRejected::Count(10));
        assert_eq!(
            "0.5%".parse::<MaxRejected>().unwrap(),
            MaxRejected::Percent(0.5)
        );
        assert!("abc".parse::<MaxRejected>().is_err());
        assert!("150%".parse::<MaxRejected>().is_err());
        assert!(MaxRejected::Count(2).is_exceeded(3, 10));
        assert!(!MaxRejected::Count(3).is_exceeded(3, 10));
        assert!(MaxRejected::Percent(10.0).is_exceeded(2, 10));
        assert!(!MaxRejected::Percent(20.0).is_exceeded(2, 10));
        assert!(!MaxRejected::Percent(0.0).is_exceeded(0, 0));
    }
}
