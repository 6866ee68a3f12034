//! The least-privilege roles of one test: a database and `setup-roles`' roles under a prefix of
//! the test's own, with login roles in them; dropped (database first) even on panic.

use super::database::{on_the_server_blocking, with_query_parameter, TestDatabase};

/// A test database plus the roles of one prefix, dropped (database first) even on panic.
pub struct RolesUnderTest {
    pub db: TestDatabase,
    pub prefix: String,
}

impl RolesUnderTest {
    pub async fn new() -> Self {
        let db = TestDatabase::new().await;
        // Unique per test: the database name is unique already.
        let prefix = format!("t{}", db.name.trim_start_matches("campaign_elt_test_"));
        Self { db, prefix }
    }

    pub fn role(&self, kind: &str) -> String {
        format!("{}_{kind}", self.prefix)
    }

    /// A login role that is a member of `<prefix>_<kind>`, and a URL that connects as it with
    /// `role` set to the group role (so the session has exactly that role's rights and what
    /// it creates belongs to the group role).
    pub async fn login(&self, kind: &str) -> String {
        let login = format!("{}_login_{kind}", self.prefix);
        let admin = self.db.client().await;
        admin
            .batch_execute(&format!(
                "create role \"{login}\" login in role \"{}\"",
                self.role(kind)
            ))
            .await
            .unwrap();
        let (scheme, rest) = self.db.url.split_once("://").unwrap();
        let (_, rest) = rest.split_once('@').unwrap();
        with_query_parameter(
            &format!("{scheme}://{login}@{rest}"),
            &format!("options=-c%20role%3D{}", self.role(kind)),
        )
    }
}

impl Drop for RolesUnderTest {
    fn drop(&mut self) {
        let name = self.db.name.clone();
        let prefix = self.prefix.clone();
        on_the_server_blocking(move |admin| async move {
            // Grants and default privileges live in the database: drop it first.
            let _ = admin
                .batch_execute(&format!("drop database if exists {name} with (force)"))
                .await;
            let roles: Vec<String> = admin
                .query(
                    "select rolname from pg_roles where starts_with(rolname, $1) order by rolname like '%login%' desc",
                    &[&format!("{prefix}_")],
                )
                .await
                .map(|rows| rows.iter().map(|row| row.get(0)).collect())
                .unwrap_or_default();
            for role in roles {
                let _ = admin
                    .batch_execute(&format!("drop role if exists \"{role}\""))
                    .await;
            }
        });
    }
}
