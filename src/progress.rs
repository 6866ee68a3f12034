//! The progress bar on a terminal: the bytes of the input being read, then, after its last
//! byte, the phase that runs — the last batch's merge, the events table's index builds, each
//! step of the refresh, the data tests — with a spinner and the time it has taken so far, so
//! that a bar at 100 % never hides seconds of work. Hidden in pipes, with `--quiet` and `--json`;
//! each phase is also logged at debug level (`-vv`).

use std::borrow::Cow;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often the spinner of a phase turns.
const SPINNER_TICK: Duration = Duration::from_millis(120);

fn reading_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .expect("valid progress template")
        .progress_chars("=> ")
}

fn phase_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid progress template")
}

/// Shows the reading of `path`: `length` bytes (the file's size; 0 when unknown, as for
/// standard input), from the start.
pub fn reading(bar: &ProgressBar, path: &str, length: u64) {
    bar.disable_steady_tick();
    bar.reset(); // position, elapsed time and rate
    bar.set_style(reading_style());
    bar.set_length(length);
    bar.set_message(path.to_owned());
}

/// Shows the reading of `path` again after a phase, where it was (a stream between batches).
pub fn resume_reading(bar: &ProgressBar, path: &str) {
    if bar.is_hidden() {
        return;
    }
    bar.disable_steady_tick();
    bar.set_style(reading_style());
    bar.set_message(path.to_owned());
}

/// Shows that `phase` runs (e.g. "refresh: int_customer_hourly"): a spinner, the phase and its
/// elapsed time, in place of the byte bar.
pub fn phase(bar: &ProgressBar, phase: impl Into<Cow<'static, str>>) {
    let phase = phase.into();
    tracing::debug!("phase: {phase}");
    if bar.is_hidden() {
        return;
    }
    bar.reset_elapsed();
    bar.set_style(phase_style());
    bar.set_message(phase);
    bar.enable_steady_tick(SPINNER_TICK);
    bar.tick();
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{InMemoryTerm, ProgressDrawTarget};

    fn drawn(term: &InMemoryTerm) -> String {
        term.contents().trim().to_owned()
    }

    #[test]
    fn after_the_last_byte_the_bar_says_which_phase_runs_and_the_next_file_shows_bytes_again() {
        let term = InMemoryTerm::new(4, 120);
        let bar = ProgressBar::with_draw_target(
            Some(0),
            ProgressDrawTarget::term_like(Box::new(term.clone())),
        );
        reading(&bar, "night.jsonl", 2048);
        bar.set_position(2048);
        bar.tick();
        let read = drawn(&term);
        assert!(read.starts_with("night.jsonl ["), "{read}");
        assert!(read.contains("2.00 KiB/2.00 KiB"), "{read}");

        phase(&bar, "building the events table's indexes");
        let building = drawn(&term);
        assert!(
            building.contains("building the events table's indexes (0s)"),
            "{building}"
        );
        assert!(
            !building.contains("KiB"),
            "no byte bar in a phase: {building}"
        );

        phase(&bar, format!("refresh: {}", "reports.clicks"));
        assert!(
            drawn(&term).contains("refresh: reports.clicks"),
            "{}",
            drawn(&term)
        );

        reading(&bar, "next.jsonl", 10);
        bar.tick();
        let next = drawn(&term);
        assert!(
            next.starts_with("next.jsonl [") && next.contains("0 B/10 B"),
            "{next}"
        );
        bar.finish_and_clear();
    }

    #[test]
    fn a_hidden_bar_shows_no_phase_and_starts_no_spinner() {
        let bar = ProgressBar::hidden();
        phase(&bar, "refresh: reports.clicks");
        assert_eq!(bar.message(), "");
    }
}
