//! What a command prints: the `--json` summary on standard output, the human text on standard
//! error (unless `--quiet`), and the progress bar on a terminal.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde::Serialize;

use crate::cli::GlobalArgs;

/// Prints a command's outcome: `summary` as JSON on stdout with `--json`, `human` on stderr
/// unless `--quiet`.
pub(super) fn emit(
    global: &GlobalArgs,
    stdout: &mut dyn Write,
    summary: &impl Serialize,
    human: &str,
) -> Result<()> {
    if global.json {
        serde_json::to_writer_pretty(&mut *stdout, summary)?;
        writeln!(stdout)?;
    }
    if !global.quiet {
        eprintln!("{human}");
    }
    Ok(())
}

/// A progress bar on a terminal ([`crate::progress`] draws it); hidden in pipes, with `--quiet`
/// and with `--json`.
pub(super) fn progress_bar(global: &GlobalArgs) -> ProgressBar {
    if global.quiet || global.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
}
