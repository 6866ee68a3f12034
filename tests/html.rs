//! The HTML report (README, "The HTML report"): `report --format html --output FILE` writes one
//! self-contained file whose every number is the reports' and the ledger's — checked here
//! against SQL written in the test, rendered as the analyst role, with hostile names escaped, and
//! opened in a real browser (headless Chromium: a screenshot, and the DOM it built).

mod common;

use std::path::Path;

use common::{
    assert_exit, dump_dom, generate, rows, run_expecting_at, screenshot, stderr, stdout_json,
    RolesUnderTest, TestDatabase,
};

/// A realistic sample of 8 customers over about two days, loaded and refreshed.
async fn loaded_sample(db: &TestDatabase, dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    generate(
        &path,
        &["--lines", "30000", "--seed", "3", "--mix", "realistic"],
    );
    let path = path.to_str().unwrap().to_owned();
    db.run_expecting(0, &["run", "--quiet", &path]);
    path
}

/// The overview's cells: per row, the customer and its `data-value`s (page loads, clicks,
/// related clicks, unique clicking users, rate in percent).
fn overview_cells(html: &str) -> Vec<String> {
    html.split("<tr data-customer=\"")
        .skip(1)
        .map(|row| {
            let row = &row[..row.find("</tr>").unwrap()];
            let customer = &row[..row.find('"').unwrap()];
            let values: Vec<&str> = row
                .split("data-value=\"")
                .skip(1)
                .map(|cell| &cell[..cell.find('"').unwrap()])
                .collect();
            format!("{customer}|{}", values.join("|"))
        })
        .collect()
}

/// The same cells, computed in SQL from the reports and the events over `[from, to)`.
async fn overview_in_sql(client: &tokio_postgres::Client, from: &str, to: &str) -> Vec<String> {
    let sql = format!(
        "with page_loads as (
             select customer_id, sum(page_loads) as page_loads from reports.page_loads
             where hour >= '{from}' and hour < '{to}' group by customer_id),
         clicks as (
             select customer_id, sum(clicks) as clicks from reports.clicks
             where hour >= '{from}' and hour < '{to}' group by customer_id),
         related as (
             select customer_id, sum(related_clicks) as related_clicks from reports.click_through_rate
             where hour >= '{from}' and hour < '{to}' group by customer_id),
         users as (
             select customer_id, count(distinct user_id) as users from elt.events
             where event_type = 'ReferralRecommendClick'
                 and fired_at >= '{from}' and fired_at < '{to}' group by customer_id),
         customers as (
             select customer_id from page_loads union select customer_id from clicks
             union select customer_id from related)
         select customers.customer_id || '|' || coalesce(page_loads, 0) || '|' || coalesce(clicks, 0)
             || '|' || coalesce(related_clicks, 0) || '|' || coalesce(users, 0) || '|'
             || coalesce(round(100.0 * coalesce(related_clicks, 0) / nullif(page_loads, 0), 2)::text, '')
         from customers
         left join page_loads using (customer_id) left join clicks using (customer_id)
         left join related using (customer_id) left join users using (customer_id)
         order by coalesce(page_loads, 0) + coalesce(clicks, 0) desc, customers.customer_id"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn the_report_rendered_as_the_analyst_shows_the_numbers_sql_computes() {
    let roles = RolesUnderTest::new().await;
    let dir = tempfile::tempdir().unwrap();
    loaded_sample(&roles.db, dir.path(), "sample.jsonl").await;
    roles
        .db
        .run_expecting(0, &["setup-roles", "--role-prefix", &roles.prefix]);
    let analyst = roles.login("analyst").await;
    let html_path = dir.path().join("report.html");
    let output = run_expecting_at(
        &analyst,
        0,
        &[
            "report",
            "--format",
            "html",
            "--top",
            "3",
            "--json",
            "--output",
            html_path.to_str().unwrap(),
        ],
    );
    let summary = stdout_json(&output);
    assert!(stderr(&output).contains("wrote the HTML report to"));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_eq!(summary["bytes"], html.len());
    let (from, to) = (
        summary["from"].as_str().unwrap(),
        summary["to"].as_str().unwrap(),
    );
    let admin = roles.db.client().await;
    // The default range: the 7 days up to the hour after the newest event, from the first
    // hour with report rows where that is later (the sample spans about two days).
    let range = rows(
        &admin,
        &format!(
            "select (timestamptz '{to}' = date_trunc('hour', max(fired_at)) + interval '1 hour')::text
                 || ' ' || (timestamptz '{from}' = greatest(timestamptz '{to}' - interval '7 days',
                     (select min(hour) from reports.click_through_rate)))::text
                 || ' ' || (timestamptz '{to}' - timestamptz '{from}' < interval '7 days')::text
             from elt.events"
        ),
    )
    .await;
    assert_eq!(range, ["true true true"]);

    let expected = overview_in_sql(&admin, from, to).await;
    assert_eq!(expected.len(), 8, "{expected:?}");
    assert_eq!(overview_cells(&html), expected);
    assert_eq!(summary["customers"], 8);
    assert_eq!(summary["charted_customers"], 3);

    // Each charted customer (the first three by volume) has its two charts, whose description
    // states the totals of its points.
    assert_eq!(
        html.matches("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\"")
            .count(),
        6
    );
    let hours = rows(
        &admin,
        &format!(
            "select (extract(epoch from timestamptz '{to}' - timestamptz '{from}') / 3600)::bigint"
        ),
    )
    .await;
    let points = format!("{} points", hours[0]);
    for line in &expected[..3] {
        let cells: Vec<&str> = line.split('|').collect();
        let tail = format!("; {} page loads and {} clicks in all.", cells[1], cells[2]);
        let chart = &html[html
            .find(&format!("<h2 id=\"customer-{}\">", cells[0]))
            .unwrap()..];
        let desc = &chart[chart.find("<desc>").unwrap()..chart.find("</desc>").unwrap()];
        assert!(desc.ends_with(&tail), "{desc} vs {tail}");
        assert!(desc.contains(&points), "{desc} vs {points}");
    }
    // Lines by outcome and rejects by reason are the ledger's.
    let ledger = rows(
        &admin,
        "select lines || ' ' || loaded || ' ' || duplicates || ' ' || rejected || ' ' || blank from elt.loads",
    )
    .await;
    let loads_table = &html[html.find("<table id=\"loads\">").unwrap()..];
    let loads_table = &loads_table[..loads_table.find("</table>").unwrap()];
    let numbers: Vec<String> = ledger[0]
        .split(' ')
        .map(|n| n.parse::<i64>().unwrap())
        .map(|n| {
            let digits = n.to_string();
            let mut grouped = String::new();
            for (i, d) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    grouped.push('\u{2009}');
                }
                grouped.push(d);
            }
            format!("<td>{grouped}</td>")
        })
        .collect();
    assert!(
        loads_table.contains(&numbers.concat()),
        "{loads_table} lacks {numbers:?}"
    );
    let reasons = rows(&admin, "select reason from elt.rejects group by reason").await;
    for reason in reasons {
        assert!(
            html.contains(&format!("<td class=\"text\">{reason}</td>")),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn names_from_paths_and_analysts_files_are_escaped_and_the_range_narrows() {
    let db = TestDatabase::new().await;
    let dir = tempfile::tempdir().unwrap();
    let hostile = r#"</script><script>alert("x")</script>'"#;
    // A path whose directories and name spell it (a name cannot hold its `/`).
    let nested = dir.path().join(r#"</script><script>alert("x")<"#);
    std::fs::create_dir_all(&nested).unwrap();
    let path = loaded_sample(&db, &nested, "script>'.jsonl").await;
    assert!(path.contains(hostile), "{path}");
    db.client()
        .await
        .batch_execute(&format!(
            "create table reports.\"{}\" (customer_id bigint)",
            hostile.replace('"', "\"\"")
        ))
        .await
        .unwrap();
    let html_path = dir.path().join("narrow.html");
    let output = db.run_expecting(
        0,
        &[
            "report",
            "--format",
            "html",
            "--json",
            "--customer-id",
            "12",
            "--from",
            "2022-01-01 12:00:00",
            "--to",
            "2022-01-02",
            "--output",
            html_path.to_str().unwrap(),
        ],
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["from"], "2022-01-01T12:00:00+00:00");
    assert_eq!(summary["to"], "2022-01-02T00:00:00+00:00");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(!html.contains("<script"), "nothing from a name runs");
    let escaped = "&lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;";
    assert!(
        html.contains(&format!("{escaped}.jsonl")),
        "the path, escaped: {}",
        &path
    );
    assert!(
        html.contains(&format!("reports.{escaped}")),
        "the relation, escaped"
    );
    let cells = overview_cells(&html);
    assert_eq!(cells.len(), 1);
    assert!(cells[0].starts_with("12|"), "{cells:?}");
    let expected = overview_in_sql(
        &db.client().await,
        "2022-01-01T12:00:00+00:00",
        "2022-01-02T00:00:00+00:00",
    )
    .await;
    assert!(expected.contains(&cells[0]), "{cells:?} in {expected:?}");
    assert!(html.contains("12 points"), "12 hours charted");
}

#[tokio::test]
async fn html_needs_an_output_file_and_no_relation_name() {
    let db = TestDatabase::new().await;
    for (args, message) in [
        (vec!["report"], "name the report relation to print"),
        (
            vec!["report", "--format", "html"],
            "--format html needs --output FILE",
        ),
        (
            vec!["report", "clicks", "--format", "html", "--output", "x.html"],
            "leave out NAME",
        ),
        (
            vec!["report", "--output", "x.html"],
            "--output writes the HTML report",
        ),
    ] {
        let output = db.run(&args);
        assert_exit(&output, 2, &format!("{args:?}"));
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = db.run(&["report", "--top", "3", "clicks"]);
    assert_exit(&output, 2, "--top without --output");
}

/// The sample's report, written where the browser tests read it.
async fn sample_report(db: &TestDatabase, dir: &Path) -> std::path::PathBuf {
    loaded_sample(db, dir, "sample.jsonl").await;
    let html = dir.join("report.html");
    db.run_expecting(
        0,
        &[
            "report",
            "--format",
            "html",
            "--output",
            html.to_str().unwrap(),
        ],
    );
    html
}

#[tokio::test]
async fn the_browser_draws_the_report_not_a_blank_or_an_error_page() {
    let db = TestDatabase::new().await;
    let dir = tempfile::tempdir().unwrap();
    let html = sample_report(&db, dir.path()).await;
    let png_path = dir.path().join("report.png");
    screenshot(&html, &png_path);
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (1280, 4000));
    let channels = frame.line_size / frame.width as usize;
    let rgb = |pixel: &[u8]| (pixel[0], pixel[1], pixel[2]);
    let (mut inked, mut page_load_blue, mut click_orange) = (0usize, 0usize, 0usize);
    for pixel in pixels[..frame.buffer_size()].chunks(channels) {
        let (r, g, b) = rgb(pixel);
        if (r, g, b) != (255, 255, 255) {
            inked += 1;
        }
        let near = |target: (i32, i32, i32)| {
            (r as i32 - target.0).abs() + (g as i32 - target.1).abs() + (b as i32 - target.2).abs()
                < 60
        };
        page_load_blue += usize::from(near((0x1b, 0x6c, 0xa8)));
        click_orange += usize::from(near((0xd9, 0x5f, 0x02)));
    }
    let total = (frame.width * frame.height) as usize;
    assert!(
        inked * 100 > total * 2,
        "only {inked} of {total} pixels are not white"
    );
    assert!(
        page_load_blue > 2_000,
        "the page-load lines: {page_load_blue} pixels"
    );
    assert!(
        click_orange > 1_000,
        "the click lines: {click_orange} pixels"
    );
}

#[tokio::test]
async fn the_browser_builds_every_chart_with_its_title_and_the_overview_sql_computes() {
    let db = TestDatabase::new().await;
    let dir = tempfile::tempdir().unwrap();
    let html = sample_report(&db, dir.path()).await;
    let dom = dump_dom(&html);
    assert!(
        dom.contains("<h1>Referral campaigns,"),
        "our page, not an error page"
    );
    let charts: Vec<&str> = dom.split("<svg ").skip(1).collect();
    let full_charts = charts
        .iter()
        .filter(|svg| svg.contains("class=\"chart\""))
        .count();
    let sparklines = charts
        .iter()
        .filter(|svg| svg.contains("class=\"spark\""))
        .count();
    assert_eq!(
        full_charts,
        2 * 8,
        "two charts for each of the 8 customers (--top 20)"
    );
    assert_eq!(sparklines, 8, "one daily rate per overview row");
    for svg in &charts {
        let svg = &svg[..svg.find("</svg>").unwrap()];
        assert!(svg.contains("<title>"), "{svg}");
        if svg.contains("class=\"chart\"") {
            assert!(svg.contains("<desc>"), "{svg}");
        }
    }
    let summary_range = |key: &str| {
        let marker = if key == "from" {
            "Hours from "
        } else {
            " up to "
        };
        let at = dom.find(marker).unwrap() + marker.len();
        dom[at..at + 16].to_owned() + ":00+00"
    };
    let expected = overview_in_sql(
        &db.client().await,
        &summary_range("from"),
        &summary_range("to"),
    )
    .await;
    assert_eq!(overview_cells(&dom), expected);
}
