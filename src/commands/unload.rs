//! `unload --load-id N`: takes a load back, then refreshes the report keys it touched.

use std::io::Write;

use anyhow::Result;

use super::pipeline::{self, Steps};
use crate::cli::{GlobalArgs, SettingsArgs, UnloadArgs};

pub(super) async fn unload(
    global: &GlobalArgs,
    args: &UnloadArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let steps = Steps {
        command: "unload",
        settings: &SettingsArgs::default(),
        unload: Some(args.load_id),
        load: None,
        refresh: true,
        full_refresh: false,
    };
    pipeline::run_recorded(global, &steps, stdout).await
}
