//! The loader's input: event lines field by field, files of lines, fixtures, generated logs.

use std::fmt;
use std::path::Path;

use super::process::{assert_exit, campaign_elt};

/// One line of the provider's export: compact JSON with the fields in the export's order
/// (`event_id`, `customer_id`, `fired_at`, `user_id`, `event_type`, then any others) and slashes
/// escaped as the export escapes them. Values are raw JSON, so a test can put anything there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLine {
    fields: Vec<(String, String)>,
}

/// An event line with the five event fields.
pub fn event(id: &str, customer: i64, user: i64, fired_at: &str, event_type: &str) -> EventLine {
    EventLine {
        fields: vec![
            ("event_id".to_owned(), json_string(id)),
            ("customer_id".to_owned(), customer.to_string()),
            ("fired_at".to_owned(), json_string(fired_at)),
            ("user_id".to_owned(), user.to_string()),
            ("event_type".to_owned(), json_string(event_type)),
        ],
    }
}

pub fn page_load(id: &str, customer: i64, user: i64, fired_at: &str) -> EventLine {
    event(id, customer, user, fired_at, "ReferralPageLoad")
}

pub fn click(id: &str, customer: i64, user: i64, fired_at: &str) -> EventLine {
    event(id, customer, user, fired_at, "ReferralRecommendClick")
}

impl EventLine {
    /// `field` set to the raw JSON `value`, in its place (or added at the end).
    pub fn with(mut self, field: &str, value: &str) -> EventLine {
        match self.fields.iter_mut().find(|(name, _)| name == field) {
            Some((_, old)) => *old = value.to_owned(),
            None => self.fields.push((field.to_owned(), value.to_owned())),
        }
        self
    }

    /// `field` left out.
    pub fn without(mut self, field: &str) -> EventLine {
        self.fields.retain(|(name, _)| name != field);
        self
    }

    /// One more field at the end, even when the line has a field of that name already.
    pub fn and(mut self, field: &str, value: &str) -> EventLine {
        self.fields.push((field.to_owned(), value.to_owned()));
        self
    }

    /// The export's personal data fields, `ip` and `email`.
    pub fn with_personal_data(self, ip: &str, email: &str) -> EventLine {
        self.with("ip", &json_string(ip))
            .with("email", &json_string(email))
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for EventLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, (name, value)) in self.fields.iter().enumerate() {
            let separator = if index == 0 { "" } else { "," };
            write!(f, "{separator}{}:{value}", json_string(name))?;
        }
        f.write_str("}")
    }
}

/// `text` as a JSON string, the way the export writes it (with `\/` for `/`).
pub fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap().replace('/', "\\/")
}

/// The lines, each ending with `\n`.
pub fn jsonl<Line: fmt::Display>(lines: &[Line]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// Writes the lines to `path`, each ending with `\n`.
pub fn write_lines<Line: fmt::Display>(path: &Path, lines: &[Line]) {
    std::fs::write(path, jsonl(lines)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The path of `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Writes a synthetic log to `path` with `campaign-elt generate --output PATH ARGS`.
pub fn generate(path: &Path, args: &[&str]) {
    let output = campaign_elt()
        .args(["generate", "--output", path.to_str().unwrap()])
        .args(args)
        .output()
        .expect("run campaign-elt generate");
    assert_exit(&output, 0, &format!("campaign-elt generate {args:?}"));
}
