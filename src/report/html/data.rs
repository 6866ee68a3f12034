//! What the HTML report shows, read from the report relations and the counts-only views of the
//! ledger (`reports.load_quality`, `reports.freshness`, `reports.clicking_users`): everything
//! the analyst role may read, nothing of the events or the rejected lines themselves.

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, DurationRound, Utc};
use tokio_postgres::Client;

/// Which customers and hours the report covers.
#[derive(Debug, Clone)]
pub struct HtmlRequest {
    pub customer_id: Option<i64>,
    /// Hours at or after this instant [default: 7 days before `to`]. The report starts at the
    /// first hour with report rows when that is later, and ends after the last.
    pub from: Option<DateTime<Utc>>,
    /// Hours before this instant [default: the hour after the newest `fired_at`].
    pub to: Option<DateTime<Utc>>,
    /// How many customers, by volume, get full charts.
    pub top: usize,
}

/// The default range: the 7 days up to the newest `fired_at`.
pub const DEFAULT_RANGE_DAYS: i64 = 7;

/// How many loads the data-quality part lists (the newest).
pub const LISTED_LOADS: i64 = 30;

/// One customer's totals over the range.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerTotals {
    pub customer_id: i64,
    pub page_loads: i64,
    pub clicks: i64,
    pub related_clicks: i64,
    /// Distinct users who clicked in the range (not a sum of hourly counts).
    pub unique_clicking_users: i64,
    /// sum(related clicks) / sum(page loads) as a percentage with two decimals, computed by
    /// PostgreSQL in exact numeric; `None` without page loads.
    pub rate_percent: Option<String>,
    /// The click-through rate of each UTC day of the range that has page loads.
    pub daily_rates: Vec<(DateTime<Utc>, f64)>,
}

/// One hour (or day) of one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub page_loads: i64,
    pub clicks: i64,
    pub related_clicks: i64,
}

impl Point {
    /// related clicks / page loads, `None` without page loads.
    pub fn rate(&self) -> Option<f64> {
        (self.page_loads > 0).then(|| self.related_clicks as f64 / self.page_loads as f64)
    }
}

/// The hourly points of one of the top customers, every hour of the range (zero where the
/// reports have no row).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSeries {
    pub customer_id: i64,
    pub hours: Vec<Point>,
}

/// One load as `reports.load_quality` has it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadQuality {
    pub load_id: i64,
    pub path: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub lines: i64,
    pub loaded: i64,
    pub duplicates: i64,
    pub rejected: i64,
    pub blank: i64,
}

/// One row of `reports.restatements`: a published row a later refresh changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Restatement {
    pub refreshed_at: Option<DateTime<Utc>>,
    pub relation: String,
    /// `None` in a summary row (a rebuild that changed more than 10,000 rows).
    pub customer_id: Option<i64>,
    pub hour: Option<DateTime<Utc>>,
    /// The changed columns: (column, old value, new value), as PostgreSQL wrote them in JSON
    /// ("removed" as the new value of a row that disappeared).
    pub changes: Vec<(String, String, String)>,
    pub changed_rows: i64,
    pub cause: String,
}

/// How many restatements the report lists (the newest).
pub const LISTED_RESTATEMENTS: i64 = 20;

/// `reports.freshness`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Freshness {
    pub newest_fired_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_refresh_at: Option<DateTime<Utc>>,
    pub stale_keys: i64,
    pub click_through_window_seconds: Option<i32>,
    pub source_time_zone: Option<String>,
    pub accepted_event_types: Vec<String>,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub generated_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every customer with rows in the range, by volume (page loads + clicks), largest first.
    pub overview: Vec<CustomerTotals>,
    /// The top customers' hours, in the overview's order.
    pub charts: Vec<CustomerSeries>,
    pub loads: Vec<LoadQuality>,
    pub loads_total: i64,
    /// Rejected lines by reason over every load.
    pub rejects_by_reason: Vec<(String, i64)>,
    pub freshness: Freshness,
    /// The relations in schema `reports` (names from analysts' files: escaped when shown).
    pub report_relations: Vec<String>,
    /// The newest restatements, and how many published rows were restated in all.
    pub restatements: Vec<Restatement>,
    pub restated_rows: i64,
}

/// One statement's rows of the three contract relations in the range, per customer and hour.
/// `$1`, `$2`: the range; `$3`: one customer or NULL for all.
const HOURS_IN_RANGE: &str = "
    with hours as (
        select customer_id, hour, page_loads, 0::bigint as clicks, 0::bigint as related_clicks
        from reports.page_loads
        where hour >= $1 and hour < $2 and ($3::bigint is null or customer_id = $3)
        union all
        select customer_id, hour, 0, clicks, 0
        from reports.clicks
        where hour >= $1 and hour < $2 and ($3::bigint is null or customer_id = $3)
        union all
        select customer_id, hour, 0, 0, related_clicks
        from reports.click_through_rate
        where hour >= $1 and hour < $2 and ($3::bigint is null or customer_id = $3)
    )";

/// Reads what the report shows. The session's time zone must be UTC (days are UTC days).
pub async fn read(client: &Client, request: &HtmlRequest) -> Result<ReportData> {
    let freshness = freshness(client).await?;
    let to = match request.to {
        Some(to) => to,
        None => default_end(freshness.newest_fired_at.unwrap_or_else(Utc::now)),
    };
    let from = request
        .from
        .unwrap_or(to - Duration::days(DEFAULT_RANGE_DAYS));
    let customer = request.customer_id;
    // A range asked for wider than the data (`--from 2000-01-01`) is shown from its first hour
    // with report rows to the end of its last: charts of what is there, not of empty years.
    let hours_with_rows = client
        .query_one(
            &format!("{HOURS_IN_RANGE} select min(hour), max(hour) from hours"),
            &[&from, &to, &customer],
        )
        .await
        .context("cannot read the range's first and last hours")?;
    let last: Option<DateTime<Utc>> = hours_with_rows.get(1);
    let (from, to) = match (hours_with_rows.get(0), last) {
        (Some(first), Some(last)) => (from.max(first), to.min(last + Duration::hours(1))),
        _ => (from, to),
    };
    let totals = client
        .query(
            &format!(
                "{HOURS_IN_RANGE}
                 select per_customer.customer_id, page_loads, clicks, related_clicks,
                     coalesce(users.users, 0),
                     (round(100 * related_clicks::numeric / nullif(page_loads, 0), 2))::text
                 from (
                     select customer_id, sum(page_loads)::bigint as page_loads,
                         sum(clicks)::bigint as clicks, sum(related_clicks)::bigint as related_clicks
                     from hours group by customer_id
                 ) as per_customer
                 left join reports.clicking_users($1, $2) as users
                     on users.customer_id = per_customer.customer_id
                 order by page_loads + clicks desc, per_customer.customer_id"
            ),
            &[&from, &to, &customer],
        )
        .await
        .context("cannot read the customers' totals from the reports")?;
    let daily = client
        .query(
            &format!(
                "{HOURS_IN_RANGE}
                 select customer_id, date_trunc('day', hour),
                     sum(related_clicks)::float8 / sum(page_loads)
                 from hours group by customer_id, date_trunc('day', hour)
                 having sum(page_loads) > 0
                 order by customer_id, 2"
            ),
            &[&from, &to, &customer],
        )
        .await
        .context("cannot read the customers' daily rates")?;
    let mut overview: Vec<CustomerTotals> = totals
        .iter()
        .map(|row| CustomerTotals {
            customer_id: row.get(0),
            page_loads: row.get(1),
            clicks: row.get(2),
            related_clicks: row.get(3),
            unique_clicking_users: row.get(4),
            rate_percent: row.get(5),
            daily_rates: Vec::new(),
        })
        .collect();
    for row in &daily {
        let customer_id: i64 = row.get(0);
        if let Some(totals) = overview.iter_mut().find(|t| t.customer_id == customer_id) {
            totals.daily_rates.push((row.get(1), row.get(2)));
        }
    }
    let top: Vec<i64> = overview
        .iter()
        .take(request.top)
        .map(|t| t.customer_id)
        .collect();
    let charts = hourly_series(client, &top, from, to).await?;
    let (loads, loads_total) = loads(client).await?;
    let rejects_by_reason = client
        .query(
            "select by_reason.key, sum(by_reason.value::bigint)::bigint
             from reports.load_quality, jsonb_each_text(load_quality.rejected_by_reason) as by_reason
             group by by_reason.key order by 2 desc, 1",
            &[],
        )
        .await
        .context("cannot read the rejects by reason from reports.load_quality")?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let report_relations = client
        .query(
            "select class.relname from pg_catalog.pg_class as class
             where class.relnamespace = 'reports'::regnamespace
                 and class.relkind in ('r', 'v', 'm', 'p')
             order by class.relname",
            &[],
        )
        .await?
        .iter()
        .map(|row| format!("reports.{}", row.get::<_, String>(0)))
        .collect();
    let (restatements, restated_rows) = restatements(client).await?;
    Ok(ReportData {
        generated_at: Utc::now(),
        from,
        to,
        overview,
        charts,
        loads,
        loads_total,
        rejects_by_reason,
        freshness,
        report_relations,
        restatements,
        restated_rows,
    })
}

async fn restatements(client: &Client) -> Result<(Vec<Restatement>, i64)> {
    let restated_rows: i64 = client
        .query_one(
            "select coalesce(sum(changed_rows), 0)::bigint from reports.restatements",
            &[],
        )
        .await
        .context("cannot read reports.restatements")?
        .get(0);
    // The changed columns in SQL: each key whose value differs, with both values as JSON text
    // (three arrays in the same order).
    let rows = client
        .query(
            "select refreshed_at, relation, customer_id, hour, changed_rows, cause,
                 coalesce(changed.columns, '{}'), coalesce(changed.old, '{}'), coalesce(changed.new, '{}')
             from reports.restatements
             left join lateral (
                 select array_agg(old_value.key order by old_value.key) as columns,
                     array_agg(old_value.value::text order by old_value.key) as old,
                     array_agg(coalesce((new_values -> old_value.key)::text, 'removed')
                               order by old_value.key) as new
                 from jsonb_each(old_values) as old_value
                 where new_values is null or new_values -> old_value.key is distinct from old_value.value
             ) as changed on true
             order by restatement_id desc limit $1",
            &[&LISTED_RESTATEMENTS],
        )
        .await
        .context("cannot read reports.restatements")?;
    let restatements = rows
        .iter()
        .map(|row| {
            let (columns, old, new): (Vec<String>, Vec<String>, Vec<String>) =
                (row.get(6), row.get(7), row.get(8));
            Restatement {
                refreshed_at: row.get(0),
                relation: row.get(1),
                customer_id: row.get(2),
                hour: row.get(3),
                changed_rows: row.get(4),
                cause: row.get(5),
                changes: columns
                    .into_iter()
                    .zip(old)
                    .zip(new)
                    .map(|((column, old), new)| (column, old, new))
                    .collect(),
            }
        })
        .collect();
    Ok((restatements, restated_rows))
}

/// The end of the default range: the start of the hour after `newest`.
fn default_end(newest: DateTime<Utc>) -> DateTime<Utc> {
    newest.duration_trunc(Duration::hours(1)).unwrap_or(newest) + Duration::hours(1)
}

async fn freshness(client: &Client) -> Result<Freshness> {
    let row = client
        .query_opt(
            "select newest_fired_at, last_run_at, last_refresh_at, stale_keys,
                 click_through_window_seconds, source_time_zone,
                 coalesce(accepted_event_types, '{}')
             from reports.freshness",
            &[],
        )
        .await
        .context("cannot read reports.freshness")?;
    Ok(match row {
        None => Freshness::default(),
        Some(row) => Freshness {
            newest_fired_at: row.get(0),
            last_run_at: row.get(1),
            last_refresh_at: row.get(2),
            stale_keys: row.get(3),
            click_through_window_seconds: row.get(4),
            source_time_zone: row.get(5),
            accepted_event_types: row.get(6),
        },
    })
}

/// Every hour of the range for each of `customers`, zero where the reports have no row.
async fn hourly_series(
    client: &Client,
    customers: &[i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<CustomerSeries>> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!(
                "{HOURS_IN_RANGE}
                 select customer_id, hour, sum(page_loads)::bigint, sum(clicks)::bigint,
                     sum(related_clicks)::bigint
                 from hours where customer_id = any($4)
                 group by customer_id, hour order by customer_id, hour"
            ),
            &[&from, &to, &None::<i64>, &customers],
        )
        .await
        .context("cannot read the top customers' hours")?;
    let first_hour = from.duration_trunc(Duration::hours(1)).unwrap_or(from);
    let hour_count = ((to - first_hour).num_hours()).max(0) as usize
        + usize::from((to - first_hour).num_seconds() % 3600 != 0);
    let mut series: Vec<CustomerSeries> = customers
        .iter()
        .map(|&customer_id| CustomerSeries {
            customer_id,
            hours: (0..hour_count)
                .map(|i| Point {
                    at: first_hour + Duration::hours(i as i64),
                    page_loads: 0,
                    clicks: 0,
                    related_clicks: 0,
                })
                .collect(),
        })
        .collect();
    for row in &rows {
        let customer_id: i64 = row.get(0);
        let hour: DateTime<Utc> = row.get(1);
        let index = (hour - first_hour).num_hours();
        let Some(customer) = series.iter_mut().find(|s| s.customer_id == customer_id) else {
            continue;
        };
        if let Some(point) = usize::try_from(index)
            .ok()
            .and_then(|index| customer.hours.get_mut(index))
        {
            point.page_loads = row.get(2);
            point.clicks = row.get(3);
            point.related_clicks = row.get(4);
        }
    }
    Ok(series)
}

async fn loads(client: &Client) -> Result<(Vec<LoadQuality>, i64)> {
    let rows = client
        .query(
            "select load_id, path, status, started_at, lines, loaded, duplicates, rejected, blank,
                 count(*) over ()
             from reports.load_quality order by load_id desc limit $1",
            &[&LISTED_LOADS],
        )
        .await
        .context("cannot read reports.load_quality")?;
    let total = rows.first().map_or(0, |row| row.get(9));
    let loads = rows
        .iter()
        .map(|row| LoadQuality {
            load_id: row.get(0),
            path: row.get(1),
            status: row.get(2),
            started_at: row.get(3),
            lines: row.get(4),
            loaded: row.get(5),
            duplicates: row.get(6),
            rejected: row.get(7),
            blank: row.get(8),
        })
        .collect();
    Ok((loads, total))
}

/// Sums hourly points into UTC days (for ranges with more hours than a chart shows well).
pub fn per_day(hours: &[Point]) -> Vec<Point> {
    let mut days: Vec<Point> = Vec::new();
    for point in hours {
        let day = point
            .at
            .duration_trunc(Duration::days(1))
            .unwrap_or(point.at);
        match days.last_mut() {
            Some(last) if last.at == day => {
                last.page_loads += point.page_loads;
                last.clicks += point.clicks;
                last.related_clicks += point.related_clicks;
            }
            _ => days.push(Point { at: day, ..*point }),
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2022, 1, day, hour, 0, 0).unwrap()
    }

    #[test]
    fn the_default_range_ends_at_the_hour_after_the_newest_event() {
        let newest = Utc.with_ymd_and_hms(2022, 1, 3, 23, 59, 1).unwrap();
        assert_eq!(default_end(newest), at(4, 0));
        assert_eq!(default_end(at(3, 5)), at(3, 6));
    }

    #[test]
    fn hours_sum_into_utc_days_and_rates_need_page_loads() {
        let point = |day, hour, page_loads, clicks, related_clicks| Point {
            at: at(day, hour),
            page_loads,
            clicks,
            related_clicks,
        };
        let days = per_day(&[
            point(1, 22, 4, 2, 1),
            point(1, 23, 6, 1, 1),
            point(2, 0, 0, 3, 0),
        ]);
        assert_eq!(days, [point(1, 0, 10, 3, 2), point(2, 0, 0, 3, 0)]);
        assert_eq!(days[0].rate(), Some(0.2));
        assert_eq!(days[1].rate(), None);
    }
}
