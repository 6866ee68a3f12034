//! Administration that is SQL only: retention of raw rejected lines, least-privilege roles.

pub mod purge;
pub mod roles;
