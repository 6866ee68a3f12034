//! Settings that change what the reports mean, pinned in the database (`elt.settings`).

use std::fmt;

use anyhow::{bail, Context, Result};
use tokio_postgres::GenericClient;

use crate::ingest::clean::DEFAULT_EVENT_TYPES;
use crate::ingest::fired_at::SourceTimeZone;

/// Default attribution window, in seconds (README, "Which click is related").
pub const DEFAULT_CLICK_THROUGH_WINDOW_SECONDS: i32 = 300;

/// The meaning-bearing settings of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    pub click_through_window_seconds: i32,
    /// `UTC` or an IANA zone name, for naive `MM/DD/YYYY, HH:MM:SS` values.
    pub source_time_zone: String,
    pub accepted_event_types: Vec<String>,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            click_through_window_seconds: DEFAULT_CLICK_THROUGH_WINDOW_SECONDS,
            source_time_zone: "UTC".into(),
            accepted_event_types: DEFAULT_EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
        }
    }
}

impl fmt::Display for ReportSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "click-through window {} s, source time zone {}, accepted event types {}",
            self.click_through_window_seconds,
            self.source_time_zone,
            self.accepted_event_types.join(",")
        )
    }
}

/// What the operator asked for on the command line; `None` means "whatever the database has".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedSettings {
    pub click_through_window_seconds: Option<i32>,
    pub source_time_zone: Option<String>,
    pub accepted_event_types: Option<Vec<String>>,
}

impl RequestedSettings {
    /// The settings asked for, over `base`, in canonical form ([`ReportSettings::canonical`]).
    pub fn apply_to(&self, base: &ReportSettings) -> ReportSettings {
        ReportSettings {
            click_through_window_seconds: self
                .click_through_window_seconds
                .unwrap_or(base.click_through_window_seconds),
            source_time_zone: self
                .source_time_zone
                .clone()
                .unwrap_or_else(|| base.source_time_zone.clone()),
            accepted_event_types: self
                .accepted_event_types
                .clone()
                .unwrap_or_else(|| base.accepted_event_types.clone()),
        }
        .canonical()
    }
}

/// Names of the zone that is always UTC, which the IANA database keeps as links to `Etc/UTC`.
const UTC_NAMES: [&str; 8] = [
    "UTC",
    "Etc/UTC",
    "UCT",
    "Etc/UCT",
    "Zulu",
    "Etc/Zulu",
    "Universal",
    "Etc/Universal",
];

/// A time zone name as the IANA database spells it (`europe/berlin` is `Europe/Berlin`), and
/// `UTC` for every name of UTC; `None` for an unknown name.
fn canonical_time_zone(name: &str) -> Option<&'static str> {
    if UTC_NAMES.iter().any(|utc| utc.eq_ignore_ascii_case(name)) {
        return Some("UTC");
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| zone.name())
        .find(|known| known.eq_ignore_ascii_case(name))
}

/// Parses a source time zone name (`UTC` or an IANA name such as `Europe/Berlin`, in any case).
pub fn parse_time_zone(name: &str) -> Result<SourceTimeZone> {
    match canonical_time_zone(name) {
        Some("UTC") => Ok(SourceTimeZone::Utc),
        Some(known) => Ok(SourceTimeZone::Named(
            known.parse::<chrono_tz::Tz>().map_err(anyhow::Error::msg)?,
        )),
        None => {
            bail!("unknown time zone {name:?} (expected UTC or an IANA name such as Europe/Berlin)")
        }
    }
}

impl ReportSettings {
    /// The same settings spelled one way, so that equal settings compare equal: the time zone
    /// as the IANA database names it (any `UTC` alias is `UTC`), the event types sorted and
    /// without repeats (a set; names stay case-sensitive, as the loader compares them).
    pub fn canonical(mut self) -> ReportSettings {
        if let Some(zone) = canonical_time_zone(&self.source_time_zone) {
            self.source_time_zone = zone.to_owned();
        }
        self.accepted_event_types.sort();
        self.accepted_event_types.dedup();
        self
    }

    pub fn validate(&self) -> Result<()> {
        if self.click_through_window_seconds < 0 {
            bail!("the click-through window must not be negative");
        }
        parse_time_zone(&self.source_time_zone)?;
        if self.accepted_event_types.is_empty() {
            bail!("at least one event type must be accepted");
        }
        for required in ["ReferralPageLoad", "ReferralRecommendClick"] {
            if !self.accepted_event_types.iter().any(|t| t == required) {
                bail!("the accepted event types must include {required}: the reports are built from it");
            }
        }
        Ok(())
    }

    pub fn zone(&self) -> SourceTimeZone {
        parse_time_zone(&self.source_time_zone).unwrap_or_default()
    }
}

/// The settings stored in the database, if any.
pub async fn stored(client: &impl GenericClient) -> Result<Option<ReportSettings>> {
    let row = client
        .query_opt(
            "select click_through_window_seconds, source_time_zone, accepted_event_types from elt.settings",
            &[],
        )
        .await
        .context("cannot read elt.settings")?;
    Ok(row.map(|row| {
        ReportSettings {
            click_through_window_seconds: row.get(0),
            source_time_zone: row.get(1),
            accepted_event_types: row.get(2),
        }
        .canonical()
    }))
}

/// Result of pinning the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedSettings {
    pub settings: ReportSettings,
    /// The stored settings changed: every report must be rebuilt from the events.
    pub changed: bool,
}

/// Resolves the effective settings: stored ones, overridden by the requested ones. A database
/// without settings stores them; a request that differs from the stored settings is refused
/// unless `allow_change` (`--full-refresh`) is set, then stored.
pub async fn pin(
    client: &impl GenericClient,
    requested: &RequestedSettings,
    allow_change: bool,
) -> Result<PinnedSettings> {
    let stored = stored(client).await?;
    let base = stored.clone().unwrap_or_default();
    let effective = requested.apply_to(&base);
    effective.validate()?;
    match stored {
        None => {
            write(client, &effective, false).await?;
            Ok(PinnedSettings {
                settings: effective,
                changed: false,
            })
        }
        Some(stored) if stored == effective => Ok(PinnedSettings {
            settings: effective,
            changed: false,
        }),
        Some(stored) if allow_change => {
            tracing::warn!(
                "report settings change from ({stored}) to ({effective}); rebuilding every report"
            );
            if stored.source_time_zone != effective.source_time_zone
                || stored.accepted_event_types != effective.accepted_event_types
            {
                tracing::warn!(
                    "lines loaded earlier keep the outcome they had under the old time zone and event types; \
                     unload and reload them (load --force) to apply the new ones"
                );
            }
            write(client, &effective, true).await?;
            Ok(PinnedSettings {
                settings: effective,
                changed: true,
            })
        }
        Some(stored) => bail!(
            "this database's reports were built with {stored}; this run asks for {effective}. \
             Run with --full-refresh to rebuild the reports with the new settings, \
             or drop the flags to keep the stored ones"
        ),
    }
}

/// Stores the settings; `full_refresh_pending` records that the reports must be rebuilt whole
/// (cleared by the refresh that does it, see `transform::refresh`).
async fn write(
    client: &impl GenericClient,
    settings: &ReportSettings,
    full_refresh_pending: bool,
) -> Result<()> {
    client
        .execute(
            "insert into elt.settings (click_through_window_seconds, source_time_zone, accepted_event_types,
                 full_refresh_pending)
             values ($1, $2, $3, $4)
             on conflict (is_singleton) do update set
                 click_through_window_seconds = excluded.click_through_window_seconds,
                 source_time_zone = excluded.source_time_zone,
                 accepted_event_types = excluded.accepted_event_types,
                 full_refresh_pending = elt.settings.full_refresh_pending or excluded.full_refresh_pending,
                 updated_at = now()",
            &[
                &settings.click_through_window_seconds,
                &settings.source_time_zone,
                &settings.accepted_event_types,
                &full_refresh_pending,
            ],
        )
        .await
        .context("cannot store elt.settings")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_values_override_stored_ones() {
        let base = ReportSettings::default();
        let requested = RequestedSettings {
            click_through_window_seconds: Some(60),
            ..Default::default()
        };
        let effective = requested.apply_to(&base);
        assert_eq!(effective.click_through_window_seconds, 60);
        assert_eq!(effective.source_time_zone, "UTC");
    }

    #[test]
    fn settings_compare_by_canonical_zone_and_set_of_types() {
        let settings = |zone: &str, types: &[&str]| {
            RequestedSettings {
                source_time_zone: Some(zone.into()),
                accepted_event_types: Some(types.iter().map(|t| t.to_string()).collect()),
                ..Default::default()
            }
            .apply_to(&ReportSettings::default())
        };
        let stored = settings(
            "Europe/Berlin",
            &["ReferralPageLoad", "ReferralRecommendClick"],
        );
        assert_eq!(
            settings(
                "EUROPE/berlin",
                &[
                    "ReferralRecommendClick",
                    "ReferralPageLoad",
                    "ReferralPageLoad"
                ]
            ),
            stored
        );
        assert_eq!(stored.source_time_zone, "Europe/Berlin");
        assert_ne!(
            settings(
                "Europe/Berlin",
                &["referralpageload", "ReferralRecommendClick"]
            ),
            stored
        );
        assert_ne!(
            settings(
                "Europe/Paris",
                &["ReferralPageLoad", "ReferralRecommendClick"]
            ),
            stored
        );
        for utc in ["utc", "UTC", "Etc/UTC", "Zulu", "etc/universal"] {
            assert_eq!(settings(utc, &["x"]).source_time_zone, "UTC", "{utc}");
            assert_eq!(parse_time_zone(utc).unwrap(), SourceTimeZone::Utc);
        }
        // An unknown name stays as given, for validate() to refuse.
        assert_eq!(
            settings("Mars/Olympus", &["x"]).source_time_zone,
            "Mars/Olympus"
        );
    }

    #[test]
    fn validation_rejects_bad_settings() {
        let mut settings = ReportSettings {
            source_time_zone: "Mars/Olympus".into(),
            ..Default::default()
        };
        assert!(settings
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown time zone"));
        settings.source_time_zone = "Europe/Berlin".into();
        settings.validate().unwrap();
        settings.accepted_event_types = vec!["FaqClick".into()];
        assert!(settings.validate().is_err());
        settings = ReportSettings {
            click_through_window_seconds: -1,
            ..Default::default()
        };
        assert!(settings.validate().is_err());
    }
}
