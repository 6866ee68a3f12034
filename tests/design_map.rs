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

/// Module paths (`load::merge`) of the non-test source files, with their code before any
/// `#[cfg(test)]`, comments removed.
fn modules() -> Vec<(String, String)> {
    let mut files = BTreeSet::new();
    source_files(&Path::new(ROOT).join("src"), &mut files);
    files
        .iter()
        .filter(|file| !file.ends_with("lib.rs") && !file.ends_with("main.rs"))
        .map(|file| {
            let path = file.trim_start_matches("src/").trim_end_matches(".rs");
            let path = path.trim_end_matches("/mod").replace('/', "::");
            let text = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            (path, code)
        })
        .collect()
}

/// The paths after each `crate::` / `super::` in `code`, as segment lists relative to the
/// crate root; `use super::{a, b}` gives both.
fn references(module: &str, code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (start, prefix) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if start > 0 && code[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut base: Vec<String> = match prefix {
            "crate::" => Vec::new(),
            _ => module.split("::").map(str::to_owned).collect(),
        };
        let mut rest = &code[start + prefix.len()..];
        if prefix == "super::" {
            base.pop();
            while let Some(more) = rest.strip_prefix("super::") {
                base.pop();
                rest = more;
            }
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut segments = base.clone();
        segments.extend(
            path.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        found.push(segments);
        if let Some(group) = rest[path.len()..].strip_prefix('{') {
            for item in group.split('}').next().unwrap().split(',') {
                let item = item.trim().split("::").next().unwrap().trim();
                let mut segments: Vec<String> = base.clone();
                segments.extend(
                    path.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
                segments.push(item.to_owned());
                found.push(segments);
            }
        }
    }
    found
}

/// No module imports another that (directly or round a cycle) imports it. A module's private
/// submodules (`ingest::clean::json`) are parts of it: they may use their parent's items, and
/// the parent declares them, so that pair is not an edge the test looks for.
#[test]
fn no_two_modules_import_each_other_directly_or_round_a_cycle() {
    let modules = modules();
    let names: BTreeSet<&str> = modules.iter().map(|(name, _)| name.as_str()).collect();
    let mut edges: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for (module, code) in &modules {
        for segments in references(module, code) {
            // The longest prefix that is a module is what the reference imports.
            let target = (1..=segments.len())
                .rev()
                .map(|length| segments[..length].join("::"))
                .find(|candidate| names.contains(candidate.as_str()));
            let is_ancestor = |target: &String| module.starts_with(&format!("{target}::"));
            if let Some(target) = target.filter(|target| target != module && !is_ancestor(target)) {
                edges.entry(module).or_default().insert(target);
            }
        }
    }
    // Depth-first search for a path back to where it started.
    fn cycle_from(
        start: &str,
        at: &str,
        edges: &std::collections::BTreeMap<&str, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        for next in edges.get(at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if let Some(cycle) = cycle_from(start, next, edges, path, seen) {
                    return Some(cycle);
                }
                path.pop();
            }
        }
        None
    }
    for module in &names {
        let mut path = vec![module.to_string()];
        let cycle = cycle_from(module, module, &edges, &mut path, &mut BTreeSet::new());
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" -> ")
        );
    }
}
