//! Configuration: how to reach the database and the settings that change what reports mean.

pub mod connection;
mod conninfo;
mod pgpass;
mod tls;
