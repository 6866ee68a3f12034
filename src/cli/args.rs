//! Every subcommand's arguments, each flag documented for `--help`.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use super::parse::{
    parse_duration, parse_prefix, parse_seconds, parse_start, parse_time_bound, MaxRejected,
};
use super::{CONNECTION, REPORT_SQL};
use crate::admin::roles::DEFAULT_ROLE_PREFIX;
pub use crate::generate::Mix;
pub use crate::report::print::ReportFormat;

/// Where the database is: every command but `generate` and `check` (also valid before the
/// command).
#[derive(Debug, Clone, Args, Default)]
pub struct DatabaseArgs {
    /// PostgreSQL URL or conninfo string (e.g. postgresql://user@host:5432/db). Without it:
    /// DATABASE_URL, else the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
    /// PGSSLMODE, PGPASSFILE (~/.pgpass) and libpq's defaults, as psql does.
    #[arg(long, value_name = "URL", help_heading = CONNECTION)]
    pub database_url: Option<String>,
}

/// How a command that takes the run lock waits for it.
#[derive(Debug, Clone, Args, Default)]
pub struct RunLockArgs {
    /// If another run holds the database's run lock, exit at once with code 5 instead of waiting.
    #[arg(long, help_heading = CONNECTION)]
    pub no_wait: bool,
}

/// Which report SQL a command runs.
#[derive(Debug, Clone, Args, Default)]
pub struct ViewsArgs {
    /// Directory with the report SQL files (default: CAMPAIGN_ELT_VIEWS_DIR, else the set built
    /// into the binary).
    #[arg(long, value_name = "DIR", help_heading = REPORT_SQL)]
    pub views_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub run_lock: RunLockArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub views: ViewsArgs,
}

/// Settings that change what the reports mean; stored in the database by the first run.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Report settings (stored in the database by the first run)")]
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

/// The help headings of the writing commands' flags.
const INPUT: &str = "Input and batches";
const REFRESH: &str = "Refresh";

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = INPUT)]
pub struct LoadArgs {
    /// Input files: JSON lines, `.gz` read transparently, `-` for standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Lines per batch; each batch commits in one transaction.
    #[arg(long, help_heading = INPUT, default_value_t = crate::load::DEFAULT_BATCH_LINES, value_name = "LINES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_lines: u64,

    /// A batch with lines also commits once it is this many seconds old — also while standard
    /// input is quiet — so the reports can follow a live log.
    #[arg(long, help_heading = INPUT, default_value_t = crate::load::DEFAULT_BATCH_SECONDS, value_name = "SECONDS",
          value_parser = parse_seconds)]
    pub batch_seconds: f64,

    /// Longest accepted line in bytes; longer lines are rejected as line_too_long.
    #[arg(long, help_heading = INPUT, default_value_t = crate::load::DEFAULT_MAX_LINE_BYTES, value_name = "BYTES")]
    pub max_line_bytes: usize,

    /// Load files even if their content was loaded before (deduplication still applies).
    #[arg(long, help_heading = INPUT)]
    pub force: bool,

    /// Store keyed hashes of `ip` and `email` (never the values), with the secret key in this
    /// file; the environment variable CAMPAIGN_ELT_PII_HASH_KEY can hold the key instead.
    /// Without a key neither is stored in any form.
    #[arg(long, help_heading = INPUT, env = "CAMPAIGN_ELT_PII_HASH_KEY_FILE", value_name = "FILE")]
    pub pii_hash_key_file: Option<PathBuf>,

    /// Exit with code 3 when more lines than this were rejected: a count (`100`) or a share of
    /// the lines read (`0.5%`).
    #[arg(long, help_heading = INPUT, value_name = "N|N%")]
    pub max_rejected: Option<MaxRejected>,
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub run_lock: RunLockArgs,

    #[command(flatten)]
    pub views: ViewsArgs,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = REFRESH)]
pub struct RefreshArgs {
    /// Rebuild every report relation from all events (needed after a settings change).
    #[arg(long)]
    pub full_refresh: bool,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Print the SQL this refresh would execute, in order, each statement after a comment naming
    /// its file and why it runs (new, changed, depends on X, refresh); change nothing.
    #[arg(long, help_heading = REFRESH)]
    pub dry_run: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub run_lock: RunLockArgs,

    #[command(flatten)]
    pub views: ViewsArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// Rebuild every report relation from all events (needed after a settings change).
    #[arg(long, help_heading = REFRESH)]
    pub full_refresh: bool,

    /// Load nothing: print the SQL the refresh would execute, in order (as refresh --dry-run).
    #[arg(long, help_heading = REFRESH)]
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
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub run_lock: RunLockArgs,

    #[command(flatten)]
    pub views: ViewsArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// How many ledger rows and runs to show.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: i64,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Report relation: a name in schema `reports` (page_loads, clicks, unique_user_clicks,
    /// click_through_rate, or one an analyst added) or a `schema.name`. Not with `--format
    /// html`, which shows every report.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    /// Only this customer.
    #[arg(long, value_name = "ID")]
    pub customer_id: Option<i64>,

    /// Only hours at or after this UTC time (RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]`).
    #[arg(long, value_name = "TIME", value_parser = parse_time_bound)]
    pub from: Option<DateTime<Utc>>,

    /// Only hours before this UTC time (RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]`).
    #[arg(long, value_name = "TIME", value_parser = parse_time_bound)]
    pub to: Option<DateTime<Utc>>,

    /// Output format; `html` writes one self-contained file (`--output`) with an overview of
    /// every customer, charts of the top ones and the data quality, over `--from`/`--to`
    /// [default range for html: the 7 days up to the newest event].
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,

    /// At most this many rows (table, CSV, JSON).
    #[arg(long, value_name = "N", conflicts_with = "output")]
    pub limit: Option<i64>,

    /// The HTML report's file (only with `--format html`, which needs it).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How many customers, by volume, the HTML report charts in full.
    #[arg(long, value_name = "N", default_value_t = 20, requires = "output")]
    pub top: usize,
    #[command(flatten)]
    pub database: DatabaseArgs,
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

    /// How unevenly the lines are spread over the customers: the i-th customer's share is
    /// proportional to 1 / i^EXPONENT (Zipf's law; 1.1 gives the first of 1,000 customers about
    /// 18 % of the volume and the last about 0.01 %). 0 spreads them evenly.
    #[arg(long, default_value_t = 0.0, value_name = "EXPONENT")]
    pub customer_skew: f64,

    /// Which mix of clean and dirty lines: `clean` (the real sample's mix, ~8 % EMPTY_VALUE) or
    /// `realistic` (on top: 1 % dirty lines of every kind, 0.5 % exact re-sends, 0.1 %
    /// conflicting re-sends, 1 % late lines of which half are 1–7 days late). The rate flags
    /// below override the mix's values.
    #[arg(long, value_enum, default_value_t = Mix::Clean)]
    pub mix: Mix,

    /// Share of lines that are dirty, spread over every reject reason (0–1) [default: the mix's].
    #[arg(long, value_name = "RATE")]
    pub dirt_rate: Option<f64>,

    /// Share of lines that re-send an earlier line byte for byte (0–1) [default: the mix's].
    #[arg(long, value_name = "RATE")]
    pub exact_duplicate_rate: Option<f64>,

    /// Share of lines that re-send an earlier event id and type with other fields (0–1)
    /// [default: the mix's].
    #[arg(long, value_name = "RATE")]
    pub conflicting_resend_rate: Option<f64>,

    /// Share of clean events written out of time order (0–1) [default: the mix's]: 2–300 s
    /// late, or 1–7 days for the share `--days-late-share` of them.
    #[arg(long, value_name = "RATE")]
    pub late_rate: Option<f64>,

    /// Share of the late events that are 1–7 days late instead of seconds to minutes (0–1)
    /// [default: the mix's].
    #[arg(long, value_name = "SHARE")]
    pub days_late_share: Option<f64>,
}

#[derive(Debug, Clone, Args)]
pub struct PurgeRejectsArgs {
    /// Delete the rejected lines of loads that started more than this long ago: a whole number
    /// and a unit `s`, `m`, `h`, `d` or `w` (e.g. `30d`, `12h`); `0s` deletes all of them.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub run_lock: RunLockArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PurgeRestatementsArgs {
    /// Delete the restatements of refreshes that finished more than this long ago: a whole
    /// number and a unit `s`, `m`, `h`, `d` or `w` (e.g. `90d`); `0s` deletes all of them.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub run_lock: RunLockArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SetupRolesArgs {
    /// Prefix of the role names: PREFIX_loader, PREFIX_transform and PREFIX_analyst (lowercase
    /// letters, digits and `_`, starting with a letter or `_`).
    #[arg(long, default_value = DEFAULT_ROLE_PREFIX, value_name = "PREFIX", value_parser = parse_prefix)]
    pub role_prefix: String,
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub run_lock: RunLockArgs,
}
