//! `refresh [--full-refresh] [--dry-run]`: recomputes the stale report keys (or everything).

use std::io::Write;

use anyhow::Result;

use super::pipeline::{self, requested_settings, Steps};
use super::session;
use crate::cli::{GlobalArgs, RefreshArgs, SettingsArgs};
use crate::exit;
use crate::transform::{self, ViewSet};

pub(super) async fn refresh(
    global: &GlobalArgs,
    args: &RefreshArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    if args.dry_run {
        return dry_run(global, &args.settings, args.full_refresh, stdout).await;
    }
    let steps = Steps {
        command: "refresh",
        settings: &args.settings,
        unload: None,
        load: None,
        refresh: true,
        full_refresh: args.full_refresh,
    };
    pipeline::run_recorded(global, &steps, stdout).await
}

/// `refresh --dry-run`, `run --dry-run`: prints the refresh plan; loads and changes nothing.
pub(super) async fn dry_run(
    global: &GlobalArgs,
    settings: &SettingsArgs,
    full_refresh: bool,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let views = ViewSet::load(global.views.views_dir.as_deref())?;
    let (mut client, _) = session::connect(global).await?;
    let requested = requested_settings(settings);
    transform::dry_run(&mut client, &views, &requested, full_refresh, stdout).await?;
    Ok(exit::SUCCESS)
}
