//! Test support shared by every integration test; each file below has one job.
//!
//! - `lines`: the loader's input (event lines, files of lines, fixtures, generated logs);
//! - `process`: running the binary and reading its exit code, stdout and stderr;
//! - `database`: the test server (`CAMPAIGN_ELT_TEST_DATABASE_URL`) and a database per test;
//! - `reports`: whole-table comparison of query results and the four reports;
//! - `views`: temporary copies of `views/` for tests that edit the report SQL;
//! - `cluster`: a private PostgreSQL cluster with password authentication;
//! - `roles`: `setup-roles`' roles under a prefix of one test's own, with logins;
//! - `browser`: headless Chromium, for the HTML report.
//!
//! A test file says `mod common;` and uses what it needs: every test file is a crate of its own,
//! so what one of them does not use is dead code (and an unused re-export) in that crate.

#![allow(dead_code, unused_imports)]

mod browser;
mod cluster;
mod database;
mod lines;
mod process;
mod reports;
mod roles;
mod views;

pub use browser::*;
pub use cluster::*;
pub use database::*;
pub use lines::*;
pub use process::*;
pub use reports::*;
pub use roles::*;
pub use views::*;
