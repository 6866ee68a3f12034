//! The HTML document: one self-contained file (inline CSS and SVG; no script, font, style sheet
//! or image from anywhere) with the overview, the top customers' charts and the data quality.

use std::fmt::Write;

use chrono::{DateTime, Duration, Timelike, Utc};

use super::data::{per_day, CustomerSeries, Point, ReportData};
use super::svg::{escape, sparkline, LineChart, Series};

/// A chart shows hours up to this many points; a longer range is shown per UTC day.
pub const MAX_HOURLY_POINTS: usize = 400;

const PAGE_LOADS: &str = "#1b6ca8";
const CLICKS: &str = "#d95f02";
const HOURLY_RATE: &str = "#1b9e77";
const DAILY_RATE: &str = "#6a51a3";

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 24px auto;
  max-width: 1000px; color: #1d2733; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #d5dbe3; }
.meta { color: #4a5868; }
table { border-collapse: collapse; margin: 0.6em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e3e8ee; text-align: right; vertical-align: middle; }
th { background: #f3f5f8; } td.text, th.text { text-align: left; }
.chart { display: block; margin: 0.4em 0 1.2em; max-width: 100%; height: auto; }
.chart-title { font-size: 14px; font-weight: 600; fill: #1d2733; }
.legend, .tick { font-size: 12px; fill: #4a5868; } .axis-label { font-size: 12px; fill: #1d2733; }
.grid { stroke: #e3e8ee; stroke-width: 1; } .axis { stroke: #4a5868; stroke-width: 1; }
.note { color: #4a5868; font-size: 0.9em; }
";

fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn utc_or_never(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "never".to_owned(), utc)
}

/// Thousands separated by a thin space, as the tables and axes show counts.
fn count(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('\u{2009}');
        }
        grouped.push(digit);
    }
    if value < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// The whole document.
pub fn render(data: &ReportData) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let title = format!("Referral campaigns, {} to {}", utc(data.from), utc(data.to));
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = write!(
        html,
        "<h1>{}</h1><p class=\"meta\">Hours from {} up to {} (times in UTC). Generated {} by campaign-elt {}; every number is read from the report relations and the load ledger.</p>",
        escape(&title),
        utc(data.from),
        utc(data.to),
        utc(data.generated_at),
        env!("CARGO_PKG_VERSION")
    );
    overview(&mut html, data);
    for series in &data.charts {
        customer_charts(&mut html, series);
    }
    quality(&mut html, data);
    html.push_str("</body></html>\n");
    html
}

fn overview(html: &mut String, data: &ReportData) {
    let _ = write!(
        html,
        "<h2 id=\"overview\">Overview</h2><p class=\"note\">{} customer(s) with rows in the range, by volume (page loads + clicks); the first {} have charts below. Rate = related clicks / page loads over the range; unique clicking users are distinct over the range, not a sum of hours. The small chart is the click-through rate of each UTC day (0 to the highest day's rate of all customers).</p>",
        data.overview.len(),
        data.charts.len()
    );
    if data.overview.is_empty() {
        html.push_str("<p>No report rows in this range.</p>");
        return;
    }
    let days = day_starts(data.from, data.to);
    let top_rate = data
        .overview
        .iter()
        .flat_map(|c| c.daily_rates.iter().map(|(_, rate)| *rate))
        .fold(0.0_f64, f64::max);
    html.push_str(
        "<table id=\"overview-table\"><thead><tr><th class=\"text\">customer</th><th>page loads</th><th>clicks</th><th>related clicks</th><th>unique clicking users</th><th>rate</th><th class=\"text\">daily rate</th></tr></thead><tbody>",
    );
    for customer in &data.overview {
        let values: Vec<Option<f64>> = days
            .iter()
            .map(|day| {
                customer
                    .daily_rates
                    .iter()
                    .find(|(at, _)| at == day)
                    .map(|(_, rate)| *rate)
            })
            .collect();
        let spark = sparkline(
            &format!(
                "Customer {}: click-through rate per UTC day",
                customer.customer_id
            ),
            &values,
            top_rate,
            DAILY_RATE,
        );
        let _ = write!(
            html,
            "<tr data-customer=\"{id}\"><td class=\"text\">{id}</td><td data-value=\"{}\">{}</td><td data-value=\"{}\">{}</td><td data-value=\"{}\">{}</td><td data-value=\"{}\">{}</td><td data-value=\"{}\">{}</td><td class=\"text\">{spark}</td></tr>",
            customer.page_loads,
            count(customer.page_loads),
            customer.clicks,
            count(customer.clicks),
            customer.related_clicks,
            count(customer.related_clicks),
            customer.unique_clicking_users,
            count(customer.unique_clicking_users),
            escape(customer.rate_percent.as_deref().unwrap_or("")),
            customer
                .rate_percent
                .as_deref()
                .map_or_else(|| "–".to_owned(), |rate| format!("{} %", escape(rate))),
            id = customer.customer_id,
        );
    }
    html.push_str("</tbody></table>");
}

/// The start of every UTC day the range touches.
fn day_starts(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut day = from
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let mut days = Vec::new();
    while day < to {
        days.push(day);
        day += Duration::days(1);
    }
    days
}

fn customer_charts(html: &mut String, series: &CustomerSeries) {
    let id = series.customer_id;
    let days = per_day(&series.hours);
    let per_day_points = series.hours.len() > MAX_HOURLY_POINTS;
    let (points, unit, x_label) = if per_day_points {
        (days.clone(), "per UTC day", "UTC day")
    } else {
        (series.hours.clone(), "per hour", "hour (UTC)")
    };
    let _ = write!(html, "<h2 id=\"customer-{id}\">Customer {id}</h2>");
    if per_day_points {
        let _ = write!(
            html,
            "<p class=\"note\">The range has {} hours: shown per UTC day.</p>",
            series.hours.len()
        );
    }
    let ticks = day_ticks(&points);
    let counts = LineChart {
        title: format!("Customer {id}: page loads and clicks {unit}"),
        description: format!(
            "Page loads and clicks of customer {id} {unit}, {} points from {} to {}; {} page loads and {} clicks in all.",
            points.len(),
            points.first().map_or_else(String::new, |p| utc(p.at)),
            points.last().map_or_else(String::new, |p| utc(p.at)),
            points.iter().map(|p| p.page_loads).sum::<i64>(),
            points.iter().map(|p| p.clicks).sum::<i64>()
        ),
        y_label: if per_day_points { "events per day" } else { "events per hour" },
        x_label,
        x_ticks: ticks.clone(),
        y_format: |value| count(value.round() as i64),
        series: vec![
            Series {
                name: "page loads",
                colour: PAGE_LOADS,
                values: points.iter().map(|p| Some(p.page_loads as f64)).collect(),
            },
            Series {
                name: "clicks",
                colour: CLICKS,
                values: points.iter().map(|p| Some(p.clicks as f64)).collect(),
            },
        ],
    };
    html.push_str(&counts.render());
    // The daily rate drawn as steps across each day's points, so both lines share the x axis.
    let daily_rate_at = |point: &Point| {
        let day = point.at.date_naive();
        days.iter()
            .find(|d| d.at.date_naive() == day)
            .and_then(Point::rate)
    };
    let mut rate_series = vec![Series {
        name: "rate per UTC day",
        colour: DAILY_RATE,
        values: points
            .iter()
            .map(|p| daily_rate_at(p).map(|r| r * 100.0))
            .collect(),
    }];
    if !per_day_points {
        rate_series.insert(
            0,
            Series {
                name: "rate per hour",
                colour: HOURLY_RATE,
                values: points.iter().map(|p| p.rate().map(|r| r * 100.0)).collect(),
            },
        );
    }
    let rates = LineChart {
        title: format!("Customer {id}: click-through rate {unit} and per UTC day"),
        description: format!(
            "Related clicks divided by page loads for customer {id}, in percent, {unit} and per UTC day; gaps are {} without page loads.",
            if per_day_points { "days" } else { "hours" }
        ),
        y_label: "click-through rate (%)",
        x_label,
        x_ticks: ticks,
        y_format: |value| format!("{value:.1} %"),
        series: rate_series,
    };
    html.push_str(&rates.render());
}

/// A label at the first point of each UTC day, at most about 14 of them (the first point when no
/// day starts in the range).
fn day_ticks(points: &[Point]) -> Vec<(usize, String)> {
    let mut starts: Vec<usize> = points
        .iter()
        .enumerate()
        .filter(|(_, point)| point.at.hour() == 0 && point.at.minute() == 0)
        .map(|(index, _)| index)
        .collect();
    if starts.is_empty() && !points.is_empty() {
        starts.push(0);
    }
    let every = starts.len().div_ceil(14).max(1);
    starts
        .iter()
        .step_by(every)
        .map(|&index| (index, points[index].at.format("%m-%d").to_string()))
        .collect()
}

fn quality(html: &mut String, data: &ReportData) {
    let freshness = &data.freshness;
    html.push_str("<h2 id=\"data-quality\">Data quality</h2>");
    let _ = write!(
        html,
        "<table id=\"freshness\"><tbody>\
         <tr><th class=\"text\">newest event (fired_at)</th><td class=\"text\">{}</td></tr>\
         <tr><th class=\"text\">last successful run</th><td class=\"text\">{}</td></tr>\
         <tr><th class=\"text\">last refresh</th><td class=\"text\">{}</td></tr>\
         <tr><th class=\"text\">stale keys waiting for a refresh</th><td class=\"text\">{}</td></tr>\
         <tr><th class=\"text\">attribution window</th><td class=\"text\">{}</td></tr>\
         <tr><th class=\"text\">time zone of naive timestamps</th><td class=\"text\">{}</td></tr>\
         <tr><th class=\"text\">accepted event types</th><td class=\"text\">{}</td></tr>\
         </tbody></table>",
        utc_or_never(freshness.newest_fired_at),
        utc_or_never(freshness.last_run_at),
        utc_or_never(freshness.last_refresh_at),
        count(freshness.stale_keys),
        freshness
            .click_through_window_seconds
            .map_or_else(|| "not set".to_owned(), |s| format!("{s} s")),
        escape(freshness.source_time_zone.as_deref().unwrap_or("not set")),
        escape(&freshness.accepted_event_types.join(", "))
    );
    let _ = write!(
        html,
        "<h3>Lines by outcome, per load</h3><p class=\"note\">The newest {} of {} load(s).</p>",
        data.loads.len(),
        data.loads_total
    );
    html.push_str(
        "<table id=\"loads\"><thead><tr><th>load</th><th class=\"text\">file</th><th class=\"text\">status</th><th class=\"text\">started</th><th>lines</th><th>loaded</th><th>duplicates</th><th>rejected</th><th>blank</th></tr></thead><tbody>",
    );
    for load in &data.loads {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            load.load_id,
            escape(&load.path),
            escape(&load.status),
            utc(load.started_at),
            count(load.lines),
            count(load.loaded),
            count(load.duplicates),
            count(load.rejected),
            count(load.blank)
        );
    }
    html.push_str("</tbody></table><h3>Rejected lines by reason</h3>");
    if data.rejects_by_reason.is_empty() {
        html.push_str("<p>No line was rejected.</p>");
    } else {
        html.push_str("<table id=\"rejects\"><thead><tr><th class=\"text\">reason</th><th>lines</th></tr></thead><tbody>");
        for (reason, lines) in &data.rejects_by_reason {
            let _ = write!(
                html,
                "<tr><td class=\"text\">{}</td><td>{}</td></tr>",
                escape(reason),
                count(*lines)
            );
        }
        html.push_str("</tbody></table>");
    }
    restatements(html, data);
    html.push_str("<h3>Report relations</h3><p>");
    let names: Vec<String> = data.report_relations.iter().map(|n| escape(n)).collect();
    html.push_str(&names.join(", "));
    html.push_str("</p>");
}

/// The latest restatements, one sentence each: "clicks for customer 344 at 2022-01-03 23:00 UTC
/// changed 41 -> 43 in the refresh of 2022-01-05 08:00 UTC (late lines)".
fn restatements(html: &mut String, data: &ReportData) {
    let _ = write!(
        html,
        "<h3>Restatements</h3><p class=\"note\">Published report rows that a later refresh changed or removed: {} in all; the newest {}.</p>",
        count(data.restated_rows),
        data.restatements.len()
    );
    if data.restatements.is_empty() {
        html.push_str("<p>No published row has changed.</p>");
        return;
    }
    html.push_str("<ul id=\"restatements\">");
    for restatement in &data.restatements {
        let when = utc_or_never(restatement.refreshed_at);
        let cause = escape(&restatement.cause);
        let relation = escape(&restatement.relation);
        let sentence = match (restatement.customer_id, restatement.hour) {
            (Some(customer), Some(hour)) => {
                let changes: Vec<String> = restatement
                    .changes
                    .iter()
                    .map(|(column, old, new)| {
                        format!("{} {} -&gt; {}", escape(column), escape(old), escape(new))
                    })
                    .collect();
                format!(
                    "{relation}: {} for customer {customer} at {} in the refresh of {when} ({cause})",
                    if changes.is_empty() { "changed".to_owned() } else { changes.join(", ") },
                    utc(hour)
                )
            }
            _ => format!(
                "{relation}: {} rows changed in the refresh of {when} ({cause})",
                count(restatement.changed_rows)
            ),
        };
        let _ = write!(html, "<li>{sentence}</li>");
    }
    html.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::html::data::{CustomerTotals, Freshness, LoadQuality};
    use chrono::TimeZone;

    fn sample(hours: usize) -> ReportData {
        let from = Utc.with_ymd_and_hms(2022, 1, 1, 0, 0, 0).unwrap();
        let to = from + Duration::hours(hours as i64);
        let hostile = r#"</script><script>alert("x")</script>'"#;
        ReportData {
            generated_at: to,
            from,
            to,
            overview: vec![CustomerTotals {
                customer_id: 7,
                page_loads: 1234,
                clicks: 56,
                related_clicks: 40,
                unique_clicking_users: 9,
                rate_percent: Some("3.24".into()),
                daily_rates: vec![(from, 0.0324)],
            }],
            charts: vec![CustomerSeries {
                customer_id: 7,
                hours: (0..hours)
                    .map(|i| Point {
                        at: from + Duration::hours(i as i64),
                        page_loads: (i % 5) as i64,
                        clicks: (i % 3) as i64,
                        related_clicks: (i % 2) as i64,
                    })
                    .collect(),
            }],
            loads: vec![LoadQuality {
                load_id: 1,
                path: format!("/data/{hostile}.jsonl"),
                status: "loaded".into(),
                started_at: from,
                lines: 10,
                loaded: 8,
                duplicates: 1,
                rejected: 1,
                blank: 0,
            }],
            loads_total: 1,
            rejects_by_reason: vec![("invalid_json".into(), 1)],
            freshness: Freshness {
                source_time_zone: Some(hostile.into()),
                ..Freshness::default()
            },
            report_relations: vec![format!("reports.{hostile}")],
            restatements: vec![crate::report::html::data::Restatement {
                refreshed_at: Some(to),
                relation: "reports.clicks".into(),
                customer_id: Some(344),
                hour: Some(from),
                changes: vec![("clicks".into(), "41".into(), "43".into())],
                changed_rows: 1,
                cause: "late lines".into(),
            }],
            restated_rows: 1,
        }
    }

    #[test]
    fn the_document_is_self_contained_and_escapes_what_comes_from_the_database_or_a_path() {
        let html = render(&sample(168));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            !html.contains("<script"),
            "no script at all, and none injected"
        );
        for external in ["src=", "href=", "@import", "url(", "<link"] {
            assert!(!html.contains(external), "{external} in the report");
        }
        assert!(html.contains("&lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)"));
        assert_eq!(
            html.matches("<svg").count(),
            3,
            "a sparkline and two charts"
        );
        assert_eq!(html.matches("<desc>").count(), 2);
        assert_eq!(
            html.matches("<title>").count(),
            4,
            "the page's and each svg's"
        );
        assert!(html.contains("1\u{2009}234"));
        assert!(html.contains("3.24 %"));
        assert!(html.contains("hour (UTC)"));
        assert!(html.contains(
            "reports.clicks: clicks 41 -&gt; 43 for customer 344 at 2022-01-01 00:00 UTC in the refresh of 2022-01-08 00:00 UTC (late lines)"
        ));
    }

    #[test]
    fn a_long_range_is_charted_per_day_and_says_so() {
        let html = render(&sample(90 * 24));
        assert!(html.contains("The range has 2160 hours: shown per UTC day."));
        assert!(html.contains("page loads and clicks per UTC day"));
        assert!(!html.contains("rate per hour"));
        let hourly = render(&sample(168));
        assert!(hourly.contains("rate per hour") && hourly.contains("rate per UTC day"));
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1\u{2009}000");
        assert_eq!(count(-1234567), "-1\u{2009}234\u{2009}567");
    }
}
