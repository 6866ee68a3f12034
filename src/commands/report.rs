//! `report NAME`: prints a report relation as a table, CSV or JSON; `report --format html
//! --output FILE` writes the HTML report (read only).

use std::io::Write;

use anyhow::Result;

use super::{output, session};
use crate::cli::{GlobalArgs, ReportArgs};
use crate::exit::{self, UsageError};
use crate::report::html::{self, HtmlRequest};
use crate::report::print::{print_report, ReportFormat, ReportQuery};

pub(super) async fn report(
    global: &GlobalArgs,
    args: &ReportArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let html = args.format == ReportFormat::Html;
    match (html, &args.name, &args.output) {
        (true, None, Some(_)) | (false, Some(_), None) => {}
        (true, Some(_), _) => {
            return Err(UsageError("--format html shows every report: leave out NAME".into()).into())
        }
        (true, None, None) => {
            return Err(UsageError("--format html needs --output FILE".into()).into())
        }
        (false, _, Some(_)) => {
            return Err(UsageError(
                "--output writes the HTML report: give --format html (and no NAME)".into(),
            )
            .into())
        }
        (false, None, None) => {
            return Err(UsageError(
                "name the report relation to print, or write the HTML report with --format html --output FILE".into(),
            )
            .into())
        }
    }
    let client = session::open_for_reading(global).await?;
    client.batch_execute("set time zone 'UTC'").await?;
    if let (Some(path), true) = (&args.output, html) {
        let request = HtmlRequest {
            customer_id: args.customer_id,
            from: args.from,
            to: args.to,
            top: args.top,
        };
        let summary = html::write_report(&client, &request, path).await?;
        let human = format!(
            "wrote the HTML report to {} ({} bytes: {} customer(s), {} charted; hours from {} up to {})",
            summary.output,
            summary.bytes,
            summary.customers,
            summary.charted_customers,
            summary.from,
            summary.to
        );
        output::emit(global, stdout, &summary, &human)?;
        return Ok(exit::SUCCESS);
    }
    let query = ReportQuery {
        name: args.name.clone().unwrap_or_default(),
        customer_id: args.customer_id,
        from: args.from,
        to: args.to,
        format: args.format,
        limit: args.limit,
    };
    print_report(&client, &query, stdout).await?;
    Ok(exit::SUCCESS)
}
