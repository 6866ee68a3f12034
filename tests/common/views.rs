//! Copies of the repository's `views/`, for tests that edit, add or break report SQL.

use std::path::Path;

use tempfile::TempDir;

/// A temporary copy of `views/`, for `--views-dir`.
pub fn copy_of_views() -> TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("views"),
        copy.path(),
    );
    copy
}

/// A temporary copy of `views/` whose hourly model declares no delta: its refreshes recompute
/// the stale keys, as every incremental model without a delta does.
pub fn copy_of_views_without_delta() -> TempDir {
    let copy = copy_of_views();
    let model = copy.path().join("intermediate/int_customer_hourly.sql");
    let sql = std::fs::read_to_string(&model).unwrap();
    let header = "-- delta: int_customer_hourly.delta.sql\n";
    assert!(sql.contains(header));
    std::fs::write(&model, sql.replacen(header, "", 1)).unwrap();
    std::fs::remove_file(
        copy.path()
            .join("intermediate/int_customer_hourly.delta.sql"),
    )
    .unwrap();
    copy
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
