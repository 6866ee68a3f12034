//! Prints a report relation in the terminal: a table, CSV or JSON, filtered by customer and hour.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_postgres::Client;

use crate::db::{database_message, quote_ident, quote_relation};

/// How `report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
    /// One self-contained HTML file of every report (`--output FILE`).
    Html,
}

/// Which rows of which relation to print, and how.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// `name` (in schema `reports`) or `schema.name`.
    pub name: String,
    pub customer_id: Option<i64>,
    /// Hours at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Hours before this instant.
    pub to: Option<DateTime<Utc>>,
    pub format: ReportFormat,
    pub limit: Option<i64>,
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
pub async fn print_report(client: &Client, args: &ReportQuery, out: &mut dyn Write) -> Result<u64> {
    let (relation, columns) = resolve_relation(client, &args.name).await?;
    let has = |column: &str| columns.iter().any(|c| c == column);
    let (from, to) = (args.from, args.to);
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
    // Each value as PostgreSQL wrote it into the JSON (a numeric keeps all its digits: parsed
    // into a float, a rate of 1/27 would print as 0.037037037037037035).
    let records: Vec<BTreeMap<String, Box<RawValue>>> = rows
        .iter()
        .map(|row| serde_json::from_str(row.get::<_, &str>(0)))
        .collect::<Result<_, _>>()
        .context("cannot decode report rows")?;
    let cell = |record: &BTreeMap<String, Box<RawValue>>, column: &str| -> Result<String> {
        raw_cell_text(record.get(column).map(|value| value.get()))
    };
    match args.format {
        ReportFormat::Html => bail!("the HTML report is written by report::html, not printed"),
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &records)?;
            writeln!(out)?;
        }
        ReportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(&mut *out);
            writer.write_record(&columns)?;
            for record in &records {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|column| cell(record, column))
                    .collect::<Result<_>>()?;
                writer.write_record(cells)?;
            }
            writer.flush()?;
        }
        ReportFormat::Table => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header(&columns);
            for record in &records {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|column| cell(record, column))
                    .collect::<Result<_>>()?;
                table.add_row(cells);
            }
            writeln!(out, "{table}")?;
            writeln!(out, "{} row(s) from {relation}", records.len())?;
        }
    }
    Ok(records.len() as u64)
}

/// A cell from a JSON value as PostgreSQL's `row_to_json` wrote it: strings unquoted, NULL empty,
/// numbers and booleans as written (every digit of a numeric).
fn raw_cell_text(json: Option<&str>) -> Result<String> {
    match json {
        None | Some("null") => Ok(String::new()),
        Some(text) if text.starts_with('"') => {
            serde_json::from_str::<String>(text).context("cannot decode a report value")
        }
        Some(text) => Ok(text.to_owned()),
    }
}

pub(super) fn cell_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}
