//! `setup-roles`: creates the least-privilege group roles and their grants (as the schema owner).

use std::io::Write;

use anyhow::Result;

use super::{output, session};
use crate::admin::roles::{setup_roles as set_up, ANALYST_SCHEMA};
use crate::cli::{GlobalArgs, SetupRolesArgs};
use crate::exit;

pub(super) async fn setup_roles(
    global: &GlobalArgs,
    args: &SetupRolesArgs,
    stdout: &mut dyn Write,
) -> Result<i32> {
    let mut session = session::open_for_writing(global).await?;
    let summary = set_up(&mut session.client, &args.role_prefix).await?;
    let roles = &summary.roles;
    let created = match summary.created.is_empty() {
        true => "none".to_owned(),
        false => summary.created.join(", "),
    };
    let human = format!(
        "roles ready: {} (load, unload, purge-rejects, status), {} (refresh), {} (reports, schema \
         {ANALYST_SCHEMA}); created {created}",
        roles.loader, roles.transform, roles.analyst,
    );
    output::emit(global, stdout, &summary, &human)?;
    Ok(exit::SUCCESS)
}
