//! `test`: runs the SQL data tests in `views/tests/` against the current reports (read only).

use std::io::Write;

use anyhow::Result;

use super::{output, session};
use crate::cli::GlobalArgs;
use crate::exit;
use crate::report::summary::RunSummary;
use crate::transform::{self, ViewSet};

pub(super) async fn test(global: &GlobalArgs, stdout: &mut dyn Write) -> Result<i32> {
    let views = ViewSet::load(global.views.views_dir.as_deref())?;
    let client = session::open_for_reading(global).await?;
    let mut summary = RunSummary::new("test");
    summary.add_data_tests(transform::run_data_tests(&client, &views).await?);
    summary.exit_code = match summary.data_test_failures.is_empty() {
        true => exit::SUCCESS,
        false => exit::DATA_TEST_FAILED,
    };
    output::emit(global, stdout, &summary, &summary.render())?;
    Ok(summary.exit_code)
}
