//! Encoding [`Val`]s: PostgreSQL text form (COPY and text parameters) and SQLite values.

use std::fmt::Write;

use crate::data::{Val, format_ts, format_uuid};

/// PostgreSQL's text form of a non-NULL value (what `value::text` prints), or `None` for NULL.
pub fn pg_text(v: &Val) -> Option<String> {
    let mut s = String::new();
    match v {
        Val::Null => return None,
        Val::Int(i) => {
            let _ = write!(s, "{i}");
        }
        Val::Text(t) | Val::Numeric(t) | Val::Json(t) => s.push_str(t),
        Val::Bool(b) => s.push(if *b { 't' } else { 'f' }),
        Val::F64(f) => float(&mut s, *f),
        Val::F32(f) => {
            if f.is_finite() {
                let _ = write!(s, "{f}");
            } else {
                float(&mut s, f64::from(*f))
            }
        }
        Val::Bytes(b) => {
            s.reserve(2 + 2 * b.len());
            s.push_str("\\x");
            for x in b {
                let _ = write!(s, "{x:02x}");
            }
        }
        Val::Uuid(u) => s.push_str(&format_uuid(u)),
        Val::Ts(t) => format_ts(*t, &mut s),
        Val::TextArray(items) => {
            s.push('{');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                match item {
                    None => s.push_str("NULL"),
                    Some(t) => {
                        s.push('"');
                        for c in t.chars() {
                            if c == '"' || c == '\\' {
                                s.push('\\');
                            }
                            s.push(c);
                        }
                        s.push('"');
                    }
                }
            }
            s.push('}');
        }
    }
    Some(s)
}

fn float(s: &mut String, f: f64) {
    if f.is_nan() {
        s.push_str("NaN");
    } else if f == f64::INFINITY {
        s.push_str("Infinity");
    } else if f == f64::NEG_INFINITY {
        s.push_str("-Infinity");
    } else {
        // Rust prints the shortest text that parses back to the same bits ("-0" for -0.0).
        let _ = write!(s, "{f}");
    }
}

/// Appends one row in COPY text format (tab-separated, `\N` for NULL, newline-terminated).
pub fn copy_row(row: &[Val], out: &mut Vec<u8>) {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match pg_text(v) {
            None => out.extend_from_slice(b"\\N"),
            Some(text) => {
                for &b in text.as_bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        _ => out.push(b),
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

/// The SQLite value of a [`Val`]: timestamps as `YYYY-MM-DD HH:MM:SS.ffffff+00:00` text,
/// numerics and uuids as text, arrays as JSON arrays, booleans as 0/1. (SQLite stores a NaN
/// REAL as NULL.)
pub fn sqlite_value(v: &Val) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Val::Null => V::Null,
        Val::Int(i) => V::Integer(*i),
        Val::Text(t) | Val::Numeric(t) | Val::Json(t) => V::Text(t.clone()),
        Val::Bool(b) => V::Integer(i64::from(*b)),
        Val::F64(f) => V::Real(*f),
        Val::F32(f) => V::Real(f64::from(*f)),
        Val::Bytes(b) => V::Blob(b.clone()),
        Val::Uuid(u) => V::Text(format_uuid(u)),
        Val::Ts(t) => {
            let mut s = String::new();
            format_ts(*t, &mut s);
            s.push_str(":00");
            V::Text(s)
        }
        Val::TextArray(items) => V::Text(serde_json::to_string(items).expect("strings serialise")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_everything_that_matters() {
        let mut out = Vec::new();
        copy_row(
            &[
                Val::Int(-1),
                Val::Null,
                Val::Text("a\tb\nc\\d\r".into()),
                Val::Bytes(vec![0, 255]),
                Val::F64(f64::NEG_INFINITY),
                Val::F64(-0.0),
                Val::TextArray(vec![Some("x\"y".into()), None, Some("b\\s".into())]),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "-1\t\\N\ta\\tb\\nc\\\\d\\r\t\\\\x00ff\t-Infinity\t-0\t{\"x\\\\\"y\",NULL,\"b\\\\\\\\s\"}\n"
        );
    }

    #[test]
    fn floats_round_trip_through_text() {
        for f in [0.1 + 0.2, 5e-324, f64::MAX, 1e300, -0.0] {
            let t = pg_text(&Val::F64(f)).unwrap();
            assert_eq!(t.parse::<f64>().unwrap().to_bits(), f.to_bits(), "{t}");
        }
    }
}
