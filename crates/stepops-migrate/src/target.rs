//! Stack URLs: which engine, where, and how to print them without their password.

use crate::error::{MigrateError, Result};
use std::path::PathBuf;

/// One side of a migration, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `postgres://user:password@host:port/db?…` (or `postgresql://`).
    Postgres(String),
    /// `sqlite:PATH` (also `sqlite://PATH`): one file per stack.
    Sqlite(PathBuf),
}

impl Target {
    /// Parses a stack URL.
    pub fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(MigrateError::InvalidInput(
                    "a SQLite URL needs a file path: sqlite:PATH (for example sqlite:./source.db)"
                        .into(),
                ));
            }
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        Err(MigrateError::InvalidInput(format!(
            "unsupported stack URL {:?}: use postgres://USER@HOST:PORT/DB or sqlite:PATH",
            redact_url(url)
        )))
    }

    /// The engine's name, for messages.
    pub fn engine(&self) -> &'static str {
        match self {
            Target::Postgres(_) => "PostgreSQL",
            Target::Sqlite(_) => "SQLite",
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Target::Postgres(u) => redact_url(u),
            Target::Sqlite(p) => format!("sqlite:{}", p.display()),
        }
    }
}

/// Replaces the password of a URL (`scheme://user:password@host`) and any `password=` query or
/// key/value parameter by `***`. Safe on strings that are not URLs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let rest = &out[auth_start..];
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                let start = auth_start + colon + 1;
                let end = auth_start + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    // `?password=…` / `&password=…` / `password=… ` (key/value connection strings)
    let lower = out.to_ascii_lowercase();
    if let Some(pos) = lower.find("password=") {
        let start = pos + "password=".len();
        let end = out[start..]
            .find(['&', ' ', '#'])
            .map(|e| start + e)
            .unwrap_or(out.len());
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://bob:s3cr%40t@db:5432/app"),
            "postgres://bob:***@db:5432/app"
        );
        assert_eq!(
            redact_url("postgres://bob@db/app?password=hunter2&sslmode=off"),
            "postgres://bob@db/app?password=***&sslmode=off"
        );
        assert_eq!(redact_url("postgres://db/app"), "postgres://db/app");
        assert_eq!(redact_url("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
    }

    #[test]
    fn parses_targets() {
        assert_eq!(
            Target::parse("sqlite:/tmp/x.db").unwrap(),
            Target::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/x.db").unwrap(),
            Target::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            Target::parse("postgresql://u:p@h/d").unwrap(),
            Target::Postgres(_)
        ));
        let err = Target::parse("mysql://u:secret@h/d").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
