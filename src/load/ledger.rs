//! The ledger (`elt.loads`): one row per loaded file, and the decision it drives — skip a file
//! whose content was loaded, resume an interrupted load, load only a grown file's new tail.

use std::path::Path;

use anyhow::{anyhow, Result};
use tokio_postgres::{Client, Transaction};

use super::reader::BatchProgress;
use crate::ingest::fingerprint::Fingerprint;
use crate::ingest::source;
use crate::names::LoadStatus;
use crate::report::summary::LineCounts;

/// A ledger row, as far as deciding what to do with a file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LedgerEntry {
    pub(super) load_id: i64,
    pub(super) status: LoadStatus,
    pub(super) size_bytes: Option<i64>,
    pub(super) content_hash: Option<Vec<u8>>,
    pub(super) committed_offset: i64,
    pub(super) committed_line_number: i64,
    pub(super) first_line_number: i64,
    pub(super) ends_with_newline: Option<bool>,
}

impl LedgerEntry {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self> {
        let status: &str = row.get("status");
        Ok(LedgerEntry {
            load_id: row.get("load_id"),
            status: LoadStatus::parse(status)
                .ok_or_else(|| anyhow!("elt.loads holds an unknown status {status:?}"))?,
            size_bytes: row.get("size_bytes"),
            content_hash: row.get("content_hash"),
            committed_offset: row.get("committed_offset"),
            committed_line_number: row.get("committed_line_number"),
            first_line_number: row.get("first_line_number"),
            ends_with_newline: row.get("ends_with_newline"),
        })
    }
}

/// What to do with one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LoadPlan {
    /// Its content was loaded before.
    Skip { load_id: i64, note: String },
    /// Load it from the first line.
    Fresh,
    /// Continue an interrupted load of the same content after its last committed batch.
    Resume {
        load_id: i64,
        offset: u64,
        next_line_number: u64,
        lines_resumed: u64,
    },
    /// The file grew since it was loaded: load only the new tail.
    Tail {
        offset: u64,
        next_line_number: u64,
        previous_load_id: i64,
    },
}

/// A load that a run began and did not finish.
pub(super) fn is_interrupted(entry: &LedgerEntry) -> bool {
    entry.status.is_interrupted()
}

/// Continues an interrupted load after its last committed batch.
fn resume(interrupted: &LedgerEntry) -> LoadPlan {
    LoadPlan::Resume {
        load_id: interrupted.load_id,
        offset: interrupted.committed_offset as u64,
        next_line_number: interrupted.committed_line_number as u64 + 1,
        lines_resumed: (interrupted.committed_line_number + 1 - interrupted.first_line_number)
            .max(0) as u64,
    }
}

/// Decides from the ledger what to do with a file. `same_path` holds the path's ledger rows,
/// newest first; `same_content` the rows with the file's content hash, newest first.
pub(super) fn plan_load(
    fingerprint: &Fingerprint,
    same_path: &[LedgerEntry],
    same_content: &[LedgerEntry],
    force: bool,
) -> LoadPlan {
    if force {
        return LoadPlan::Fresh;
    }
    if let Some(loaded) = same_content
        .iter()
        .find(|entry| entry.status == LoadStatus::Loaded)
    {
        return LoadPlan::Skip {
            load_id: loaded.load_id,
            note: format!("content already loaded by load {}", loaded.load_id),
        };
    }
    if let Some(interrupted) = same_content.iter().find(|entry| is_interrupted(entry)) {
        return resume(interrupted);
    }
    if let Some(previous) = same_path
        .iter()
        .find(|entry| entry.status == LoadStatus::Loaded || is_interrupted(entry))
    {
        let grew = previous
            .size_bytes
            .is_some_and(|size| size < fingerprint.size)
            && previous.content_hash.is_some()
            && fingerprint.prefix_hash == previous.content_hash;
        // An interrupted load of the file before it grew: continue it, to the new end.
        if grew && is_interrupted(previous) {
            return resume(previous);
        }
        if grew {
            if previous.ends_with_newline == Some(false) {
                return LoadPlan::Skip {
                    load_id: previous.load_id,
                    note: format!(
                        "the file grew, but load {} ended in a line without a final newline that may have \
                         been cut; not loaded (use --force to load the whole file again, deduplicated)",
                        previous.load_id
                    ),
                };
            }
            return LoadPlan::Tail {
                offset: previous.committed_offset as u64,
                next_line_number: previous.committed_line_number as u64 + 1,
                previous_load_id: previous.load_id,
            };
        }
    }
    LoadPlan::Fresh
}

/// The path as recorded in the ledger: absolute, so that a file is recognized from any
/// working directory (standard input is `-`).
pub(super) fn ledger_path(path: &Path) -> String {
    if source::is_stdin(path) {
        return "-".to_owned();
    }
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}
pub(super) async fn ledger_entries(
    client: &Client,
    condition: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Vec<LedgerEntry>> {
    let rows = client
        .query(
            &format!(
                "select load_id, status, size_bytes, content_hash, committed_offset, committed_line_number,
                        first_line_number, ends_with_newline
                 from elt.loads where {condition} order by load_id desc"
            ),
            &[value],
        )
        .await?;
    rows.iter().map(LedgerEntry::from_row).collect()
}

pub(super) async fn mark_failed(client: &Client, load_id: i64) {
    let result = client
        .execute(
            "update elt.loads set status = 'failed', finished_at = clock_timestamp() where load_id = $1",
            &[&load_id],
        )
        .await;
    if let Err(error) = result {
        tracing::debug!("cannot mark load {load_id} as failed: {error}");
    }
}

/// Where a load starts reading, and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StartAt {
    pub(super) offset: u64,
    pub(super) next_line_number: u64,
    /// Lines an earlier, interrupted run committed and this one does not read again.
    pub(super) lines_resumed: u64,
    pub(super) note: Option<String>,
}

impl LoadPlan {
    /// Where to start reading; `None` when the file is skipped.
    pub(super) fn start_at(&self) -> Option<StartAt> {
        match self {
            LoadPlan::Skip { .. } => None,
            LoadPlan::Fresh => Some(StartAt {
                offset: 0,
                next_line_number: 1,
                lines_resumed: 0,
                note: None,
            }),
            LoadPlan::Resume {
                load_id,
                offset,
                next_line_number,
                lines_resumed,
            } => Some(StartAt {
                offset: *offset,
                next_line_number: *next_line_number,
                lines_resumed: *lines_resumed,
                note: Some(format!("resumed load {load_id} at line {next_line_number}")),
            }),
            LoadPlan::Tail {
                offset,
                next_line_number,
                previous_load_id,
            } => Some(StartAt {
                offset: *offset,
                next_line_number: *next_line_number,
                lines_resumed: 0,
                note: Some(format!(
                    "grew since load {previous_load_id}: loaded from line {next_line_number}"
                )),
            }),
        }
    }
}

/// Opens the file's ledger row: a resumed load's own row (now recording the file's current
/// size and hash, to which it runs), else a new one. Returns the load id.
pub(super) async fn open_load(
    client: &Client,
    run_id: i64,
    position: i32,
    display_path: &str,
    plan: &LoadPlan,
    fingerprint: Option<&Fingerprint>,
    start: &StartAt,
) -> Result<i64> {
    let size = fingerprint.map(|fingerprint| fingerprint.size);
    let hash = fingerprint.map(|fingerprint| fingerprint.hash.clone());
    if let LoadPlan::Resume { load_id, .. } = plan {
        client
            .execute(
                "update elt.loads set status = 'loading', size_bytes = $2, content_hash = $3
                 where load_id = $1",
                &[load_id, &size, &hash],
            )
            .await?;
        return Ok(*load_id);
    }
    Ok(client
        .query_one(
            "insert into elt.loads (run_id, file_position, path, size_bytes, content_hash, start_offset,
                 first_line_number, committed_offset, committed_line_number)
             values ($1, $2, $3, $4, $5, $6, $7, $6, $7::bigint - 1) returning load_id",
            &[
                &run_id,
                &position,
                &display_path,
                &size,
                &hash,
                &(start.offset as i64),
                &(start.next_line_number as i64),
            ],
        )
        .await?
        .get(0))
}

/// Records a committed batch's progress and counts in the load's ledger row (inside the batch's
/// transaction); the last batch marks the load `loaded`.
pub(super) async fn record_batch(
    transaction: &Transaction<'_>,
    load_id: i64,
    batch: &BatchProgress,
    counts: &LineCounts,
) -> Result<()> {
    transaction
        .execute(
            "update elt.loads set
                 committed_offset = $2,
                 committed_line_number = $3,
                 lines = lines + $4,
                 loaded = loaded + $5,
                 duplicates = duplicates + $6,
                 rejected = rejected + $7,
                 blank = blank + $8,
                 rejected_by_reason = (
                     select coalesce(jsonb_object_agg(reason, lines order by reason), '{}')
                     from (
                         select counts.key as reason, sum(counts.value::bigint) as lines
                         from (
                             select * from jsonb_each_text(loads.rejected_by_reason)
                             union all
                             select * from jsonb_each_text($11::text::jsonb)
                         ) as counts
                         group by counts.key
                     ) as per_reason
                 ),
                 ends_with_newline = case when $4 = 0 then ends_with_newline else $9 end,
                 status = case when $10 then 'loaded' else status end,
                 finished_at = case when $10 then clock_timestamp() end
             where load_id = $1",
            &[
                &load_id,
                &(batch.end_offset as i64),
                &(batch.last_line_number as i64),
                &(counts.lines as i64),
                &(counts.loaded as i64),
                &(counts.duplicates as i64),
                &(counts.rejected as i64),
                &(counts.blank as i64),
                &batch.ends_with_newline,
                &batch.at_end_of_input,
                &serde_json::to_string(&counts.rejected_by_reason)?,
            ],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(size: i64, hash: u8, prefix_hash: Option<u8>) -> Fingerprint {
        Fingerprint {
            size,
            hash: vec![hash],
            prefix_hash: prefix_hash.map(|h| vec![h]),
        }
    }

    fn entry(
        load_id: i64,
        status: LoadStatus,
        size: i64,
        hash: u8,
        committed_line: i64,
        ends_with_newline: bool,
    ) -> LedgerEntry {
        LedgerEntry {
            load_id,
            status,
            size_bytes: Some(size),
            content_hash: Some(vec![hash]),
            committed_offset: size / 2,
            committed_line_number: committed_line,
            first_line_number: 1,
            ends_with_newline: Some(ends_with_newline),
        }
    }

    #[test]
    fn loaded_content_is_skipped_unless_forced() {
        let loaded = entry(3, LoadStatus::Loaded, 100, 7, 10, true);
        let plan = plan_load(
            &fingerprint(100, 7, None),
            &[],
            std::slice::from_ref(&loaded),
            false,
        );
        assert!(matches!(plan, LoadPlan::Skip { load_id: 3, .. }));
        assert_eq!(
            plan_load(&fingerprint(100, 7, None), &[], &[loaded], true),
            LoadPlan::Fresh
        );
    }

    #[test]
    fn an_interrupted_load_resumes_after_its_last_committed_batch() {
        let interrupted = entry(4, LoadStatus::Loading, 100, 7, 10, true);
        let plan = plan_load(&fingerprint(100, 7, None), &[], &[interrupted], false);
        assert_eq!(
            plan,
            LoadPlan::Resume {
                load_id: 4,
                offset: 50,
                next_line_number: 11,
                lines_resumed: 10
            }
        );
    }

    #[test]
    fn an_interrupted_load_of_a_file_that_then_grew_resumes() {
        let interrupted = entry(6, LoadStatus::Failed, 100, 7, 10, true);
        let plan = plan_load(&fingerprint(150, 8, Some(7)), &[interrupted], &[], false);
        assert_eq!(
            plan,
            LoadPlan::Resume {
                load_id: 6,
                offset: 50,
                next_line_number: 11,
                lines_resumed: 10
            }
        );
    }

    #[test]
    fn a_grown_file_loads_only_its_tail() {
        let earlier = entry(5, LoadStatus::Loaded, 100, 7, 10, true);
        let plan = plan_load(
            &fingerprint(150, 8, Some(7)),
            std::slice::from_ref(&earlier),
            &[],
            false,
        );
        assert_eq!(
            plan,
            LoadPlan::Tail {
                offset: 50,
                next_line_number: 11,
                previous_load_id: 5
            }
        );
        // Different old content: load it whole (deduplicated).
        assert_eq!(
            plan_load(&fingerprint(150, 8, Some(9)), &[earlier], &[], false),
            LoadPlan::Fresh
        );
    }

    #[test]
    fn a_grown_file_whose_last_line_had_no_newline_is_left_alone() {
        let earlier = entry(5, LoadStatus::Loaded, 100, 7, 10, false);
        let plan = plan_load(
            &fingerprint(150, 8, Some(7)),
            std::slice::from_ref(&earlier),
            &[],
            false,
        );
        assert!(
            matches!(plan, LoadPlan::Skip { load_id: 5, ref note } if note.contains("--force")),
            "{plan:?}"
        );
        assert_eq!(
            plan_load(&fingerprint(150, 8, Some(7)), &[earlier], &[], true),
            LoadPlan::Fresh
        );
    }
}
