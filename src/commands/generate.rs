//! `generate`: writes synthetic referral event logs (deterministic by seed), to a file or stdout.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::{GenerateArgs, GlobalArgs};
use crate::exit::{self, UsageError};
use crate::generate::{self as generator, GenerateOptions};

pub(super) fn generate(
    global: &GlobalArgs,
    args: &GenerateArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let quiet = global.quiet;
    let mix = args.mix.options();
    let options = GenerateOptions {
        lines: args.lines,
        seed: args.seed,
        start: args.start,
        events_per_hour: args.events_per_hour,
        customers: args.customers,
        users: args.users,
        customer_skew: args.customer_skew,
        dirt_rate: args.dirt_rate.unwrap_or(mix.dirt_rate),
        exact_duplicate_rate: args
            .exact_duplicate_rate
            .unwrap_or(mix.exact_duplicate_rate),
        conflicting_resend_rate: args
            .conflicting_resend_rate
            .unwrap_or(mix.conflicting_resend_rate),
        late_rate: args.late_rate.unwrap_or(mix.late_rate),
        days_late_share: args.days_late_share.unwrap_or(mix.days_late_share),
    };
    options
        .validate()
        .map_err(|message| UsageError(format!("generate: {message}")))?;
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            let stats = if path.extension().is_some_and(|ext| ext == "gz") {
                let mut encoder =
                    flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
                let stats = generator::generate(&options, &mut encoder)?;
                encoder.finish()?.flush()?;
                stats
            } else {
                let stats = generator::generate(&options, &mut writer)?;
                writer.flush()?;
                stats
            };
            if !quiet {
                eprintln!(
                    "wrote {} lines ({} bytes) to {}",
                    stats.lines,
                    stats.bytes,
                    path.display()
                );
            }
        }
        None => {
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, stdout);
            generator::generate(&options, &mut writer)?;
            writer.flush()?;
        }
    }
    Ok(exit::SUCCESS)
}
