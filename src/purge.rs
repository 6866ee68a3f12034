//! Retention for rejected lines: `purge-rejects --older-than DURATION` deletes the raw lines kept
//! in `elt.rejects` (which may hold personal data) for loads that started before the cutoff.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use tokio_postgres::Client;

use crate::cli::Cli;
use crate::db::{self, LockOutcome};
use crate::exit::{self, LockHeld};

#[derive(Debug, Clone, Args)]
pub struct PurgeRejectsArgs {
    /// Delete the rejected lines of loads that started more than this long ago: a whole number
    /// and a unit `s`, `m`, `h`, `d` or `w` (e.g. `30d`, `12h`); `0s` deletes all of them.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,
}

/// What a purge removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeSummary {
    pub schema_version: u32,
    pub command: &'static str,
    /// Rejects of loads that started before this instant (RFC 3339, UTC) were deleted.
    pub cutoff: String,
    pub purged_rejects: i64,
    /// How many loads had rejects deleted (their ledger rows and counts stay).
    pub loads: i64,
}

/// `30d` → 30 days. One whole number and one unit; no fractions, no sign.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let unit_seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "{value:?} is not a duration: a whole number and a unit s, m, h, d or w (e.g. 30d)"
            ))
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration: it needs a number before the unit"))?;
    number
        .checked_mul(unit_seconds)
        // 10 000 years keeps the cutoff inside PostgreSQL's timestamp range.
        .filter(|&seconds| seconds <= 10_000 * 366 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{value:?} is too long a duration"))
}

/// Deletes, in one transaction, the rejects of loads started before now − `older_than`, and
/// records the purge in `elt.runs`.
pub async fn purge_rejects(client: &mut Client, older_than: Duration) -> Result<PurgeSummary> {
    let transaction = client.transaction().await?;
    let cutoff: DateTime<Utc> = transaction
        .query_one(
            "select now() - make_interval(secs => $1)",
            &[&(older_than.as_secs() as f64)],
        )
        .await
        .context("cannot compute the cutoff")?
        .get(0);
    let row = transaction
        .query_one(
            "with purged as (
                 delete from elt.rejects as rejects
                 using elt.loads as loads
                 where loads.load_id = rejects.load_id
                     and loads.started_at < $1
                 returning rejects.load_id
             )
             select count(*), count(distinct load_id) from purged",
            &[&cutoff],
        )
        .await
        .context("cannot delete the rejected lines")?;
    let summary = PurgeSummary {
        schema_version: crate::summary::SUMMARY_SCHEMA_VERSION,
        command: "purge-rejects",
        cutoff: cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        purged_rejects: row.get(0),
        loads: row.get(1),
    };
    transaction
        .execute(
            "insert into elt.runs (command, finished_at, status, exit_code, summary)
             values ('purge-rejects', clock_timestamp(), 'succeeded', 0, $1)",
            &[&serde_json::to_value(&summary)?],
        )
        .await
        .context("cannot record the purge in elt.runs")?;
    transaction.commit().await?;
    Ok(summary)
}

/// The `purge-rejects` command: connect, take the run lock, migrate, purge, report.
pub async fn command(cli: &Cli, args: &PurgeRejectsArgs, stdout: &mut dyn Write) -> Result<i32> {
    let mut client = db::connect_from_env(cli.global.database_url.as_deref()).await?;
    if db::acquire_run_lock(&client, !cli.global.no_wait).await? == LockOutcome::HeldByAnotherRun {
        return Err(LockHeld.into());
    }
    db::migrate(&mut client).await?;
    let summary = purge_rejects(&mut client, args.older_than).await?;
    if cli.global.json {
        serde_json::to_writer(&mut *stdout, &summary)?;
        writeln!(stdout)?;
    } else if !cli.global.quiet {
        eprintln!(
            "purged {} rejected line(s) of {} load(s) started before {}",
            summary.purged_rejects, summary.loads, summary.cutoff
        );
    }
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "1.5d",
            "30 days",
            "1y",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
