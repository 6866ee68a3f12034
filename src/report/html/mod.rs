//! `report --format html`: one self-contained HTML file — an overview of every customer over
//! the range, charts of the top customers by volume, and the data quality — from the report
//! relations and the counts-only views of the ledger, so the analyst role can render it.
//!
//! Charts are small hand-written SVG ([`svg`]): `plotters`' SVG backend was measured against it
//! (docs/design.md, "The HTML report") and writes no `<title>` or `<desc>`, which every chart
//! here must carry.

pub mod data;
pub mod render;
pub mod svg;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Client;

pub use data::HtmlRequest;

/// What `report --format html` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct HtmlSummary {
    pub output: String,
    pub bytes: u64,
    pub from: String,
    pub to: String,
    pub customers: usize,
    pub charted_customers: usize,
}

/// Reads the report's data and writes the document to `output` (through a temporary file in the
/// same directory, renamed into place: a reader never sees half a report).
pub async fn write_report(
    client: &Client,
    request: &HtmlRequest,
    output: &Path,
) -> Result<HtmlSummary> {
    let data = data::read(client, request).await?;
    let html = render::render(&data);
    let directory = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(directory)
        .with_context(|| format!("cannot write into {}", directory.display()))?;
    // A report is for reading: rw-r--r-- rather than the temporary file's rw-------.
    use std::os::unix::fs::PermissionsExt;
    file.write_all(html.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .and_then(|()| {
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .with_context(|| format!("cannot write {}", output.display()))?;
    file.persist(output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(HtmlSummary {
        output: output.display().to_string(),
        bytes: html.len() as u64,
        from: data.from.to_rfc3339(),
        to: data.to.to_rfc3339(),
        customers: data.overview.len(),
        charted_customers: data.charts.len(),
    })
}
