//! The view set: reads the SQL files of `views/` (a directory or the set built into the binary),
//! their header lines, and the order they depend on each other in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use include_dir::{include_dir, Dir};

/// The report definitions built into the binary (the repository's `views/`).
pub(super) static BUILT_IN_VIEWS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/views");

/// Directory of data tests inside a views directory.
pub(super) const TESTS_DIRECTORY: &str = "tests";
/// Columns every incremental relation is keyed by.
pub(super) const INCREMENTAL_KEY: [&str; 2] = ["customer_id", "hour"];

/// How a view file is kept in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialization {
    View,
    Table,
    Incremental,
    MaterializedView,
}

impl Materialization {
    pub fn name(self) -> &'static str {
        match self {
            Materialization::View => "view",
            Materialization::Table => "table",
            Materialization::Incremental => "incremental",
            Materialization::MaterializedView => "materialized view",
        }
    }

    pub(super) fn parse(value: &str) -> Option<Self> {
        match value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
            .as_str()
        {
            "view" => Some(Materialization::View),
            "table" => Some(Materialization::Table),
            "incremental" => Some(Materialization::Incremental),
            "materialized view" | "materialized_view" => Some(Materialization::MaterializedView),
            _ => None,
        }
    }

    pub(super) fn drop_keyword(self) -> &'static str {
        match self {
            Materialization::View => "view",
            Materialization::Table | Materialization::Incremental => "table",
            Materialization::MaterializedView => "materialized view",
        }
    }
}

/// One relation defined by a file.
#[derive(Debug, Clone)]
pub struct Model {
    /// `schema.name`, lowercase.
    pub relation: String,
    /// Path relative to the views directory, e.g. `reports/page_loads.sql`.
    pub path: String,
    pub sql: String,
    pub materialized: Materialization,
    /// Columns of the unique index (`-- unique_key: a, b`); incremental models default to
    /// `customer_id, hour`.
    pub unique_key: Vec<String>,
    pub checksum: String,
    /// Other models this one reads, by relation name.
    pub depends_on: BTreeSet<String>,
    /// The query for the report keys that changed events make stale beyond their own
    /// (`-- stale keys: FILE`, beside the model): the model's attribution rule seen from a new
    /// page load. Part of the model's checksum.
    pub stale_keys: Option<CompanionQuery>,
    /// How much the model's rows grow with new events (`-- delta: FILE`, beside the model): rows
    /// of the unique key and an amount to add to each other column, selected from
    /// `changed_events` (the events loaded since the last refresh), `elt.events`, the model's own
    /// relation and anything else it reads. A refresh that does not rebuild the model adds them
    /// instead of recomputing the keys those events touch (see `transform::refresh`). Part of the
    /// model's checksum.
    pub delta: Option<CompanionQuery>,
    /// Changes to rows an earlier refresh published are recorded in `elt.restatements`: the
    /// four contract reports always, another incremental model with `-- restatements: recorded`.
    pub records_restatements: bool,
}

/// The relations whose restatements are always recorded: the reports' contract.
pub const CONTRACT_RELATIONS: [&str; 4] = [
    "reports.page_loads",
    "reports.clicks",
    "reports.unique_user_clicks",
    "reports.click_through_rate",
];

/// The header value that opts a model into recording its restatements.
const RESTATEMENTS_RECORDED: &str = "recorded";

/// A query a model declares in a file beside it: its stale keys or its delta.
///
/// The stale-keys query selects `(customer_id, hour)` rows from `changed_events`, `elt.events`
/// and `elt.settings`; it is queued with every batch once reports exist (for models without a
/// delta), and by `unload` (see `load::merge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanionQuery {
    /// Path relative to the views directory.
    pub path: String,
    pub sql: String,
}

/// A header line that names a model's companion query file, and how that file is named.
#[derive(Debug, Clone, Copy)]
struct CompanionKind {
    /// The header key, as in `-- stale keys: FILE`.
    header: &'static str,
    /// The file name's ending, after the model's name.
    suffix: &'static str,
    /// What the file is, for messages.
    what: &'static str,
}

impl CompanionKind {
    /// The kind of companion file `path` is named as, if any.
    fn of_path(path: &str) -> Option<CompanionKind> {
        [STALE_KEYS, DELTA]
            .into_iter()
            .find(|kind| path.ends_with(kind.suffix))
    }
}

const STALE_KEYS: CompanionKind = CompanionKind {
    header: "stale keys",
    suffix: ".stale_keys.sql",
    what: "stale-keys",
};

const DELTA: CompanionKind = CompanionKind {
    header: "delta",
    suffix: ".delta.sql",
    what: "delta",
};

/// A data test: a query whose rows are offences.
#[derive(Debug, Clone)]
pub struct DataTest {
    pub name: String,
    pub path: String,
    pub sql: String,
    /// blake3 of the file's text: a changed test reads every row once.
    pub checksum: String,
    /// The header `-- scope: per key`: a key's offending rows depend only on the rows of that
    /// key, so after incremental refreshes the test may read only the keys they recomputed.
    pub per_key: bool,
}

/// The header line that lets a data test read only the refreshed keys.
pub(super) const PER_KEY_SCOPE: &str = "per key";

impl DataTest {
    fn parse(name: &str, path: &str, sql: String) -> Result<DataTest> {
        let per_key = match header_value(&sql, "scope") {
            None => false,
            Some(value) if value.eq_ignore_ascii_case(PER_KEY_SCOPE) => true,
            Some(other) => bail!(
                "{path}: unknown scope {other:?}: the header `-- scope: {PER_KEY_SCOPE}` lets the \
                 test read only the keys a refresh recomputed; without it the test reads every row"
            ),
        };
        Ok(DataTest {
            name: name.to_owned(),
            path: path.to_owned(),
            checksum: blake3::hash(sql.as_bytes()).to_hex()[..32].to_owned(),
            per_key,
            sql,
        })
    }
}

/// The models of a views directory in dependency order, and its data tests.
#[derive(Debug, Clone)]
pub struct ViewSet {
    /// Where the files came from (`built-in` or a directory).
    pub origin: String,
    pub models: Vec<Model>,
    pub tests: Vec<DataTest>,
}

impl ViewSet {
    /// Reads `dir`, or the built-in set when `dir` is `None`.
    pub fn load(dir: Option<&Path>) -> Result<ViewSet> {
        let files = match dir {
            Some(dir) => read_directory(dir)?,
            None => {
                let mut files = Vec::new();
                collect_embedded(&BUILT_IN_VIEWS, &mut files);
                files
            }
        };
        let origin = dir.map_or_else(|| "built-in".to_owned(), |dir| dir.display().to_string());
        let views = ViewSet::from_files(origin, files)?;
        if dir.is_some() {
            views.check_stale_keys_against(&ViewSet::load(None)?)?;
        }
        Ok(views)
    }

    /// The stale-keys queries of the models that declare one; `with_delta: false` leaves out the
    /// models that also declare a delta (whose changes a merge batch leaves to the delta).
    pub fn stale_key_queries(&self, with_delta: bool) -> impl Iterator<Item = &CompanionQuery> {
        self.models
            .iter()
            .filter(move |model| with_delta || model.delta.is_none())
            .filter_map(|model| model.stale_keys.as_ref())
    }

    /// Whether any model declares a delta query.
    pub fn has_deltas(&self) -> bool {
        self.models.iter().any(|model| model.delta.is_some())
    }

    /// An analyst's copy of a built-in model that has a stale-keys file must declare one too:
    /// without it, new page loads would not make the hours of their clicks stale, and
    /// incremental refreshes would silently disagree with full ones.
    fn check_stale_keys_against(&self, built_in: &ViewSet) -> Result<()> {
        for model in &self.models {
            let built_in_model = built_in
                .models
                .iter()
                .find(|candidate| candidate.relation == model.relation);
            if let (None, Some(CompanionQuery { path, .. })) = (
                &model.stale_keys,
                built_in_model.and_then(|candidate| candidate.stale_keys.as_ref()),
            ) {
                let file = path.rsplit('/').next().unwrap_or(path);
                bail!(
                    "{}/{}: declares no stale-keys file, but the built-in {} has one: add the header \
                     line `-- {}: {file}` and copy {path} from the project's views/ \
                     directory beside it (it holds the report keys a new page load makes stale)",
                    self.origin,
                    model.path,
                    model.relation,
                    STALE_KEYS.header,
                );
            }
        }
        Ok(())
    }

    /// Builds a view set from `(relative path, contents)` pairs.
    pub fn from_files(origin: String, mut files: Vec<(String, String)>) -> Result<ViewSet> {
        files.sort();
        let mut stale_keys_files = declared_companions(&files, STALE_KEYS)?;
        let mut delta_files = declared_companions(&files, DELTA)?;
        let companion_paths: BTreeSet<String> = stale_keys_files
            .values()
            .chain(delta_files.values())
            .map(|declared| declared.path.clone())
            .collect();
        let mut models = Vec::new();
        let mut tests = Vec::new();
        for (path, sql) in files {
            if companion_paths.contains(&path) {
                continue;
            }
            let parts: Vec<&str> = path.trim_end_matches(".sql").split('/').collect();
            match parts.as_slice() {
                [TESTS_DIRECTORY, name] => {
                    check_identifier(name, &path)?;
                    tests.push(DataTest::parse(name, &path, sql)?);
                }
                [schema, name] => {
                    if let Some(kind) = CompanionKind::of_path(&path) {
                        bail!(
                            "{path}: no model declares this {} file (its model needs the header \
                             line `-- {}: {}`)",
                            kind.what,
                            kind.header,
                            path.rsplit('/').next().unwrap_or(&path)
                        );
                    }
                    check_identifier(schema, &path)?;
                    check_identifier(name, &path)?;
                    let stale_keys = stale_keys_files.remove(&path);
                    let delta = delta_files.remove(&path);
                    let model = parse_model(&format!("{schema}.{name}"), &path, sql)?;
                    models.push(model.with_companions(stale_keys, delta)?);
                }
                _ => bail!(
                    "{path}: a view file must be <schema>/<relation>.sql or {TESTS_DIRECTORY}/<test>.sql"
                ),
            }
        }
        let names: BTreeSet<String> = models.iter().map(|model| model.relation.clone()).collect();
        for model in &mut models {
            let code = strip_comments_and_strings(&model.sql).to_ascii_lowercase();
            model.depends_on = names
                .iter()
                .filter(|name| **name != model.relation && references(&code, name))
                .cloned()
                .collect();
        }
        let models = topological_order(models)?;
        Ok(ViewSet {
            origin,
            models,
            tests,
        })
    }
}

/// The companion files of one kind the models declare (`-- stale keys: FILE`, `-- delta: FILE`,
/// a path relative to the model's directory), by the declaring model's path. A declared file
/// that is missing fails with both names.
fn declared_companions(
    files: &[(String, String)],
    kind: CompanionKind,
) -> Result<BTreeMap<String, CompanionQuery>> {
    let mut declared = BTreeMap::new();
    for (path, sql) in files {
        let Some(file) = header_value(sql, kind.header) else {
            continue;
        };
        let directory = path.rsplit_once('/').map_or("", |(directory, _)| directory);
        let companion_path = match directory {
            "" => file.to_owned(),
            directory => format!("{directory}/{file}"),
        };
        if !file.ends_with(kind.suffix) {
            bail!(
                "{path}: its {} file {file:?} must be named <model>{}",
                kind.what,
                kind.suffix
            );
        }
        let companion_sql = files
            .iter()
            .find(|(candidate, _)| *candidate == companion_path)
            .map(|(_, sql)| sql.clone())
            .ok_or_else(|| {
                anyhow!(
                    "{path}: its {} file {companion_path} is missing (declared by `-- {}: {file}`)",
                    kind.what,
                    kind.header
                )
            })?;
        declared.insert(
            path.clone(),
            CompanionQuery {
                path: companion_path,
                sql: companion_sql.trim_end().trim_end_matches(';').to_owned(),
            },
        );
    }
    Ok(declared)
}

/// The value of a `-- key: value` line in the file's leading comment block.
fn header_value<'a>(sql: &'a str, key: &str) -> Option<&'a str> {
    sql.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map_while(|line| line.strip_prefix("--"))
        .filter_map(|comment| comment.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(key))
        .map(|(_, value)| value.trim())
}

impl Model {
    /// Attaches the model's stale-keys and delta queries; their texts become part of the
    /// model's checksum. Only an incremental model can have a delta: it is kept by key.
    fn with_companions(
        mut self,
        stale_keys: Option<CompanionQuery>,
        delta: Option<CompanionQuery>,
    ) -> Result<Model> {
        if delta.is_some() && self.materialized != Materialization::Incremental {
            bail!(
                "{}: only an incremental model can declare a delta (`-- {}: FILE`)",
                self.path,
                DELTA.header
            );
        }
        for (kind, query) in [(STALE_KEYS, &stale_keys), (DELTA, &delta)] {
            if let Some(query) = query {
                let mut hasher = blake3::Hasher::new();
                hasher.update(self.checksum.as_bytes());
                hasher.update(format!("\0{}\0", kind.header).as_bytes());
                hasher.update(query.sql.as_bytes());
                self.checksum = hasher.finalize().to_hex()[..32].to_owned();
            }
        }
        self.stale_keys = stale_keys;
        self.delta = delta;
        Ok(self)
    }
}

pub(super) fn read_directory(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let absolute = dir.join(&relative);
        let entries = std::fs::read_dir(&absolute)
            .with_context(|| format!("cannot read views directory {}", absolute.display()))?;
        for entry in entries {
            let entry = entry?;
            let relative = relative.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                pending.push(relative);
            } else if relative.extension().is_some_and(|ext| ext == "sql") {
                let text = std::fs::read_to_string(dir.join(&relative))
                    .with_context(|| format!("cannot read {}", dir.join(&relative).display()))?;
                files.push((relative.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    Ok(files)
}

pub(super) fn collect_embedded(dir: &Dir<'_>, files: &mut Vec<(String, String)>) {
    for file in dir.files() {
        if file.path().extension().is_some_and(|ext| ext == "sql") {
            if let Some(text) = file.contents_utf8() {
                files.push((file.path().to_string_lossy().into_owned(), text.to_owned()));
            }
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, files);
    }
}

pub(super) fn check_identifier(name: &str, path: &str) -> Result<()> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("{path}: {name:?} is not a plain lowercase SQL name ([a-z_][a-z0-9_]*)");
    }
    Ok(())
}

pub(super) fn parse_model(relation: &str, path: &str, sql: String) -> Result<Model> {
    let mut materialized = None;
    let mut unique_key = None;
    let mut restatements_header = None;
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            break;
        };
        if let Some((key, value)) = comment.split_once(':') {
            match key.trim().to_ascii_lowercase().as_str() {
                "materialized" => {
                    materialized = Some(Materialization::parse(value).ok_or_else(|| {
                        anyhow!(
                            "{path}: unknown materialization {:?} (use view, table, incremental or materialized view)",
                            value.trim()
                        )
                    })?)
                }
                "restatements" => restatements_header = Some(value.trim().to_owned()),
                "unique_key" => {
                    unique_key = Some(
                        value
                            .split(',')
                            .map(|column| column.trim().to_ascii_lowercase())
                            .filter(|column| !column.is_empty())
                            .collect::<Vec<_>>(),
                    )
                }
                _ => {}
            }
        }
    }
    let materialized = materialized
        .ok_or_else(|| anyhow!("{path}: missing the header line `-- materialized: view|table|incremental|materialized view`"))?;
    let unique_key = match (materialized, unique_key) {
        (_, Some(key)) => key,
        (Materialization::Incremental, None) => {
            INCREMENTAL_KEY.iter().map(|c| c.to_string()).collect()
        }
        (_, None) => Vec::new(),
    };
    if materialized == Materialization::Incremental
        && !INCREMENTAL_KEY
            .iter()
            .all(|c| unique_key.iter().any(|k| k == c))
    {
        bail!("{path}: an incremental relation is keyed by customer_id and hour; its unique_key must include both");
    }
    let records_restatements = match restatements_header.as_deref() {
        None => CONTRACT_RELATIONS.contains(&relation),
        Some(RESTATEMENTS_RECORDED) if materialized == Materialization::Incremental
            && unique_key.len() == INCREMENTAL_KEY.len() =>
        {
            true
        }
        Some(RESTATEMENTS_RECORDED) => bail!(
            "{path}: `-- restatements: {RESTATEMENTS_RECORDED}` needs an incremental relation keyed by customer_id and hour alone"
        ),
        Some(other) => bail!(
            "{path}: unknown restatements value {other:?} (the header is `-- restatements: {RESTATEMENTS_RECORDED}`)"
        ),
    };
    let body = sql.trim_end().trim_end_matches(';').to_owned();
    let checksum = blake3::hash(sql.as_bytes()).to_hex()[..32].to_owned();
    Ok(Model {
        relation: relation.to_owned(),
        path: path.to_owned(),
        sql: body,
        materialized,
        unique_key,
        checksum,
        depends_on: BTreeSet::new(),
        stale_keys: None,
        delta: None,
        records_restatements,
    })
}

/// What a piece of SQL text is, as far as finding relation names in it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexeme {
    Code,
    /// `-- …` up to and including its newline.
    LineComment,
    /// `/* … */`.
    BlockComment,
    /// `'…'` (a doubled quote inside is two literals side by side).
    String,
}

/// `sql` cut into code, comments and string literals, in order; the pieces join back to `sql`.
fn lexemes(sql: &str) -> Vec<(Lexeme, &str)> {
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let (mut code_start, mut at) = (0, 0);
    while at < bytes.len() {
        let (kind, end) = match (bytes[at], bytes.get(at + 1)) {
            (b'-', Some(b'-')) => (
                Lexeme::LineComment,
                sql[at..]
                    .find('\n')
                    .map_or(sql.len(), |newline| at + newline + 1),
            ),
            (b'/', Some(b'*')) => (
                Lexeme::BlockComment,
                sql[at + 2..]
                    .find("*/")
                    .map_or(sql.len(), |close| at + 2 + close + 2),
            ),
            (b'\'', _) => (
                Lexeme::String,
                sql[at + 1..]
                    .find('\'')
                    .map_or(sql.len(), |close| at + 1 + close + 1),
            ),
            _ => {
                at += 1;
                continue;
            }
        };
        if code_start < at {
            pieces.push((Lexeme::Code, &sql[code_start..at]));
        }
        pieces.push((kind, &sql[at..end]));
        (code_start, at) = (end, end);
    }
    if code_start < sql.len() {
        pieces.push((Lexeme::Code, &sql[code_start..]));
    }
    pieces
}

/// Removes `--` and `/* */` comments and the contents of string literals, so that names in them
/// do not count as references.
pub(super) fn strip_comments_and_strings(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    for (kind, text) in lexemes(sql) {
        match kind {
            Lexeme::Code => out.push_str(text),
            Lexeme::LineComment if text.ends_with('\n') => out.push('\n'),
            Lexeme::LineComment => {}
            Lexeme::BlockComment => out.push(' '),
            Lexeme::String => out.push_str("''"),
        }
    }
    out
}

/// The spellings of `schema.name` in SQL code, lower case (with and without quoted parts).
fn spellings(relation: &str) -> [String; 4] {
    let (schema, name) = relation.split_once('.').unwrap_or(("", relation));
    [
        format!("{schema}.{name}"),
        format!("\"{schema}\".\"{name}\""),
        format!("\"{schema}\".{name}"),
        format!("{schema}.\"{name}\""),
    ]
}

/// Where `code` (lower case) names `spelling` as a whole word: byte offsets of each match. With
/// `column_after`, a match may be followed by `.column` (`schema.name.column` names it too).
fn whole_word_matches<'a>(
    code: &'a str,
    spelling: &'a str,
    column_after: bool,
) -> impl Iterator<Item = usize> + 'a {
    let is_word = |c: Option<char>| {
        c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '"')
    };
    code.match_indices(spelling).filter_map(move |(start, _)| {
        let before = code[..start].chars().next_back();
        let after = code[start + spelling.len()..].chars().next();
        let after_ok = !is_word(after) || (column_after && after == Some('.'));
        (!is_word(before) && after_ok).then_some(start)
    })
}

/// Whether `code` mentions `schema.name` as a whole word (optionally with quoted parts).
pub(super) fn references(code: &str, relation: &str) -> bool {
    spellings(relation)
        .iter()
        .any(|spelling| whole_word_matches(code, spelling, false).next().is_some())
}

/// `sql` with every reference to `relation` in its code (not in comments or strings; any case,
/// quoted parts or not) replaced by `replacement`.
pub(super) fn replace_references(sql: &str, relation: &str, replacement: &str) -> String {
    let spellings = spellings(relation);
    let mut out = String::with_capacity(sql.len());
    for (kind, text) in lexemes(sql) {
        if kind != Lexeme::Code {
            out.push_str(text);
            continue;
        }
        // ASCII lower case keeps byte offsets, so matches in it index `text` too.
        let lower = text.to_ascii_lowercase();
        let mut matches: Vec<(usize, usize)> = spellings
            .iter()
            .flat_map(|spelling| {
                whole_word_matches(&lower, spelling, true)
                    .map(|start| (start, start + spelling.len()))
            })
            .collect();
        matches.sort_unstable();
        let mut copied = 0;
        for (start, end) in matches {
            if start >= copied {
                out.push_str(&text[copied..start]);
                out.push_str(replacement);
                copied = end;
            }
        }
        out.push_str(&text[copied..]);
    }
    out
}

/// Orders models so that each comes after what it depends on (ties by path); fails on a cycle.
pub(super) fn topological_order(models: Vec<Model>) -> Result<Vec<Model>> {
    let mut remaining: BTreeMap<String, Model> = models
        .into_iter()
        .map(|m| (m.relation.clone(), m))
        .collect();
    let mut ordered: Vec<Model> = Vec::with_capacity(remaining.len());
    while !remaining.is_empty() {
        let ready: Vec<String> = remaining
            .values()
            .filter(|model| {
                model
                    .depends_on
                    .iter()
                    .all(|dep| !remaining.contains_key(dep))
            })
            .map(|model| model.relation.clone())
            .collect();
        if ready.is_empty() {
            let cycle: Vec<&str> = remaining
                .values()
                .map(|model| model.path.as_str())
                .collect();
            bail!(
                "the view files depend on each other in a cycle: {}",
                cycle.join(", ")
            );
        }
        for relation in ready {
            ordered.push(remaining.remove(&relation).expect("ready model is present"));
        }
    }
    Ok(ordered)
}
