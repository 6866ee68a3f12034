//! Whole-table comparison: query results as sorted text rows, the four reports, expected rows.

use tokio_postgres::Client;

use super::database::TestDatabase;

/// All rows of a query as text lines `a|b|c` (NULL as `∅`), sorted, for whole-table comparison.
pub async fn rows(client: &Client, sql: &str) -> Vec<String> {
    let wrapped = format!(
        "select array_to_string(array(select coalesce(value, '∅') from json_each_text(row_to_json(t)) as cell(key, value)), '|') from ({sql}) as t"
    );
    let mut rows: Vec<String> = client
        .query(&wrapped, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| row.get(0))
        .collect();
    rows.sort();
    rows
}

/// The four contract reports as sorted text rows `report|customer|hour|measures…`, hours in UTC.
pub async fn report_rows(client: &Client) -> Vec<String> {
    client.batch_execute("set time zone 'UTC'").await.unwrap();
    let mut all = Vec::new();
    for (relation, columns) in [
        ("page_loads", "page_loads"),
        ("clicks", "clicks"),
        ("unique_user_clicks", "unique_user_clicks"),
        (
            "click_through_rate",
            "page_loads, related_clicks, round(click_through_rate, 6)",
        ),
    ] {
        for row in rows(
            client,
            &format!("select '{relation}' as report, customer_id, to_char(hour, 'YYYY-MM-DD HH24:MI') as hour, {columns} from reports.{relation}"),
        )
        .await
        {
            all.push(row);
        }
    }
    all.sort();
    all
}

/// The four reports of a new database after `commands` (each `campaign-elt ARGS`, expecting
/// success): what a database that got there another way must show.
pub async fn reports_after(commands: &[&[&str]]) -> Vec<String> {
    let db = TestDatabase::new().await;
    for args in commands {
        db.run_expecting(0, args);
    }
    report_rows(&db.client().await).await
}

/// `None` when the two sets of rows are equal, else the rows missing from `actual` and the rows
/// it has that `expected` has not.
pub fn rows_diff<Row: AsRef<str>>(actual: &[String], expected: &[Row]) -> Option<String> {
    let mut expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
    expected.sort_unstable();
    let mut actual: Vec<&str> = actual.iter().map(String::as_str).collect();
    actual.sort_unstable();
    if actual == expected {
        return None;
    }
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|row| !actual.contains(row))
        .collect();
    let unexpected: Vec<&str> = actual
        .iter()
        .copied()
        .filter(|row| !expected.contains(row))
        .collect();
    Some(format!(
        "rows differ\n  missing:    {missing:#?}\n  unexpected: {unexpected:#?}"
    ))
}

/// Compares whole tables with a readable diff.
pub fn assert_rows_eq<Row: AsRef<str>>(actual: &[String], expected: &[Row]) {
    if let Some(diff) = rows_diff(actual, expected) {
        panic!("{diff}\n  actual:     {actual:#?}");
    }
}

/// The four reports after `tests/fixtures/first_night.jsonl` (with `--max-line-bytes 2048`).
pub const FIRST_NIGHT_REPORTS: &[&str] = &[
    "page_loads|1|2022-01-01 00:00|1",
    "page_loads|1|2022-01-01 01:00|3",
    "page_loads|2|2022-01-01 01:00|1",
    "page_loads|3|2021-12-31 23:00|2",
    "page_loads|3|2022-01-01 00:00|1",
    "clicks|1|2022-01-01 01:00|5",
    "clicks|2|2022-01-01 02:00|1",
    "clicks|4|2022-01-01 05:00|1",
    "clicks|5|2022-01-01 06:00|1",
    "unique_user_clicks|1|2022-01-01 01:00|4",
    "unique_user_clicks|2|2022-01-01 02:00|1",
    "unique_user_clicks|4|2022-01-01 05:00|1",
    "unique_user_clicks|5|2022-01-01 06:00|1",
    "click_through_rate|1|2022-01-01 00:00|1|0|0.000000",
    // a1 (same id, page load in the previous hour), b2 (window, 240 s), b3 (window, exactly
    // 300 s) are related; c2 (301 s) and d1 (same id, other user) are not.
    "click_through_rate|1|2022-01-01 01:00|3|3|1.000000",
    "click_through_rate|2|2022-01-01 01:00|1|0|0.000000",
    "click_through_rate|2|2022-01-01 02:00|0|1|∅",
    "click_through_rate|3|2021-12-31 23:00|2|0|0.000000",
    "click_through_rate|3|2022-01-01 00:00|1|0|0.000000",
    "click_through_rate|4|2022-01-01 05:00|0|0|∅",
    "click_through_rate|5|2022-01-01 06:00|0|0|∅",
];

/// The four reports after `first_night.jsonl` and then `second_night.jsonl`: a1 is a duplicate
/// from the first night; k1's page load arrives late, in the hour before its click (that hour is
/// recomputed); m1 arrives after its click m2, within the window; n1 is a new page load.
pub fn second_night_reports() -> Vec<&'static str> {
    let mut expected: Vec<&str> = FIRST_NIGHT_REPORTS
        .iter()
        .copied()
        .filter(|row| {
            !row.starts_with("page_loads|1|2022-01-01 01:00")
                && !row.starts_with("click_through_rate|1|2022-01-01 01:00")
                && !row.starts_with("click_through_rate|4|")
                && !row.starts_with("click_through_rate|5|")
        })
        .collect();
    expected.extend([
        "page_loads|1|2022-01-01 01:00|4",
        "click_through_rate|1|2022-01-01 01:00|4|3|0.750000",
        "page_loads|4|2022-01-01 04:00|1",
        "click_through_rate|4|2022-01-01 04:00|1|0|0.000000",
        "click_through_rate|4|2022-01-01 05:00|0|1|∅",
        "page_loads|5|2022-01-01 06:00|1",
        "click_through_rate|5|2022-01-01 06:00|1|1|1.000000",
    ]);
    expected
}
