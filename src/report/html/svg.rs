//! Small hand-written SVG: line charts with labelled axes, a `<title>` and a `<desc>`, and
//! sparklines; and the escaping every text from the database or a path goes through.

use std::fmt::Write;

/// Escapes text for HTML and SVG content and for attribute values in double or single quotes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// One line of a chart: `None` values are gaps (a rate without page loads).
pub struct Series<'a> {
    pub name: &'a str,
    /// A CSS colour, also named in the legend.
    pub colour: &'a str,
    pub values: Vec<Option<f64>>,
}

/// A line chart over evenly spaced points.
pub struct LineChart<'a> {
    /// The chart's `<title>` (also drawn above it).
    pub title: String,
    /// The chart's `<desc>`: what it shows, for screen readers.
    pub description: String,
    /// What the y axis counts, with its unit (e.g. "events per hour").
    pub y_label: &'a str,
    /// What the x axis shows, with its time zone (e.g. "hour (UTC)").
    pub x_label: &'a str,
    /// Labels under some points: (point index, text).
    pub x_ticks: Vec<(usize, String)>,
    /// Format of the y axis' tick labels.
    pub y_format: fn(f64) -> String,
    pub series: Vec<Series<'a>>,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 46.0;

impl LineChart<'_> {
    /// The chart as an inline `<svg>` element.
    pub fn render(&self) -> String {
        let points = self
            .series
            .iter()
            .map(|s| s.values.len())
            .max()
            .unwrap_or(0);
        let max = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0_f64, |max, &value| max.max(value));
        let top_tick = nice_ceiling(max);
        let plot_width = WIDTH - LEFT - RIGHT;
        let plot_height = HEIGHT - TOP - BOTTOM;
        let x = |index: usize| {
            LEFT + if points > 1 {
                plot_width * index as f64 / (points - 1) as f64
            } else {
                plot_width / 2.0
            }
        };
        let y = |value: f64| TOP + plot_height * (1.0 - value / top_tick);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"><title>{}</title><desc>{}</desc>"#,
            escape(&self.title),
            escape(&self.description)
        );
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="16" class="chart-title">{}</text>"#,
            escape(&self.title)
        );
        // Legend, right-aligned on the title's line.
        let mut legend_x = WIDTH - RIGHT;
        for series in self.series.iter().rev() {
            legend_x -= 14.0 + 7.5 * series.name.chars().count() as f64 + 18.0;
            let _ = write!(
                svg,
                r#"<rect x="{legend_x:.1}" y="7" width="12" height="12" fill="{}"/><text x="{:.1}" y="17" class="legend">{}</text>"#,
                escape(series.colour),
                legend_x + 16.0,
                escape(series.name)
            );
        }
        for step in 0..=4 {
            let value = top_tick * step as f64 / 4.0;
            let at = y(value);
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" x2="{:.1}" y1="{at:.1}" y2="{at:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                at + 4.0,
                escape(&(self.y_format)(value))
            );
        }
        for (index, label) in &self.x_ticks {
            let at = x(*index);
            let _ = write!(
                svg,
                r#"<line x1="{at:.1}" x2="{at:.1}" y1="{TOP}" y2="{:.1}" class="grid"/><text x="{at:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                HEIGHT - BOTTOM,
                HEIGHT - BOTTOM + 16.0,
                escape(label)
            );
        }
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" class="axis"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}" class="axis"/>"#,
            WIDTH - RIGHT,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="axis-label" text-anchor="middle">{}</text><text x="14" y="{:.1}" class="axis-label" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
            LEFT + plot_width / 2.0,
            HEIGHT - 8.0,
            escape(self.x_label),
            TOP + plot_height / 2.0,
            TOP + plot_height / 2.0,
            escape(self.y_label)
        );
        for series in &self.series {
            for run in runs(&series.values) {
                let coordinates: Vec<String> = run
                    .iter()
                    .map(|&(index, value)| format!("{:.1},{:.1}", x(index), y(value)))
                    .collect();
                if coordinates.len() == 1 {
                    let (index, value) = run[0];
                    let _ = write!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
                        x(index),
                        y(value),
                        escape(series.colour)
                    );
                } else {
                    let _ = write!(
                        svg,
                        r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                        escape(series.colour),
                        coordinates.join(" ")
                    );
                }
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The runs of consecutive values that are present, with their indexes.
fn runs(values: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut runs: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut current: Vec<(usize, f64)> = Vec::new();
    for (index, value) in values.iter().enumerate() {
        match value {
            Some(value) => current.push((index, *value)),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// The smallest of 1, 2, 2.5, 5 × a power of ten at or above `max` (1 for nothing to show).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|&ceiling| ceiling >= max)
        .unwrap_or(10.0 * magnitude)
}

/// A sparkline of values between 0 and `top` (a customer's daily rate), with a title.
pub fn sparkline(title: &str, values: &[Option<f64>], top: f64, colour: &str) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let top = if top > 0.0 { top } else { 1.0 };
    let x = |index: usize| {
        if values.len() > 1 {
            2.0 + (W - 4.0) * index as f64 / (values.len() - 1) as f64
        } else {
            W / 2.0
        }
    };
    let y = |value: f64| H - 2.0 - (H - 4.0) * (value / top).min(1.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="spark" role="img" viewBox="0 0 {W} {H}" width="{W}" height="{H}"><title>{}</title>"#,
        escape(title)
    );
    for run in runs(values) {
        let coordinates: Vec<String> = run
            .iter()
            .map(|&(index, value)| format!("{:.1},{:.1}", x(index), y(value)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            escape(colour),
            coordinates.join(" ")
        );
        if let [(index, value)] = run[..] {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="1.5" fill="{}"/>"#,
                x(index),
                y(value),
                escape(colour)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_quote_to_close_an_attribute() {
        let hostile = r#"</script><script>alert("x")</script>' onload='x'&amp;"#;
        let escaped = escape(hostile);
        for forbidden in ['<', '>', '"', '\''] {
            assert!(!escaped.contains(forbidden), "{escaped}");
        }
        assert!(escaped.contains("&amp;amp;"));
        assert_eq!(escape("page loads (UTC)"), "page loads (UTC)");
    }

    #[test]
    fn a_chart_has_its_title_description_axes_and_one_line_per_run_of_values() {
        let chart = LineChart {
            title: "Customer <1>".into(),
            description: "page loads & clicks".into(),
            y_label: "events per hour",
            x_label: "hour (UTC)",
            x_ticks: vec![(0, "01-01".into())],
            y_format: |value| format!("{value:.0}"),
            series: vec![
                Series {
                    name: "page loads",
                    colour: "#1b6ca8",
                    values: vec![Some(1.0), Some(3.0), None, Some(2.0), Some(4.0)],
                },
                Series {
                    name: "clicks",
                    colour: "#d95f02",
                    values: vec![Some(0.0); 5],
                },
            ],
        }
        .render();
        assert!(chart.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
        assert!(
            chart.contains("<title>Customer &lt;1&gt;</title><desc>page loads &amp; clicks</desc>")
        );
        assert_eq!(chart.matches("<polyline").count(), 3, "a gap splits a line");
        assert!(chart.contains(">events per hour</text>") && chart.contains(">hour (UTC)</text>"));
        assert!(
            chart.contains(">4</text>"),
            "the top tick is 4 for a maximum of 4: {chart}"
        );
        assert!(chart.ends_with("</svg>"));
    }

    #[test]
    fn axes_end_at_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(41.0), 50.0);
        assert_eq!(nice_ceiling(0.037), 0.05);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
    }
}
