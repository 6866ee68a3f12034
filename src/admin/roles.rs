//! Least privilege: `setup-roles` creates the loader, transform and analyst group roles
//! (NOLOGIN, idempotent) and grants each exactly what its commands need.
//!
//! Role names come from `--role-prefix` and are always quoted; values (role names looked up
//! in the catalog) are bound, never interpolated.

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::db::{quote_ident, quote_relation};
use crate::report_settings::{self, RequestedSettings};

/// The prefix used when `--role-prefix` is not given.
pub const DEFAULT_ROLE_PREFIX: &str = "campaign_elt";
/// The schema the analyst role owns, for its own views.
pub const ANALYST_SCHEMA: &str = "analyst";
/// Schemas of the built-in views; the transform role may create relations in them.
const REPORT_SCHEMAS: [&str; 3] = ["staging", "intermediate", "reports"];
/// PostgreSQL identifiers are at most 63 bytes; the longest suffix is `_transform`.
pub const MAX_PREFIX_BYTES: usize = 63 - "_transform".len();

/// The three group roles of one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleNames {
    pub loader: String,
    pub transform: String,
    pub analyst: String,
}

impl RoleNames {
    pub fn new(prefix: &str) -> Self {
        Self {
            loader: format!("{prefix}_loader"),
            transform: format!("{prefix}_transform"),
            analyst: format!("{prefix}_analyst"),
        }
    }

    fn all(&self) -> [&str; 3] {
        [&self.loader, &self.transform, &self.analyst]
    }
}

/// What `setup-roles` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupRolesSummary {
    pub schema_version: u32,
    pub command: &'static str,
    pub roles: RoleNames,
    /// Roles that did not exist before (the others were kept and their grants renewed).
    pub created: Vec<String>,
    /// Report relations whose ownership moved to the transform role.
    pub reassigned_relations: Vec<String>,
}

/// The grants, as statements with every identifier quoted. `schemas` are the existing schemas
/// the transform role writes in; `database` is the current database.
fn grant_statements(roles: &RoleNames, database: &str, schemas: &[String]) -> Vec<String> {
    let loader = quote_ident(&roles.loader);
    let transform = quote_ident(&roles.transform);
    let analyst = quote_ident(&roles.analyst);
    let database = quote_ident(database);
    let mut statements = vec![
        format!("grant connect on database {database} to {loader}, {transform}, {analyst}"),
        // Every command that connects checks that the schema is up to date (read only), the
        // analyst's `report` and `status` too.
        format!(
            "grant select on table refinery_schema_history to {loader}, {transform}, {analyst}"
        ),
        format!("grant usage on schema elt to {loader}, {transform}"),
        // loader: load, unload, purge-rejects, status.
        format!("grant select, insert, update, delete, truncate on table elt.staged_lines to {loader}"),
        format!("grant select, insert, delete on table elt.events, elt.rejects to {loader}"),
        format!("grant select, insert, update, delete on table elt.loads to {loader}"),
        // unload marks the keys it queues for recomputation (`on conflict do update`)
        format!("grant select, insert, update on table elt.stale_keys to {loader}"),
        // unload takes its events out of the refresh's queue
        format!("grant select, insert, delete on table elt.unrefreshed_events to {loader}"),
        format!("grant select, insert, update, delete on table elt.customer_newest_fired_at to {loader}"),
        format!("grant select, insert, update on table elt.runs to {loader}"),
        format!(
            "grant select on table elt.settings, elt.refreshes, elt.refresh_keys, elt.managed_relations, elt.freshness, elt.restatements to {loader}"
        ),
        // transform: refresh (and the refresh of run / unload).
        format!("grant select on table elt.events to {transform}"),
        format!("grant select, insert, update on table elt.settings to {transform}"),
        format!("grant select, delete on table elt.stale_keys to {transform}"),
        format!("grant select, truncate on table elt.unrefreshed_events to {transform}"),
        format!("grant select, update (refreshed_fired_at) on table elt.customer_newest_fired_at to {transform}"),
        format!("grant select, insert, update, delete on table elt.managed_relations to {transform}"),
        format!("grant select, insert, update on table elt.refreshes, elt.runs to {transform}"),
        format!("grant select, insert on table elt.refresh_keys to {transform}"),
        // the data tests after a refresh record what they found
        format!("grant select, insert, update on table elt.data_test_results to {transform}"),
        // the refresh records restatements; purge-restatements deletes old ones
        format!("grant select, insert, delete on table elt.restatements to {transform}"),
        // Each views/ directory is a schema; the refresh runs `create schema if not exists`.
        format!("grant create on database {database} to {transform}"),
    ];
    for schema in schemas {
        statements.push(format!(
            "grant usage, create on schema {} to {transform}",
            quote_ident(schema)
        ));
    }
    // analyst: reads the reports, keeps its own views in its schema.
    statements.extend([
        format!("grant usage on schema reports to {analyst}"),
        format!("grant select on all tables in schema reports to {analyst}"),
        format!(
            "grant execute on function reports.clicking_users(timestamptz, timestamptz) to {analyst}"
        ),
        // the newest fired_at of status and reports.freshness, the loader's bulk finish
        format!("grant execute on function elt.event_customers() to {loader}, {transform}, {analyst}"),
        format!(
            "alter default privileges for role {transform} in schema reports grant select on tables to {analyst}"
        ),
        format!(
            "create schema if not exists {} authorization {analyst}",
            quote_ident(ANALYST_SCHEMA)
        ),
        format!(
            "alter schema {} owner to {analyst}",
            quote_ident(ANALYST_SCHEMA)
        ),
    ]);
    statements
}

/// Creates the roles that are missing (NOLOGIN); returns the names it created.
async fn create_roles(client: &Client, roles: &RoleNames) -> Result<Vec<String>> {
    let mut created = Vec::new();
    for role in roles.all() {
        let exists = client
            .query_opt(
                "select 1 from pg_catalog.pg_roles where rolname = $1",
                &[&role],
            )
            .await?
            .is_some();
        if exists {
            continue;
        }
        match client
            .batch_execute(&format!("create role {} nologin", quote_ident(role)))
            .await
        {
            Ok(()) => created.push(role.to_owned()),
            // Another setup-roles (on another database of the cluster) created it just now.
            Err(error)
                if error.code() == Some(&SqlState::DUPLICATE_OBJECT)
                    || error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "cannot create role {role} (setup-roles needs a superuser or CREATEROLE)"
                    )
                })
            }
        }
    }
    Ok(created)
}

/// Creates the roles and grants, pins the report settings (so that a loader, which may only
/// read them, finds them) and hands the report relations the tool built to the transform role.
pub async fn setup_roles(client: &mut Client, prefix: &str) -> Result<SetupRolesSummary> {
    let roles = RoleNames::new(prefix);
    let created = create_roles(client, &roles).await?;

    let transaction = client.transaction().await?;
    report_settings::pin(&transaction, &RequestedSettings::default(), false).await?;
    let database: String = transaction
        .query_one("select current_database()", &[])
        .await?
        .get(0);
    // The schemas of the built-in views and of every relation the tool manages, if they exist.
    let schemas: Vec<String> = transaction
        .query(
            "select nspname from pg_catalog.pg_namespace
             where nspname = any($1)
                 or nspname in (select split_part(relation_name, '.', 1) from elt.managed_relations)
             order by nspname",
            &[&REPORT_SCHEMAS.to_vec()],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    // The transform role rebuilds (drops and re-creates) the relations, so it must own them.
    let managed = transaction
        .query(
            "select managed.relation_name, class.relkind::text
             from elt.managed_relations as managed
             inner join pg_catalog.pg_class as class
                 on class.oid = to_regclass(managed.relation_name)
             order by managed.relation_name",
            &[],
        )
        .await?;
    let mut statements = grant_statements(&roles, &database, &schemas);
    let mut reassigned_relations = Vec::new();
    for row in &managed {
        let relation: String = row.get(0);
        let kind = match row.get::<_, String>(1).as_str() {
            "v" => "view",
            "m" => "materialized view",
            _ => "table",
        };
        statements.push(format!(
            "alter {kind} {} owner to {}",
            quote_relation(&relation),
            quote_ident(&roles.transform)
        ));
        reassigned_relations.push(relation);
    }
    for statement in &statements {
        transaction
            .batch_execute(statement)
            .await
            .with_context(|| format!("setup-roles: {statement}"))?;
    }
    transaction.commit().await?;
    Ok(SetupRolesSummary {
        schema_version: crate::report::summary::SUMMARY_SCHEMA_VERSION,
        command: "setup-roles",
        roles,
        created,
        reassigned_relations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_and_schema_name_is_quoted() {
        let roles = RoleNames::new("p");
        let statements = grant_statements(&roles, "my\"db", &["reports".to_owned()]);
        for statement in &statements {
            assert!(
                !statement.contains(" p_") && !statement.contains(",p_"),
                "unquoted role in {statement}"
            );
        }
        assert!(statements
            .iter()
            .any(|s| s.contains("database \"my\"\"db\"")));
    }
}
