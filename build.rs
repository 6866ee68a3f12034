//! Rebuilds the binary when a migration or a view file is added: `refinery::embed_migrations!`
//! and `include_dir!` read `migrations/` and `views/` at compile time, and cargo does not watch
//! those directories on its own.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=views");
}
