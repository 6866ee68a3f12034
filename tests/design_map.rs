//! docs/design.md's module map and the code agree (issue 12): every source file is in the map,
//! and every file the map names exists.

use std::collections::BTreeSet;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Source files, as `src/…` paths; test modules (`tests.rs`, `*_tests.rs`) belong to the module
/// beside them.
fn source_files(dir: &Path, files: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, files);
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
            let relative = path.strip_prefix(ROOT).unwrap();
            files.insert(relative.to_string_lossy().into_owned());
        }
    }
}

/// The rows of the map's table: (first cell without backticks, whole row).
fn map_rows(design: &str) -> Vec<(String, String)> {
    let map = design
        .split("## Module map")
        .nth(1)
        .expect("docs/design.md has a module map")
        .split("\n## ")
        .next()
        .unwrap();
    map.lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cell = line.split('|').nth(1).unwrap().trim().replace('`', "");
            (cell, line.to_owned())
        })
        .collect()
}

/// `src/commands/{run,load}.rs` → both paths; `a.rs, b.rs` → both.
fn named_paths(cell: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for part in cell.split(", ") {
        match (part.find('{'), part.find('}')) {
            (Some(open), Some(close)) => {
                for name in part[open + 1..close].split(',') {
                    paths.push(format!("{}{name}{}", &part[..open], &part[close + 1..]));
                }
            }
            _ => paths.push(part.to_owned()),
        }
    }
    paths
}

#[test]
fn every_source_file_is_in_the_design_module_map_and_every_mapped_file_exists() {
    let design = std::fs::read_to_string(Path::new(ROOT).join("docs/design.md")).unwrap();
    let rows = map_rows(&design);
    let mut files = BTreeSet::new();
    source_files(&Path::new(ROOT).join("src"), &mut files);
    let mut missing = Vec::new();
    for file in &files {
        let named = rows
            .iter()
            .any(|(cell, _)| named_paths(cell).iter().any(|path| path == file));
        // A directory row (`src/ingest/`) names its files by stem in its text.
        let in_directory_row = rows.iter().any(|(cell, row)| {
            cell.ends_with('/')
                && file.starts_with(cell.as_str())
                && file[cell.len()..].split('/').next().is_some_and(|first| {
                    let stem = first.trim_end_matches(".rs");
                    row.contains(&format!("`{stem}`")) || row.contains(&format!("`{first}`"))
                })
        });
        if !named && !in_directory_row {
            missing.push(file.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/design.md's module map: {missing:#?}"
    );
    for (cell, _) in &rows {
        for path in named_paths(cell) {
            assert!(
                Path::new(ROOT).join(&path).exists(),
                "docs/design.md's module map names {path}, which does not exist"
            );
        }
    }
}
