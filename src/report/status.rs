//! `status`: the ledger, recent runs, stale keys waiting, rejects by reason and the newest
//! `fired_at`, as JSON and rendered for the terminal.

use std::io::Write;

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::{json, Value};
use tokio_postgres::Client;

use super::print::cell_text;

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
    let settings = crate::report_settings::stored(client).await?;
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
