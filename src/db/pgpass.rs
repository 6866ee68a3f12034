//! Looks up a password in a libpq password file (`~/.pgpass`, `PGPASSFILE`).

use std::path::Path;

/// What a password file line is matched against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// A host name or address; a Unix-socket directory is matched as `localhost`, as libpq does.
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// Reads the password file at `path` and returns the password of the first matching line.
///
/// A missing file is no password. A file that is not a plain file, or that group or others can
/// read, is ignored with a warning, as libpq does.
pub(crate) fn lookup(path: &Path, target: Target<'_>) -> Option<String> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::warn!(
                "password file {:?} is ignored: {err}",
                path.display().to_string()
            );
            return None;
        }
    };
    if !metadata.is_file() {
        tracing::warn!(
            "password file {:?} is not a plain file and is ignored",
            path.display().to_string()
        );
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {:?} has group or world access and is ignored; permissions should be u=rw (0600) or less",
                path.display().to_string()
            );
            return None;
        }
    }
    match std::fs::read(path) {
        Ok(contents) => find(&String::from_utf8_lossy(&contents), target),
        Err(err) => {
            tracing::warn!(
                "password file {:?} is ignored: {err}",
                path.display().to_string()
            );
            None
        }
    }
}

/// The password of the first line matching `target`; an empty password counts as none.
pub(crate) fn find(contents: &str, target: Target<'_>) -> Option<String> {
    let host = if target.host.starts_with('/') {
        "localhost"
    } else {
        target.host
    };
    let port = target.port.to_string();
    let wanted = [host, port.as_str(), target.dbname, target.user];
    contents
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_line)
        .find(|(fields, _)| {
            fields
                .iter()
                .zip(wanted)
                .all(|(field, wanted)| field.matches(wanted))
        })
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty())
}

/// One of the first four fields: `*` matches anything; `\*` is a literal star.
#[derive(Debug, PartialEq)]
enum Field {
    Any,
    Exactly(String),
}

impl Field {
    fn matches(&self, value: &str) -> bool {
        match self {
            Field::Any => true,
            Field::Exactly(field) => field == value,
        }
    }
}

/// `hostname:port:database:username:password` with `\:` and `\\` escapes; `None` if fields are
/// missing. The password is the rest of the line.
fn parse_line(line: &str) -> Option<([Field; 4], String)> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut chars = line.chars();
    let mut next_field = || {
        let (mut value, mut escaped_any) = (String::new(), false);
        loop {
            match chars.next()? {
                ':' => break,
                '\\' => {
                    escaped_any = true;
                    value.extend(chars.next());
                }
                c => value.push(c),
            }
        }
        Some(if value == "*" && !escaped_any {
            Field::Any
        } else {
            Field::Exactly(value)
        })
    };
    let fields = [next_field()?, next_field()?, next_field()?, next_field()?];
    let mut password = String::new();
    while let Some(c) = chars.next() {
        if c == '\\' {
            password.extend(chars.next());
        } else {
            password.push(c);
        }
    }
    Some((fields, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target<'static> = Target {
        host: "db.example",
        port: 5432,
        dbname: "campaign",
        user: "alice",
    };

    #[test]
    fn exact_line_matches() {
        let file = "db.example:5432:campaign:alice:s3cret\n";
        assert_eq!(find(file, TARGET).as_deref(), Some("s3cret"));
    }

    #[test]
    fn each_field_must_match() {
        for line in [
            "other:5432:campaign:alice:x",
            "db.example:5433:campaign:alice:x",
            "db.example:5432:other:alice:x",
            "db.example:5432:campaign:bob:x",
        ] {
            assert_eq!(find(line, TARGET), None, "{line}");
        }
    }

    #[test]
    fn wildcards() {
        assert_eq!(find("*:*:*:*:any", TARGET).as_deref(), Some("any"));
        assert_eq!(find("*:5432:*:alice:some", TARGET).as_deref(), Some("some"));
        // an escaped star is a literal star
        assert_eq!(find("\\*:*:*:*:x", TARGET), None);
        let star = Target {
            host: "*",
            ..TARGET
        };
        assert_eq!(find("\\*:*:*:*:x", star).as_deref(), Some("x"));
    }

    #[test]
    fn escapes() {
        let target = Target {
            dbname: "a:b",
            user: "c\\d",
            ..TARGET
        };
        let file = "*:*:a\\:b:c\\\\d:pa\\:ss\\\\word:with:colons";
        assert_eq!(
            find(file, target).as_deref(),
            Some("pa:ss\\word:with:colons")
        );
    }

    #[test]
    fn comments_blank_and_short_lines_are_skipped() {
        let file = "# *:*:*:*:commented\n\n*:*:*\n*:*:*:*:real\r\n";
        assert_eq!(find(file, TARGET).as_deref(), Some("real"));
    }

    #[test]
    fn first_match_wins() {
        let file = "*:*:other:*:no\n*:*:campaign:*:first\n*:*:*:*:second\n";
        assert_eq!(find(file, TARGET).as_deref(), Some("first"));
    }

    #[test]
    fn empty_password_is_none() {
        assert_eq!(find("*:*:*:*:", TARGET), None);
    }

    #[test]
    fn socket_host_matches_localhost() {
        let target = Target {
            host: "/var/run/postgresql",
            ..TARGET
        };
        let file = "db.example:*:*:*:no\nlocalhost:*:*:*:yes\n";
        assert_eq!(find(file, target).as_deref(), Some("yes"));
    }

    #[test]
    fn missing_file_is_no_password() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lookup(&dir.path().join("absent"), TARGET), None);
        assert_eq!(
            lookup(dir.path(), TARGET),
            None,
            "a directory is not a password file"
        );
    }

    /// Log lines written while `f` runs.
    fn warnings_during<T>(f: impl FnOnce() -> T) -> (T, String) {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(bytes)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let result = tracing::subscriber::with_default(subscriber, f);
        let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        (result, logged)
    }

    #[cfg(unix)]
    #[test]
    fn readable_by_others_is_ignored_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:s3cret\n").unwrap();
        for (mode, expected) in [
            (0o600, Some("s3cret")),
            (0o400, Some("s3cret")),
            (0o640, None),
            (0o604, None),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let (password, logged) = warnings_during(|| lookup(&path, TARGET));
            assert_eq!(password.as_deref(), expected, "mode {mode:o}");
            assert_eq!(
                logged.contains("WARN") && logged.contains("group or world access"),
                expected.is_none(),
                "{logged}"
            );
            assert!(!logged.contains("s3cret"));
        }
    }
}
