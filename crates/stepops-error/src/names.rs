//! Table names across schemas: the display form used everywhere (plan, manifest, progress,
//! errors, config) and the `include`/`exclude` patterns that select tables.
//!
//! A PostgreSQL table is shown as `schema.table`; a part that is not plain (lower-case ASCII
//! letters, digits, `_`, not starting with a digit) is double-quoted with inner quotes doubled,
//! so `app.users`, `audit."Events"` and `"my.schema"."a""b"` are each unambiguous. SQLite
//! tables have no schema and show their bare name.
//!
//! Patterns (`include`, `exclude`, the keys of `tables`): `schema.table`, either part quoted
//! as above, `*` matching any run of characters and `?` one character (`audit.*`,
//! `*.tmp_*`). A pattern without a dot names tables of the source's default schema (the first
//! schema of its search path, `public` usually), as before schemas were supported.

/// The display form of one name part (see the module doc).
pub fn display_part(part: &str) -> String {
    let plain = part
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        part.to_owned()
    } else {
        format!("\"{}\"", part.replace('"', "\"\""))
    }
}

/// The display name of a table: `schema.table`, or the bare name when `schema` is empty.
pub fn display(schema: &str, table: &str) -> String {
    if schema.is_empty() {
        table.to_owned()
    } else {
        format!("{}.{}", display_part(schema), display_part(table))
    }
}

/// Splits a display name back into `(schema, table)` (schema empty for a bare name); `None`
/// when it is not a display name.
pub fn split_display(text: &str) -> Option<(String, String)> {
    let parts = split_parts(text).ok()?;
    match parts.as_slice() {
        [t] => Some((String::new(), t.text.clone())),
        [s, t] => Some((s.text.clone(), t.text.clone())),
        _ => None,
    }
}

/// A parsed `include`/`exclude`/`tables` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The schema part (`None`: the default schema).
    schema: Option<Part>,
    /// The table part.
    table: Part,
}

/// One part of a pattern: a literal (quoted) or a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    text: String,
    glob: bool,
}

impl Part {
    fn matches(&self, name: &str) -> bool {
        if self.glob {
            glob_match(&self.text, name)
        } else {
            self.text == name
        }
    }
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let parts = split_parts(text)?;
        match parts.as_slice() {
            [table] => Ok(Pattern {
                schema: None,
                table: table.clone(),
            }),
            [schema, table] => Ok(Pattern {
                schema: Some(schema.clone()),
                table: table.clone(),
            }),
            _ => Err(format!(
                "{text:?} has more than one unquoted dot: write schema.table, quoting a part that holds a dot (\"my.schema\".t)"
            )),
        }
    }

    /// Whether the pattern holds a wildcard (a literal name that matches nothing is an error,
    /// a glob that matches nothing is reported too).
    pub fn is_glob(&self) -> bool {
        self.table.glob || self.schema.as_ref().is_some_and(|s| s.glob)
    }

    /// Whether it selects `schema.table`; `default_schema` is where a pattern without a schema
    /// looks (SQLite: tables have the empty schema, and any pattern without one matches).
    pub fn matches(&self, schema: &str, table: &str, default_schema: &str) -> bool {
        let schema_ok = match &self.schema {
            None => schema == default_schema,
            Some(p) => p.matches(schema),
        };
        schema_ok && self.table.matches(table)
    }
}

/// Splits on unquoted dots; a quoted part is literal (`""` is one quote), an unquoted one is a
/// glob when it holds `*` or `?`.
fn split_parts(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("{text:?} has an unterminated quote")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(format!(
                        "{text:?} has a quote inside a name part: quote the whole part"
                    ));
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() && !quoted {
            return Err(format!("{text:?} has an empty name part"));
        }
        let glob = !quoted && part.contains(['*', '?']);
        parts.push(Part { text: part, glob });
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("{text:?}: unexpected {c:?} after a quoted part")),
        }
    }
}

/// `*` (any run, also empty) and `?` (one character) glob matching.
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_is_not_plain() {
        assert_eq!(display("public", "users"), "public.users");
        assert_eq!(display("audit", "Events"), "audit.\"Events\"");
        assert_eq!(display("my.schema", "a\"b"), "\"my.schema\".\"a\"\"b\"");
        assert_eq!(display("app", "çà"), "app.\"çà\"");
        assert_eq!(display("", "users"), "users");
        assert_eq!(display("s", "1x"), "s.\"1x\"");
    }

    #[test]
    fn patterns_select_by_schema_and_glob() {
        let m = |p: &str, s: &str, t: &str| Pattern::parse(p).unwrap().matches(s, t, "public");
        assert!(m("users", "public", "users"));
        assert!(!m("users", "app", "users"));
        assert!(m("app.users", "app", "users"));
        assert!(m("audit.*", "audit", "events"));
        assert!(!m("audit.*", "app", "events"));
        assert!(m("*.tmp_*", "app", "tmp_x"));
        assert!(!m("*.tmp_*", "app", "tmpx"));
        assert!(m("a?c.t", "abc", "t"));
        assert!(m("\"my.schema\".\"a\"\"b\"", "my.schema", "a\"b"));
        assert!(m("app.\"Users\"", "app", "Users"));
        assert!(
            !m("app.\"Use*\"", "app", "Users"),
            "a quoted part is literal"
        );
        assert!(m("app.Users", "app", "Users"), "case is kept");
        // Display names parse back to themselves.
        for (s, t) in [("my.schema", "a\"b"), ("app", "çà"), ("public", "users")] {
            assert!(m(&display(s, t), s, t));
            assert_eq!(split_display(&display(s, t)), Some((s.into(), t.into())));
        }
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (p, why) in [
            ("a.b.c", "more than one unquoted dot"),
            ("\"open", "unterminated quote"),
            ("a..b", "empty name part"),
            ("a\"b", "quote inside"),
            ("\"a\"x", "after a quoted part"),
        ] {
            let e = Pattern::parse(p).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
        }
    }
}
