//! Generates realistic synthetic referral event logs, deterministic by seed.

use std::io::{self, Write};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Number of lines to write.
    pub lines: u64,
    /// Seed of the random generator: the same options give the same bytes.
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateStats {
    pub lines: u64,
    pub bytes: u64,
}

/// Writes `options.lines` JSON lines to `out`.
pub fn generate(options: &GenerateOptions, out: &mut dyn Write) -> io::Result<GenerateStats> {
    let _ = (options, out);
    Ok(GenerateStats::default())
}
