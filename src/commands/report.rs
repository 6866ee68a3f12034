//! `report NAME`: prints a report relation as a table, CSV or JSON (read only).

use std::io::Write;

use anyhow::Result;

use super::session;
use crate::cli::{GlobalArgs, ReportArgs};
use crate::exit;
use crate::report::print::{print_report, ReportQuery};

pub(super) async fn report(
    global: &GlobalArgs,
    args: &ReportArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let client = session::open_for_reading(global).await?;
    client.batch_execute("set time zone 'UTC'").await?;
    let query = ReportQuery {
        name: args.name.clone(),
        customer_id: args.customer_id,
        from: args.from,
        to: args.to,
        format: args.format,
        limit: args.limit,
    };
    print_report(&client, &query, stdout).await?;
    Ok(exit::SUCCESS)
}
