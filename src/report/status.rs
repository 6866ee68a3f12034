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
            // The ledger's counts (migrations/V10__load_quality.sql), not a scan of elt.rejects.
            "select row_to_json(rejects_by_reason)::text from (
                 select by_reason.key as reason, sum(by_reason.value::bigint) as lines
                 from elt.loads, jsonb_each_text(loads.rejected_by_reason) as by_reason
                 group by by_reason.key order by by_reason.key
             ) as rejects_by_reason",
            &[],
        )
        .await?;
    let totals = client
        .query_one(
            // Nothing here reads elt.events whole: the events are the ledger's sum (every
            // loaded event is counted by exactly one load), the newest fired_at one step
            // through the refresh index per customer.
            "select (select count(*) from elt.stale_keys),
                    (select coalesce(sum(loaded), 0)::bigint from elt.loads),
                    -- RFC 3339, as row_to_json writes the ledger's and the runs' times
                    (select to_json(newest_fired_at) #>> '{}' from elt.freshness),
                    (select to_json(max(finished_at)) #>> '{}' from elt.refreshes),
                    (select count(*) from elt.unrefreshed_events)",
            &[],
        )
        .await?;
    // Restated rows in all (a summary row counts its rows) and the latest ones.
    let restated_rows: i64 = client
        .query_one(
            "select coalesce(sum(changed_rows), 0)::bigint from elt.restatements",
            &[],
        )
        .await?
        .get(0);
    let restatements = client
        .query(
            "select row_to_json(restatement)::text from (
                 select restatements.refresh_id, refreshes.finished_at as refreshed_at,
                     restatements.relation, restatements.customer_id, restatements.hour,
                     restatements.old_values, restatements.new_values, restatements.changed_rows,
                     restatements.cause
                 from elt.restatements
                 inner join elt.refreshes on refreshes.refresh_id = restatements.refresh_id
                 order by restatements.restatement_id desc limit $1) as restatement",
            &[&limit],
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
    let server = server_json(client).await?;
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
        "unrefreshed_events": totals.get::<_, i64>(4),
        "rejects_by_reason": to_json(rejects)?,
        "restated_rows": restated_rows,
        "restatements": to_json(restatements)?,
        "loads": to_json(loads)?,
        "runs": to_json(runs)?,
        "relations": to_json(relations)?,
        "server": server,
    }))
}

/// What a night's cost depends on in the server's configuration (docs/performance.md, "What to
/// tune"), measured from the server itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub shared_buffers_bytes: i64,
    pub max_wal_size: String,
    pub events_btree_index_bytes: i64,
    pub checkpoints_timed: i64,
    pub checkpoints_requested: i64,
}

/// Requested checkpoints below this many say nothing yet (a few `CHECKPOINT` commands).
const FEW_CHECKPOINTS: i64 = 10;

/// The settings to change, in words, each from a measured cause: the merge probes and extends
/// `elt.events`'s b-tree indexes for every row, so once they outgrow `shared_buffers` a night
/// reads and writes their pages outside PostgreSQL's cache; and a checkpoint forced by WAL
/// volume in the middle of a night makes the next change of every page write a full-page image.
pub fn server_advice(facts: &ServerFacts) -> Vec<String> {
    let mut advice = Vec::new();
    if facts.events_btree_index_bytes > facts.shared_buffers_bytes {
        advice.push(format!(
            "elt.events's b-tree indexes ({}) are larger than shared_buffers ({}): each night's \
             merge reads and writes their pages outside PostgreSQL's cache; give shared_buffers \
             at least {} if the server's memory allows (it takes a restart)",
            mebibytes(facts.events_btree_index_bytes),
            mebibytes(facts.shared_buffers_bytes),
            mebibytes(facts.events_btree_index_bytes),
        ));
    }
    if facts.checkpoints_requested >= FEW_CHECKPOINTS
        && facts.checkpoints_requested > facts.checkpoints_timed
    {
        advice.push(format!(
            "{} of {} checkpoints since the statistics were reset were requested (by WAL volume \
             or a CHECKPOINT command), not timed: a checkpoint during a night makes the next \
             change of every page write a full-page image; raise max_wal_size (now {}) above \
             the WAL a night writes",
            facts.checkpoints_requested,
            facts.checkpoints_requested + facts.checkpoints_timed,
            facts.max_wal_size,
        ));
    }
    advice
}

fn mebibytes(bytes: i64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The server's settings, sizes and checkpoint counters that `server_advice` reads, with its
/// advice. PostgreSQL 17 moved the checkpoint counters to `pg_stat_checkpointer`.
async fn server_json(client: &Client) -> Result<Value> {
    let row = client
        .query_one(
            "select current_setting('shared_buffers'),
                    pg_size_bytes(current_setting('shared_buffers')),
                    current_setting('work_mem'),
                    current_setting('max_wal_size'),
                    pg_relation_size('elt.events'),
                    coalesce((
                        select sum(pg_relation_size(index.indexrelid))::bigint
                        from pg_index as index
                        join pg_class as class on class.oid = index.indexrelid
                        join pg_am as access_method on access_method.oid = class.relam
                        where index.indrelid = 'elt.events'::regclass
                            and access_method.amname = 'btree'), 0),
                    current_setting('server_version_num')::int",
            &[],
        )
        .await?;
    let checkpoints_query = if row.get::<_, i32>(6) >= 170_000 {
        "select num_timed, num_requested from pg_stat_checkpointer"
    } else {
        "select checkpoints_timed, checkpoints_req from pg_stat_bgwriter"
    };
    let checkpoints = client.query_one(checkpoints_query, &[]).await?;
    let facts = ServerFacts {
        shared_buffers_bytes: row.get(1),
        max_wal_size: row.get(3),
        events_btree_index_bytes: row.get(5),
        checkpoints_timed: checkpoints.get(0),
        checkpoints_requested: checkpoints.get(1),
    };
    Ok(json!({
        "shared_buffers": row.get::<_, String>(0),
        "work_mem": row.get::<_, String>(2),
        "max_wal_size": facts.max_wal_size,
        "events_bytes": row.get::<_, i64>(4),
        "events_btree_index_bytes": facts.events_btree_index_bytes,
        "checkpoints_timed": facts.checkpoints_timed,
        "checkpoints_requested": facts.checkpoints_requested,
        "advice": server_advice(&facts),
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
        "stale keys waiting for refresh: {}   new events waiting for its delta: {}   last refresh: {}",
        status["stale_keys"],
        status["unrefreshed_events"],
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
    if let Some(server) = status["server"].as_object() {
        let bytes = |key: &str| mebibytes(server[key].as_i64().unwrap_or_default());
        writeln!(
            out,
            "server: shared_buffers {}, work_mem {}, max_wal_size {}; elt.events {}, its b-tree \
             indexes {}; checkpoints since the statistics were reset: {} timed, {} requested",
            text(&server["shared_buffers"]),
            text(&server["work_mem"]),
            text(&server["max_wal_size"]),
            bytes("events_bytes"),
            bytes("events_btree_index_bytes"),
            server["checkpoints_timed"],
            server["checkpoints_requested"],
        )?;
        for advice in server["advice"].as_array().into_iter().flatten() {
            writeln!(out, "tune: {}", text(advice))?;
        }
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
    writeln!(
        out,
        "\npublished report rows restated by later refreshes: {}",
        status["restated_rows"]
    )?;
    section(
        out,
        "latest restatements (newest first)",
        &status["restatements"],
        &[
            "refreshed_at",
            "relation",
            "customer_id",
            "hour",
            "old_values",
            "new_values",
            "changed_rows",
            "cause",
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

    fn facts() -> ServerFacts {
        ServerFacts {
            shared_buffers_bytes: 128 << 20,
            max_wal_size: "1GB".to_string(),
            events_btree_index_bytes: 100 << 20,
            checkpoints_timed: 30,
            checkpoints_requested: 2,
        }
    }

    #[test]
    fn a_server_whose_cache_holds_the_indexes_and_whose_checkpoints_are_timed_gets_no_advice() {
        assert_eq!(server_advice(&facts()), Vec::<String>::new());
        let few_requests = ServerFacts {
            checkpoints_timed: 0,
            checkpoints_requested: FEW_CHECKPOINTS - 1,
            ..facts()
        };
        assert_eq!(server_advice(&few_requests), Vec::<String>::new());
    }

    #[test]
    fn indexes_larger_than_shared_buffers_ask_for_more_shared_buffers() {
        let advice = server_advice(&ServerFacts {
            events_btree_index_bytes: 344 << 20,
            ..facts()
        });
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert!(advice[0].contains("(344 MiB) are larger than shared_buffers (128 MiB)"));
        assert!(advice[0].contains("at least 344 MiB"));
    }

    #[test]
    fn mostly_requested_checkpoints_ask_for_a_larger_max_wal_size() {
        let advice = server_advice(&ServerFacts {
            checkpoints_timed: 5,
            checkpoints_requested: 40,
            ..facts()
        });
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert!(advice[0].starts_with("40 of 45 checkpoints"));
        assert!(advice[0].contains("raise max_wal_size (now 1GB)"));
    }
}
