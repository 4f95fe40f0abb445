//! A parser for the text that PostgreSQL's `test_decoding` output plugin writes for each row
//! change (`pg_logical_slot_peek_changes`), for example
//!
//! ```text
//! table public.users: UPDATE: old-key: id[bigint]:5 new-tuple: id[bigint]:6 name[text]:'O''Brien'
//! ```
//!
//! Only what change tracking needs is kept: the table, the operation, and the columns of the
//! old key (or deleted identity) and of the new tuple, as their printed text. Values are
//! `'quoted'` (inner quotes doubled) for every type but integers, floats, numerics (printed
//! bare), booleans (`true`/`false`), bit strings (`B'0101'`), `null` and
//! `unchanged-toast-datum`; none of the bare forms contains a space.

/// One decoded row change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Schema of the table.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// What happened.
    pub op: Op,
    /// The old key (`UPDATE` that changed the replica identity) or the deleted row's identity
    /// (`DELETE`): `(column, value)`; empty when not printed.
    pub old: Vec<(String, Value)>,
    /// The new row (`INSERT`, `UPDATE`): `(column, value)`.
    pub new: Vec<(String, Value)>,
}

/// The operation of a [`Change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `INSERT`
    Insert,
    /// `UPDATE`
    Update,
    /// `DELETE`
    Delete,
    /// `TRUNCATE` (the whole table)
    Truncate,
}

/// A printed column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A TOASTed value that the change did not touch (never a key).
    UnchangedToast,
    /// The value's text (unquoted).
    Text(String),
}

impl Value {
    /// The value as a 64-bit integer, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Text(t) => t.parse().ok(),
            _ => None,
        }
    }
}

/// Parses one `data` line of `test_decoding`: one change, or one per table of a `TRUNCATE`
/// (`table a.x, a.y: TRUNCATE: …`). Returns nothing for lines that are not row changes
/// (`BEGIN`, `COMMIT`, logical messages) and `Err` with the reason when a change line does not
/// have the expected shape.
pub fn parse(line: &str) -> Result<Vec<Change>, String> {
    let Some(rest) = line.strip_prefix("table ") else {
        return Ok(Vec::new());
    };
    let mut p = Parser { s: rest, pos: 0 };
    let mut names = Vec::new();
    loop {
        let schema = p.ident()?;
        p.expect(".")?;
        let table = p.ident()?;
        names.push((schema, table));
        if !p.eat(", ") {
            break;
        }
    }
    p.expect(": ")?;
    if p.eat("TRUNCATE:") {
        return Ok(names
            .into_iter()
            .map(|(schema, table)| Change {
                schema,
                table,
                op: Op::Truncate,
                old: Vec::new(),
                new: Vec::new(),
            })
            .collect());
    }
    let [(schema, table)]: [(String, String); 1] = names
        .try_into()
        .map_err(|_| format!("several tables for one row change in {line:?}"))?;
    let op = if p.eat("INSERT:") {
        Op::Insert
    } else if p.eat("UPDATE:") {
        Op::Update
    } else if p.eat("DELETE:") {
        Op::Delete
    } else {
        return Err(format!("unknown operation in {:?}", p.rest()));
    };
    let mut change = Change {
        schema,
        table,
        op,
        old: Vec::new(),
        new: Vec::new(),
    };
    match op {
        Op::Truncate => unreachable!("handled above"),
        Op::Insert => change.new = p.tuple()?,
        Op::Delete => change.old = p.tuple()?,
        Op::Update => {
            if p.eat(" old-key:") {
                change.old = p.tuple()?;
                p.expect(" new-tuple:")?;
            }
            change.new = p.tuple()?;
        }
    }
    Ok(vec![change])
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, lit: &str) -> Result<(), String> {
        if self.eat(lit) {
            Ok(())
        } else {
            Err(format!("expected {lit:?} at {:?}", self.rest()))
        }
    }

    /// An identifier as `quote_identifier` prints it: bare, or `"…"` with `""` for a quote.
    fn ident(&mut self) -> Result<String, String> {
        let rest = self.rest();
        if let Some(inner) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = inner.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if inner[i + 1..].starts_with('"') {
                        out.push('"');
                        chars.next();
                    } else {
                        self.pos += 1 + i + 1;
                        return Ok(out);
                    }
                } else {
                    out.push(c);
                }
            }
            Err(format!("unterminated quoted identifier at {rest:?}"))
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(format!("expected an identifier at {rest:?}"));
            }
            self.pos += end;
            Ok(rest[..end].to_owned())
        }
    }

    /// ` name[type]:value` repeated, up to the end or to ` new-tuple:`; `(no-tuple-data)`
    /// gives none.
    fn tuple(&mut self) -> Result<Vec<(String, Value)>, String> {
        let mut cols = Vec::new();
        if self.eat(" (no-tuple-data)") {
            return Ok(cols);
        }
        while self.rest().starts_with(' ') && !self.rest().starts_with(" new-tuple:") {
            self.pos += 1;
            let name = self.ident()?;
            self.expect("[")?;
            let end = self
                .rest()
                .find("]:")
                .ok_or_else(|| format!("unterminated type of column {name}"))?;
            self.pos += end + 2;
            cols.push((name, self.value()?));
        }
        if !self.rest().is_empty() && !self.rest().starts_with(" new-tuple:") {
            return Err(format!("unexpected text {:?}", self.rest()));
        }
        Ok(cols)
    }

    fn value(&mut self) -> Result<Value, String> {
        let rest = self.rest();
        if let Some(inner) = rest.strip_prefix('\'') {
            let mut out = String::new();
            let mut chars = inner.char_indices();
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if inner[i + 1..].starts_with('\'') {
                        out.push('\'');
                        chars.next();
                    } else {
                        self.pos += 1 + i + 1;
                        return Ok(Value::Text(out));
                    }
                } else {
                    out.push(c);
                }
            }
            return Err("unterminated quoted value".into());
        }
        let end = rest.find(' ').unwrap_or(rest.len());
        self.pos += end;
        Ok(match &rest[..end] {
            "null" => Value::Null,
            "unchanged-toast-datum" => Value::UnchangedToast,
            other => Value::Text(other.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn insert_with_tricky_text_values() {
        let c = parse(
            "table public.t: INSERT: id[bigint]:2 name[text]:'it''s a ]: test id[bigint]:9' v[double precision]:NaN tags[text[]]:'{\"a b\",NULL}' n[integer]:null",
        )
        .unwrap()
        .remove(0);
        assert_eq!(
            (c.schema.as_str(), c.table.as_str(), c.op),
            ("public", "t", Op::Insert)
        );
        assert_eq!(
            c.new,
            [
                ("id".into(), t("2")),
                ("name".into(), t("it's a ]: test id[bigint]:9")),
                ("v".into(), t("NaN")),
                ("tags".into(), t("{\"a b\",NULL}")),
                ("n".into(), Value::Null),
            ]
        );
        assert!(c.old.is_empty());
        assert_eq!(c.new[0].1.as_i64(), Some(2));
    }

    #[test]
    fn update_with_old_key_delete_truncate_and_quoted_names() {
        let c = parse("table public.t: UPDATE: old-key: id[bigint]:2 new-tuple: id[bigint]:5 b[bytea]:unchanged-toast-datum").unwrap().remove(0);
        assert_eq!(c.op, Op::Update);
        assert_eq!(c.old, [("id".into(), t("2"))]);
        assert_eq!(
            c.new,
            [("id".into(), t("5")), ("b".into(), Value::UnchangedToast)]
        );
        let c = parse("table \"My \"\"Schema\".\"Odd.Table\": DELETE: \"Key Col\"[integer]:-7")
            .unwrap()
            .remove(0);
        assert_eq!(c.schema, "My \"Schema");
        assert_eq!(c.table, "Odd.Table");
        assert_eq!(c.old, [("Key Col".into(), t("-7"))]);
        let c = parse("table public.c, \"X\".d: TRUNCATE: restart_seqs cascade").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[1].schema.as_str(), c[1].table.as_str(), c[1].op),
            ("X", "d", Op::Truncate)
        );
        let c = parse("table public.c: DELETE: (no-tuple-data)")
            .unwrap()
            .remove(0);
        assert!(c.old.is_empty());
        assert!(parse("BEGIN 728").unwrap().is_empty());
        assert!(parse("COMMIT 728").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse("table public.t: MERGE: id[bigint]:1").is_err());
        assert!(parse("table public.t: INSERT: id[bigint:1").is_err());
        assert!(parse("table public.t: INSERT: s[text]:'open").is_err());
        assert!(parse("table public: INSERT:").is_err());
    }
}
