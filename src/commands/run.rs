//! `run FILE…`: the nightly job — migrate, load the files, refresh the reports, run the data tests.

use std::io::Write;

use anyhow::Result;

use super::pipeline::{self, Steps};
use super::refresh::dry_run;
use crate::cli::{GlobalArgs, RunArgs};

pub(super) async fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    if args.dry_run {
        return dry_run(global, &args.load.settings, args.full_refresh, stdout).await;
    }
    let steps = Steps {
        command: "run",
        settings: &args.load.settings,
        unload: None,
        load: Some(&args.load),
        refresh: true,
        full_refresh: args.full_refresh,
    };
    pipeline::run_recorded(global, &steps, stdout).await
}
