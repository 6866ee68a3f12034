//! Report output: prints report relations and the database's status in the terminal.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::{json, Map, Value};
use tokio_postgres::Client;

use crate::cli::{ReportArgs, ReportFormat};
use crate::db::{quote_ident, quote_relation};
use crate::transform::database_message;

/// Parses a `--from`/`--to` bound: RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC).
pub fn parse_time_bound(value: &str) -> Result<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(time.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    bail!("{value:?} is not a time (use RFC 3339 or YYYY-MM-DD[ HH:MM:SS], UTC)")
}

/// Resolves a report name to a relation that exists: `name` means `reports.name`.
async fn resolve_relation(client: &Client, name: &str) -> Result<(String, Vec<String>)> {
    let qualified = if name.contains('.') {
        name.to_owned()
    } else {
        format!("reports.{name}")
    };
    let (schema, relation) = qualified.split_once('.').expect("qualified name has a dot");
    let rows = client
        .query(
            "select attribute.attname
             from pg_catalog.pg_attribute as attribute
             inner join pg_catalog.pg_class as class on class.oid = attribute.attrelid
             inner join pg_catalog.pg_namespace as namespace on namespace.oid = class.relnamespace
             where namespace.nspname = $1 and class.relname = $2
                 and attribute.attnum > 0 and not attribute.attisdropped
             order by attribute.attnum",
            &[&schema, &relation],
        )
        .await?;
    if rows.is_empty() {
        bail!("no report relation {qualified} (see `campaign-elt status` for the reports, or run `campaign-elt refresh`)");
    }
    Ok((qualified, rows.iter().map(|row| row.get(0)).collect()))
}

/// Prints a report relation, filtered and ordered by its key columns.
pub async fn print_report(client: &Client, args: &ReportArgs, out: &mut dyn Write) -> Result<u64> {
    let (relation, columns) = resolve_relation(client, &args.name).await?;
    let has = |column: &str| columns.iter().any(|c| c == column);
    let from = args.from.as_deref().map(parse_time_bound).transpose()?;
    let to = args.to.as_deref().map(parse_time_bound).transpose()?;
    let mut filters: Vec<String> = Vec::new();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
    if let Some(customer_id) = &args.customer_id {
        if !has("customer_id") {
            bail!("{relation} has no customer_id column to filter on");
        }
        params.push(customer_id);
        filters.push(format!("customer_id = ${}", params.len()));
    }
    for (bound, operator) in [(&from, ">="), (&to, "<")] {
        if let Some(bound) = bound {
            if !has("hour") {
                bail!("{relation} has no hour column to filter on");
            }
            params.push(bound);
            filters.push(format!("hour {operator} ${}", params.len()));
        }
    }
    let order: Vec<String> = ["customer_id", "hour"]
        .iter()
        .filter(|c| has(c))
        .map(|c| quote_ident(c))
        .collect();
    let sql = format!(
        "select row_to_json(report)::text from (select * from {} as report {} {} {}) as report",
        quote_relation(&relation),
        if filters.is_empty() {
            String::new()
        } else {
            format!("where {}", filters.join(" and "))
        },
        if order.is_empty() {
            String::new()
        } else {
            format!("order by {}", order.join(", "))
        },
        args.limit
            .map(|limit| format!("limit {}", limit.max(0)))
            .unwrap_or_default(),
    );
    let rows = client
        .query(&sql, &params)
        .await
        .map_err(|e| anyhow!("{relation}: {}", database_message(&e)))?;
    let records: Vec<Map<String, Value>> = rows
        .iter()
        .map(|row| serde_json::from_str::<Map<String, Value>>(row.get::<_, &str>(0)))
        .collect::<Result<_, _>>()
        .context("cannot decode report rows")?;
    match args.format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &records)?;
            writeln!(out)?;
        }
        ReportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(&mut *out);
            writer.write_record(&columns)?;
            for record in &records {
                writer.write_record(columns.iter().map(|column| cell_text(record.get(column))))?;
            }
            writer.flush()?;
        }
        ReportFormat::Table => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header(&columns);
            for record in &records {
                table.add_row(columns.iter().map(|column| cell_text(record.get(column))));
            }
            writeln!(out, "{table}")?;
            writeln!(out, "{} row(s) from {relation}", records.len())?;
        }
    }
    Ok(records.len() as u64)
}

fn cell_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// The database's state for `status`, as JSON (also rendered for humans).
pub async fn status(client: &Client, limit: i64) -> Result<Value> {
    let to_json = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<Value>> {
        rows.iter()
            .map(|row| Ok(serde_json::from_str(row.get::<_, &str>(0))?))
            .collect()
    };
    let loads = client
        .query(
            "select row_to_json(ledger)::text from (
                 select load_id, run_id, path, status, lines, loaded, duplicates, rejected, blank,
                        size_bytes, encode(content_hash, 'hex') as content_hash, started_at, finished_at
                 from elt.loads order by load_id desc limit $1) as ledger",
            &[&limit],
        )
        .await?;
    let runs = client
        .query(
            "select row_to_json(run)::text from (
                 select run_id, command, status, exit_code, started_at, finished_at
                 from elt.runs order by run_id desc limit $1) as run",
            &[&limit],
        )
        .await?;
    let rejects = client
        .query(
            "select row_to_json(rejects_by_reason)::text from (
                 select reason, count(*) as lines from elt.rejects group by reason order by reason
             ) as rejects_by_reason",
            &[],
        )
        .await?;
    let totals = client
        .query_one(
            "select (select count(*) from elt.stale_keys),
                    (select count(*) from elt.events),
                    (select max(fired_at)::text from elt.events),
                    (select max(finished_at)::text from elt.refreshes)",
            &[],
        )
        .await?;
    let relations = client
        .query(
            "select row_to_json(relation)::text from (
                 select relation_name, materialized, source_path, built_at
                 from elt.managed_relations order by relation_name) as relation",
            &[],
        )
        .await?;
    let settings = crate::settings::stored(client).await?;
    Ok(json!({
        "settings": settings.map(|s| json!({
            "click_through_window_seconds": s.click_through_window_seconds,
            "source_time_zone": s.source_time_zone,
            "accepted_event_types": s.accepted_event_types,
        })),
        "events": totals.get::<_, i64>(1),
        "newest_fired_at": totals.get::<_, Option<String>>(2),
        "last_refresh_at": totals.get::<_, Option<String>>(3),
        "stale_keys": totals.get::<_, i64>(0),
        "rejects_by_reason": to_json(rejects)?,
        "loads": to_json(loads)?,
        "runs": to_json(runs)?,
        "relations": to_json(relations)?,
    }))
}

/// Renders `status` output for a terminal.
pub fn render_status(status: &Value, out: &mut dyn Write) -> Result<()> {
    let text = |value: &Value| cell_text(Some(value));
    writeln!(
        out,
        "events: {}   newest fired_at: {}",
        status["events"],
        text(&status["newest_fired_at"])
    )?;
    writeln!(
        out,
        "stale keys waiting for refresh: {}   last refresh: {}",
        status["stale_keys"],
        text(&status["last_refresh_at"])
    )?;
    if let Some(settings) = status["settings"].as_object() {
        writeln!(
            out,
            "settings: click-through window {} s, source time zone {}, event types {}",
            settings["click_through_window_seconds"],
            text(&settings["source_time_zone"]),
            settings["accepted_event_types"]
        )?;
    }
    let section =
        |out: &mut dyn Write, title: &str, rows: &Value, columns: &[&str]| -> Result<()> {
            let rows = rows.as_array().cloned().unwrap_or_default();
            writeln!(out, "\n{title}")?;
            if rows.is_empty() {
                writeln!(out, "  (none)")?;
                return Ok(());
            }
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_header(columns.to_vec());
            for row in &rows {
                table.add_row(columns.iter().map(|column| cell_text(row.get(*column))));
            }
            writeln!(out, "{table}")?;
            Ok(())
        };
    section(
        out,
        "rejected lines by reason",
        &status["rejects_by_reason"],
        &["reason", "lines"],
    )?;
    section(
        out,
        "ledger (newest first)",
        &status["loads"],
        &[
            "load_id",
            "run_id",
            "path",
            "status",
            "lines",
            "loaded",
            "duplicates",
            "rejected",
            "blank",
            "finished_at",
        ],
    )?;
    section(
        out,
        "runs (newest first)",
        &status["runs"],
        &[
            "run_id",
            "command",
            "status",
            "exit_code",
            "started_at",
            "finished_at",
        ],
    )?;
    section(
        out,
        "report relations",
        &status["relations"],
        &["relation_name", "materialized", "source_path", "built_at"],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_time_bounds() {
        let expected = "2022-01-01T03:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(parse_time_bound("2022-01-01T03:00:00Z").unwrap(), expected);
        assert_eq!(
            parse_time_bound("2022-01-01T04:00:00+01:00").unwrap(),
            expected
        );
        assert_eq!(parse_time_bound("2022-01-01 03:00:00").unwrap(), expected);
        assert_eq!(
            parse_time_bound("2022-01-02").unwrap(),
            expected + chrono::Duration::hours(21)
        );
        assert!(parse_time_bound("yesterday").is_err());
    }
}
