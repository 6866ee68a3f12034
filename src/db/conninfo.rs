//! Splits a libpq connection string (`postgres://` URL or `key=value` list) into its parameters.

use anyhow::{bail, Result};

/// The parameters of a connection string in the order given; a later duplicate wins, as in libpq.
pub(crate) type Params = Vec<(String, String)>;

/// Parses a `postgres://` / `postgresql://` URL or a `key=value` connection string.
///
/// Error messages never quote the input: it may hold a password.
pub(crate) fn parse(s: &str) -> Result<Params> {
    if let Some(rest) = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
    {
        parse_url(rest)
    } else if s.contains('=') {
        parse_key_values(s)
    } else {
        bail!("expected a postgres:// or postgresql:// URL or a key=value connection string")
    }
}

/// `[user[:password]@][host[:port]][,...][/dbname][?param=value&...]`, percent-encoded.
fn parse_url(s: &str) -> Result<Params> {
    let mut params = Params::new();
    let (main, query) = match s.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (s, None),
    };
    let (netloc, path) = match main.split_once('/') {
        Some((netloc, path)) => (netloc, Some(path)),
        None => (main, None),
    };
    // The last '@' ends the credentials, so an unencoded '@' in a password still works.
    let hosts = match netloc.rsplit_once('@') {
        Some((credentials, hosts)) => {
            let (user, password) = match credentials.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (credentials, None),
            };
            if !user.is_empty() {
                params.push(("user".into(), percent_decode(user)?));
            }
            if let Some(password) = password {
                params.push(("password".into(), percent_decode(password)?));
            }
            hosts
        }
        None => netloc,
    };
    if !hosts.is_empty() {
        let (mut host_list, mut port_list) = (Vec::new(), Vec::new());
        for chunk in hosts.split(',') {
            let (host, port) = if let Some(bracketed) = chunk.strip_prefix('[') {
                let Some((host, after)) = bracketed.split_once(']') else {
                    bail!("unterminated IPv6 address in URL");
                };
                match after {
                    "" => (host, ""),
                    _ => match after.strip_prefix(':') {
                        Some(port) => (host, port),
                        None => bail!("unexpected characters after an IPv6 address in URL"),
                    },
                }
            } else {
                chunk.split_once(':').unwrap_or((chunk, ""))
            };
            host_list.push(percent_decode(host)?);
            port_list.push(percent_decode(port)?);
        }
        // Like libpq: one host without a port leaves the port to PGPORT; with several hosts an
        // empty entry means the default port.
        params.push(("host".into(), host_list.join(",")));
        let ports = port_list.join(",");
        if !ports.is_empty() {
            params.push(("port".into(), ports));
        }
    }
    if let Some(path) = path.filter(|path| !path.is_empty()) {
        params.push(("dbname".into(), percent_decode(path)?));
    }
    for pair in query.into_iter().flat_map(|query| query.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            bail!("URL query parameter without \"=\"");
        };
        params.push((percent_decode(key)?, percent_decode(value)?));
    }
    Ok(params)
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok());
            let Some(byte) = hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) else {
                bail!("invalid percent-encoding in URL");
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow::anyhow!("percent-encoded URL is not valid UTF-8"))
}

/// `key = value` pairs separated by whitespace; values may be single-quoted; `\` escapes.
fn parse_key_values(s: &str) -> Result<Params> {
    let mut params = Params::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            bail!("missing \"=\" after a keyword in connection string");
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => bail!("unterminated quoted value in connection string"),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        params.push((key, value));
    }
}

/// Quotes a value for a `key=value` connection string.
pub(crate) fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(params: &[(&str, &str)]) -> Params {
        params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn full_url() {
        let params =
            parse("postgresql://alice:s%40cret@db.example:5433/campaign?sslmode=verify-full&application_name=x%20y")
                .unwrap();
        assert_eq!(
            params,
            pairs(&[
                ("user", "alice"),
                ("password", "s@cret"),
                ("host", "db.example"),
                ("port", "5433"),
                ("dbname", "campaign"),
                ("sslmode", "verify-full"),
                ("application_name", "x y"),
            ])
        );
    }

    #[test]
    fn url_parts_are_optional() {
        assert_eq!(parse("postgres://").unwrap(), pairs(&[]));
        assert_eq!(parse("postgres:///db").unwrap(), pairs(&[("dbname", "db")]));
        assert_eq!(parse("postgres://bob@").unwrap(), pairs(&[("user", "bob")]));
        // a host without a port leaves the port unset, so PGPORT can fill it in
        assert_eq!(parse("postgres://h").unwrap(), pairs(&[("host", "h")]));
    }

    #[test]
    fn url_password_with_raw_at_sign() {
        let params = parse("postgres://u:p@ss@h/d").unwrap();
        assert_eq!(params[1], ("password".into(), "p@ss".into()));
        assert_eq!(params[2], ("host".into(), "h".into()));
    }

    #[test]
    fn url_hosts_sockets_and_ipv6() {
        assert_eq!(
            parse("postgres://h1:1,[::1],h3:3/d").unwrap(),
            pairs(&[("host", "h1,::1,h3"), ("port", "1,,3"), ("dbname", "d")])
        );
        assert_eq!(
            parse("postgres://%2Fvar%2Frun%2Fpostgresql/d").unwrap(),
            pairs(&[("host", "/var/run/postgresql"), ("dbname", "d")])
        );
        assert_eq!(
            parse("postgres:///d?host=/tmp&port=5999").unwrap(),
            pairs(&[("dbname", "d"), ("host", "/tmp"), ("port", "5999")])
        );
    }

    #[test]
    fn url_errors_do_not_echo_input() {
        for bad in [
            "postgres://u:se%ZZcret@h",
            "postgres://[::1/d",
            "postgres://h/d?secret",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(!err.contains("cret") && !err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn key_values() {
        let params =
            parse("host = h  port=5433 password='it\\'s' user=a\\ b dbname='' sslmode=require")
                .unwrap();
        assert_eq!(
            params,
            pairs(&[
                ("host", "h"),
                ("port", "5433"),
                ("password", "it's"),
                ("user", "a b"),
                ("dbname", ""),
                ("sslmode", "require"),
            ])
        );
    }

    #[test]
    fn key_value_errors_do_not_echo_input() {
        // '' is not an escape in libpq: the quoted value ends and `s'` is a keyword without "="
        let err = parse("password='it''s' user=a").unwrap_err().to_string();
        assert!(err.contains("missing \"=\""), "{err}");
        for bad in ["host=h hunter2", "password='hunter2"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(parse("just-a-name").is_err());
    }

    #[test]
    fn quote_round_trips() {
        for value in ["plain", "with space", "it's", "back\\slash", ""] {
            let parsed = parse(&format!("k={}", quote(value))).unwrap();
            assert_eq!(parsed, pairs(&[("k", value)]));
        }
    }
}
