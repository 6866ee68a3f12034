//! Commands: one file per subcommand — its arguments become options, one domain call does the
//! work, and [`output`] prints the outcome. The writing commands share [`pipeline`] and
//! [`session`]; every writing command is recorded by [`run_record`].

use std::io::Write;

use anyhow::Result;

use crate::cli::{Cli, Command};

mod check;
mod generate;
mod load;
mod migrate;
mod output;
mod pipeline;
mod purge;
mod refresh;
mod report;
mod roles;
mod run;
mod run_record;
mod session;
mod status;
mod test;
mod unload;

/// Runs the command; returns the exit code of a command that completed (0, 1 after a failed
/// refresh, 3 or 4). Errors are returned for main to report (exit code from
/// [`crate::exit::code_for`]).
pub async fn execute(cli: &Cli, stdout: &mut dyn Write) -> Result<i32> {
    let global = &cli.global;
    match &cli.command {
        Command::Generate(args) => generate::generate(global, args, stdout),
        Command::Check(args) => check::check(global, args, stdout),
        Command::Migrate(_) => migrate::migrate(global, stdout).await,
        Command::Status(args) => status::status(global, args, stdout).await,
        Command::Report(args) => report::report(global, args, stdout).await,
        Command::Test(_) => test::test(global, stdout).await,
        Command::PurgeRejects(args) => {
            purge::purge(global, purge::Retention::Rejects, args.older_than, stdout).await
        }
        Command::PurgeRestatements(args) => {
            purge::purge(
                global,
                purge::Retention::Restatements,
                args.older_than,
                stdout,
            )
            .await
        }
        Command::SetupRoles(args) => roles::setup_roles(global, args, stdout).await,
        Command::Load(args) => load::load(global, args, stdout).await,
        Command::Refresh(args) => refresh::refresh(global, args, stdout).await,
        Command::Run(args) => run::run(global, args, stdout).await,
        Command::Unload(args) => unload::unload(global, args, stdout).await,
    }
}
