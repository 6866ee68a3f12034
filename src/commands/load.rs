//! `load FILE…`: loads files into the events table without refreshing the reports.

use std::io::Write;

use anyhow::Result;

use super::pipeline::{self, Steps};
use crate::cli::{GlobalArgs, LoadArgs};

pub(super) async fn load(
    global: &GlobalArgs,
    args: &LoadArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let steps = Steps {
        command: "load",
        settings: &args.settings,
        unload: None,
        load: Some(args),
        refresh: false,
        full_refresh: false,
    };
    pipeline::run_recorded(global, &steps, stdout).await
}
