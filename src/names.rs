//! The domain's names, in one leaf module: event types, reject reason codes, and the statuses
//! of loads, files and runs as the database and the `--json` summary spell them.

use serde::Serialize;

/// A page load: a user opened a customer's referral page.
pub const PAGE_LOAD: &str = "ReferralPageLoad";
/// A click on "Recommend".
pub const RECOMMEND_CLICK: &str = "ReferralRecommendClick";
/// The default accepted event types (operators can extend the set).
pub const DEFAULT_EVENT_TYPES: [&str; 3] = [PAGE_LOAD, RECOMMEND_CLICK, "FaqClick"];

/// Why a line was rejected: the first check it failed. The order of the variants is the order
/// of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    LineTooLong,
    InvalidUtf8,
    InvalidJson,
    MissingEventId,
    InvalidEventId,
    MissingCustomerId,
    InvalidCustomerId,
    MissingUserId,
    InvalidUserId,
    MissingFiredAt,
    InvalidFiredAt,
    MissingEventType,
    UnknownEventType,
}

impl RejectReason {
    pub const ALL: [RejectReason; 13] = [
        RejectReason::LineTooLong,
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::MissingEventId,
        RejectReason::InvalidEventId,
        RejectReason::MissingCustomerId,
        RejectReason::InvalidCustomerId,
        RejectReason::MissingUserId,
        RejectReason::InvalidUserId,
        RejectReason::MissingFiredAt,
        RejectReason::InvalidFiredAt,
        RejectReason::MissingEventType,
        RejectReason::UnknownEventType,
    ];

    /// The stable code stored in the rejects table and printed in summaries.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::MissingEventId => "missing_event_id",
            RejectReason::InvalidEventId => "invalid_event_id",
            RejectReason::MissingCustomerId => "missing_customer_id",
            RejectReason::InvalidCustomerId => "invalid_customer_id",
            RejectReason::MissingUserId => "missing_user_id",
            RejectReason::InvalidUserId => "invalid_user_id",
            RejectReason::MissingFiredAt => "missing_fired_at",
            RejectReason::InvalidFiredAt => "invalid_fired_at",
            RejectReason::MissingEventType => "missing_event_type",
            RejectReason::UnknownEventType => "unknown_event_type",
        }
    }
}

/// A file's load in the ledger (`elt.loads.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStatus {
    /// A run is loading it, or died while loading it (the next run resumes it).
    Loading,
    /// Every line was committed.
    Loaded,
    /// The load ended with an error (the next run resumes it).
    Failed,
    /// Taken back (a status the schema allows; `unload` deletes the row instead).
    Unloaded,
}

impl LoadStatus {
    const ALL: [LoadStatus; 4] = [
        LoadStatus::Loading,
        LoadStatus::Loaded,
        LoadStatus::Failed,
        LoadStatus::Unloaded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoadStatus::Loading => "loading",
            LoadStatus::Loaded => "loaded",
            LoadStatus::Failed => "failed",
            LoadStatus::Unloaded => "unloaded",
        }
    }

    /// The status a ledger row spells `text`, if it is one.
    pub fn parse(text: &str) -> Option<LoadStatus> {
        LoadStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// A load that a run began and did not finish: the next run resumes it.
    pub fn is_interrupted(self) -> bool {
        matches!(self, LoadStatus::Loading | LoadStatus::Failed)
    }
}

/// What a command did with one input file (the run summary's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Loaded,
    /// Its content was loaded before, or it grew after a cut last line.
    Skipped,
    /// Classified by `check`, not loaded.
    Checked,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Loaded => "loaded",
            FileStatus::Skipped => "skipped",
            FileStatus::Checked => "checked",
        }
    }
}

/// A command's row in `elt.runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_statuses_read_back_as_written() {
        for status in LoadStatus::ALL {
            assert_eq!(LoadStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(LoadStatus::parse("Loaded"), None);
    }
}
