//! Times the parts of a batch (copy, merge, stale keys, commit) for `run --json`'s step seconds.

use std::time::Instant;

use crate::report::summary::{add_step_seconds, StepSeconds};

/// Times the parts of a batch: logs each (`-vv`) and adds it to the load's step seconds.
pub(super) struct StepTimer<'a> {
    pub(super) last_line_number: u64,
    started: Instant,
    seconds: &'a mut StepSeconds,
}

impl<'a> StepTimer<'a> {
    pub(super) fn new(seconds: &'a mut StepSeconds) -> Self {
        Self {
            last_line_number: 0,
            started: Instant::now(),
            seconds,
        }
    }

    /// Ends the part `name` that ran since the previous one.
    pub(super) fn step(&mut self, name: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        tracing::debug!(
            "batch to line {}: {name} took {elapsed:.3} s",
            self.last_line_number
        );
        add_step_seconds(self.seconds, name, elapsed);
        self.started = Instant::now();
    }
}
