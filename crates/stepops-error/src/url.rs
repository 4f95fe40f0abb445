//! Database URLs: which engine and where ([`DatabaseUrl`]), whether an inline URL carries a
//! password, and the one redactor ([`redact`]) every stepops message goes through before it is
//! logged or sent.

use std::fmt;
use std::path::PathBuf;

use crate::{ErrorName, Named};

/// A database, parsed from its URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://user:password@host:port/db?…` (or `postgresql://`), kept whole for the
    /// driver.
    Postgres(String),
    /// `sqlite:PATH` (also `sqlite://PATH`): one file per database.
    Sqlite(PathBuf),
}

/// A URL that names no database stepops can open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

impl Named for UrlError {
    fn error_name(&self) -> ErrorName {
        ErrorName::InvalidInput
    }
}

impl DatabaseUrl {
    /// Parses `postgres[ql]://…` or `sqlite:PATH`; the error never holds the password.
    pub fn parse(url: &str) -> Result<DatabaseUrl, UrlError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(UrlError(
                    "a SQLite URL needs a file path: sqlite:PATH (for example sqlite:./source.db)"
                        .into(),
                ));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        Err(UrlError(format!(
            "unsupported database URL {:?}: use postgres://USER@HOST:PORT/DB or sqlite:PATH",
            redact(url)
        )))
    }

    /// The engine's name, for messages.
    pub fn engine(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "PostgreSQL",
            DatabaseUrl::Sqlite(_) => "SQLite",
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Postgres(u) => redact(u),
            DatabaseUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// Whether `url` carries a credential: exactly when [`redact`] would hide something in it
/// (`scheme://user:password@host…`, `password=`, `token=`, …), so what is refused inline and
/// what is hidden in messages never disagree.
pub fn has_inline_password(url: &str) -> bool {
    redact(url) != url
}

/// Checks a URL given inline as a `{"url": …}` target: `sqlite:PATH` or `postgres[ql]://…`
/// without a password, or a Synapse stack `synapse+http[s]://…` (its `KEY:SECRET@` inline only
/// on 127.0.0.1/localhost: a local fake). The error completes "`field.url` (…) " and says what to do.
pub fn check_inline_url(url: &str) -> Result<(), String> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        if path.trim_start_matches("//").is_empty() {
            return Err("has no file path: use sqlite:PATH".into());
        }
        return Ok(());
    }
    if let Some(rest) = url
        .strip_prefix("synapse+https://")
        .or_else(|| url.strip_prefix("synapse+http://"))
    {
        // A Synapse stack. Its service key and secret belong in a secret, except for a stack
        // on this machine (a local fake, whose credentials protect nothing).
        let authority = rest.split('/').next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        if has_inline_password(url) && !loopback {
            return Err(
                "has a service secret inline: put the URL in a secret and use {\"secret\": NAME}"
                    .into(),
            );
        }
        return Ok(());
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "is not a supported URL: use sqlite:PATH, or name a secret or parameter".into(),
        );
    }
    if has_inline_password(url) {
        return Err(
            "has a password inline: put the URL in a secret and use {\"secret\": NAME}".into(),
        );
    }
    Ok(())
}

/// `text` with every credential it may hold replaced by `***`: the password of every
/// `scheme://user:password@host` URL, the value of every `KEY=value` whose key ends in
/// `password`, `passwd`, `token`, `secret` or `apikey`/`api_key` (query strings, libpq key/value
/// strings, quoted or not), of every JSON `"…password": "…"` / `"…token": "…"`, and of
/// `Bearer …`. Safe on any text: it never panics and keeps everything else as it was.
pub fn redact(text: &str) -> String {
    redact_keyed(&redact_userinfo(text))
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let segment = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(tail.len());
        // The authority ends at `?` or `#`; a raw `/` in a password is tolerated (the last `@`
        // before the query wins).
        let end = tail[..segment].find(['?', '#']).unwrap_or(segment);
        let authority = &tail[..end];
        match authority.rfind('@').and_then(|at| {
            let colon = authority[..at].find(':')?;
            (!authority[..colon].contains('/')).then_some((colon, at))
        }) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Key names (lower case, matched as suffixes) whose `=` values are secrets.
const KEYED: [&str; 6] = ["password", "passwd", "token", "secret", "apikey", "api_key"];
/// Key names (lower case, matched as suffixes) whose JSON string values are secrets; `secret`
/// is not among them: `{"secret": NAME}` names a secret, it does not hold one.
const JSON_KEYED: [&str; 3] = ["password", "passwd", "token"];

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn redact_keyed(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) || (i > 0 && is_word(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word(bytes[i]) {
            i += 1;
        }
        let key = text[start..i].to_ascii_lowercase();
        let span = if key == "bearer" {
            bearer_value(bytes, i)
        } else if KEYED.iter().any(|k| key.ends_with(k)) {
            assigned_value(bytes, i).or_else(|| {
                JSON_KEYED
                    .iter()
                    .any(|k| key.ends_with(k))
                    .then(|| json_value(bytes, i))
                    .flatten()
            })
        } else {
            None
        };
        if let Some((from, to)) = span {
            out.push_str(&text[copied..from]);
            out.push_str("***");
            copied = to;
            i = to;
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i] == b' ' {
        i += 1;
    }
    i
}

/// `KEY = value` / `KEY='quoted value'`: the value's byte range.
fn assigned_value(bytes: &[u8], key_end: usize) -> Option<(usize, usize)> {
    let eq = skip_spaces(bytes, key_end);
    if bytes.get(eq) != Some(&b'=') {
        return None;
    }
    let start = skip_spaces(bytes, eq + 1);
    match bytes.get(start) {
        Some(&q @ (b'\'' | b'"')) => quoted(bytes, start + 1, q),
        _ => {
            let end = bytes[start..]
                .iter()
                .position(|b| b.is_ascii_whitespace() || matches!(b, b'&' | b';' | b'"' | b'\''))
                .map_or(bytes.len(), |p| start + p);
            (end > start).then_some((start, end))
        }
    }
}

/// `KEY": "value"` (the key's closing quote first): the value's byte range.
fn json_value(bytes: &[u8], key_end: usize) -> Option<(usize, usize)> {
    if bytes.get(key_end) != Some(&b'"') {
        return None;
    }
    let colon = skip_spaces(bytes, key_end + 1);
    if bytes.get(colon) != Some(&b':') {
        return None;
    }
    let open = skip_spaces(bytes, colon + 1);
    if bytes.get(open) != Some(&b'"') {
        return None;
    }
    quoted(bytes, open + 1, b'"')
}

/// The range from `start` to the closing `quote` (backslash escapes skipped), or to the end.
fn quoted(bytes: &[u8], start: usize, quote: u8) -> Option<(usize, usize)> {
    let mut i = start;
    while i < bytes.len() && bytes[i] != quote {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    let end = i.min(bytes.len());
    (end > start).then_some((start, end))
}

/// `Bearer TOKEN`: the token's byte range.
fn bearer_value(bytes: &[u8], key_end: usize) -> Option<(usize, usize)> {
    let start = skip_spaces(bytes, key_end);
    if start == key_end {
        return None;
    }
    let end = bytes[start..]
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b',' | b';'))
        .map_or(bytes.len(), |p| start + p);
    (end > start).then_some((start, end))
}

/// Decodes `%XX` escapes; anything else (a lone `%`, a `%` before a multi-byte character) is
/// kept as it is. Works on bytes, so no input can make it panic.
pub fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes every byte but unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`, for a URL's
/// user, password or query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_user_info_keyed_values_and_tokens() {
        for (text, want) in [
            (
                "cannot connect to postgres://app:s3cr3t@db.internal:5432/main: refused",
                "cannot connect to postgres://app:***@db.internal:5432/main: refused",
            ),
            (
                "postgres://bob:s3cr%40t@db:5432/app",
                "postgres://bob:***@db:5432/app",
            ),
            ("postgres://u:p/ss@h/db?x=1", "postgres://u:***@h/db?x=1"),
            (
                "postgres://bob@db/app?password=hunter2&sslmode=off",
                "postgres://bob@db/app?password=***&sslmode=off",
            ),
            (
                "host=db password=hunter2 user=x",
                "host=db password=*** user=x",
            ),
            (
                "host=db password = 'a b c' user=x",
                "host=db password = '***' user=x",
            ),
            (
                "postgres://db/main?user=a&password=p@ss&x=1",
                "postgres://db/main?user=a&password=***&x=1",
            ),
            (
                "https://x/cb?access_token=abc&state=1",
                "https://x/cb?access_token=***&state=1",
            ),
            (
                r#"{"username": "app", "password": "p\"w", "secret": "stepops/dev/db"}"#,
                r#"{"username": "app", "password": "***", "secret": "stepops/dev/db"}"#,
            ),
            ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
            ("sqlite:/tmp/a.db", "sqlite:/tmp/a.db"),
            ("postgres://db/app", "postgres://db/app"),
            (
                "https://hooks.example/abc and postgres://u@h/d",
                "https://hooks.example/abc and postgres://u@h/d",
            ),
            ("ünïcode password=x", "ünïcode password=***"),
            ("password=", "password="),
            (
                "secret stepops/dev/source-db",
                "secret stepops/dev/source-db",
            ),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn parses_database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:/tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse(" postgresql://u:p@h/d").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!(DatabaseUrl::parse("sqlite:").is_err());
        let err = DatabaseUrl::parse("mysql://u:secret@h/d").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let url = DatabaseUrl::parse("postgres://u:hunter2@h/d").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.redacted(), "postgres://u:***@h/d");
    }

    #[test]
    fn inline_urls_without_passwords_only() {
        assert!(check_inline_url("sqlite:/a.db").is_ok());
        assert!(check_inline_url("postgres://u@h/db").is_ok());
        for (url, says) in [
            ("sqlite:", "no file path"),
            ("mysql://h/db", "not a supported URL"),
            ("postgres://u:pw@h/db", "password inline"),
            ("postgres://h/db?user=u&password=pw", "password inline"),
        ] {
            assert!(check_inline_url(url).unwrap_err().contains(says), "{url}");
        }
        assert!(has_inline_password("host=h user=u password=x"));
    }
}
