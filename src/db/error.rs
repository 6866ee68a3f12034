//! PostgreSQL's own error messages, and quoting of identifiers that come from files or flags.

/// Postgres's own message (and detail) for an error, without the client library's wrapping.
pub fn database_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" (hint: {hint})"));
            }
            message
        }
        None => error.to_string(),
    }
}

/// Quotes an SQL identifier (`"` doubled), for names that come from files or flags.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a possibly schema-qualified relation name `schema.name`.
pub fn quote_relation(qualified: &str) -> String {
    qualified
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("page_loads"), "\"page_loads\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            quote_relation("reports.page_loads"),
            "\"reports\".\"page_loads\""
        );
    }
}
