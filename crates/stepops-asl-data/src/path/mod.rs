//! JSONPath as AWS Step Functions evaluates it (Jayway semantics) and `ResultPath` writes.
//!
//! Supported: `$` (input), `$$` (context object), `$name` (variables); `.name`, `['name']`,
//! `["name"]`, `[0]`, `[-1]`, `[0,2]`, `['a','b']`, `[*]`, `.*`, `[a:b:c]`, `..name`, `..*`,
//! `..[…]`, filters `[?(…)]` with `&&`, `||`, `!`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~`,
//! `in`, `nin`, `empty`, and a trailing `.length()`.
//!
//! A *definite* path (no wildcard, deep scan, slice, filter, union) yields one value or nothing;
//! an *indefinite* one always yields an array of its matches (possibly empty).
//!
//! Here: the path, its evaluation and `ResultPath` writes; `filter.rs` holds filter
//! expressions and their comparisons, `parser.rs` the parser.

mod filter;
mod parser;

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::{DataError, Map, Scope, Value, to_json};
use filter::Expr;
pub(crate) use filter::json_eq;
use parser::Parser;

/// A JSONPath that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath '{path}': {reason}")]
pub struct PathSyntaxError {
    /// The path text.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Where a path starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// `$`: the step input.
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a variable.
    Variable(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// One or more property names (`.a`, `['a']`, `['a','b']`).
    Names(Vec<String>),
    /// One or more array indexes (`[0]`, `[-1]`, `[0,2]`).
    Indexes(Vec<i64>),
    /// `[*]` / `.*`.
    Wildcard,
    /// `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, Option<i64>),
    /// `[?(…)]`.
    Filter(Box<Expr>),
    /// `..` followed by a segment.
    Deep(Box<Segment>),
    /// `.length()`.
    Length,
}

impl Segment {
    fn is_definite(&self) -> bool {
        match self {
            Segment::Names(n) => n.len() == 1,
            Segment::Indexes(i) => i.len() == 1,
            Segment::Length => true,
            _ => false,
        }
    }
}

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    root: Root,
    segments: Vec<Segment>,
}

impl JsonPath {
    /// Parses and validates a path.
    pub fn parse(text: &str) -> Result<JsonPath, PathSyntaxError> {
        let mut p = Parser::new(text);
        let path = p.path().map_err(|reason| PathSyntaxError {
            path: text.to_owned(),
            reason,
        })?;
        Ok(JsonPath {
            text: text.to_owned(),
            root: path.0,
            segments: path.1,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where the path starts.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// True for a Reference Path (no wildcards, filters, slices, unions, deep scan, functions).
    pub fn is_reference(&self) -> bool {
        self.segments.iter().all(|s| {
            matches!(s, Segment::Names(n) if n.len() == 1)
                || matches!(s, Segment::Indexes(i) if i.len() == 1)
        })
    }

    /// True when the path yields at most one value (Jayway's "definite").
    pub fn is_definite(&self) -> bool {
        self.segments.iter().all(Segment::is_definite)
    }

    /// Evaluates the path. A definite path returns its one value; an indefinite one an array
    /// of matches. `None` when a definite path matches nothing.
    pub fn read(&self, scope: &Scope) -> Option<Value> {
        let start: &Value = match &self.root {
            Root::Input => scope.input,
            Root::Context => scope.context,
            Root::Variable(name) => scope.variables.get(name)?,
        };
        self.read_from(start, scope)
    }

    /// Evaluates the path's segments against `start` (the root value), ignoring its root kind.
    pub fn read_value(&self, start: &Value) -> Option<Value> {
        let vars = Map::new();
        let scope = Scope::new(start, &Value::Null, &vars);
        self.read_from(start, &scope)
    }

    fn read_from(&self, start: &Value, scope: &Scope) -> Option<Value> {
        // Matches are borrowed from the document; only values built on the way (multi-property
        // objects, lengths) are owned. Results are cloned once, at the end.
        let mut current: Vec<Cow<'_, Value>> = vec![Cow::Borrowed(start)];
        let mut definite = true;
        for seg in &self.segments {
            if let Segment::Length = seg {
                let len = if definite {
                    match current.first()?.as_ref() {
                        Value::Array(a) => a.len(),
                        Value::Object(o) => o.len(),
                        Value::String(s) => s.chars().count(),
                        _ => return None,
                    }
                } else {
                    current.len()
                };
                current = vec![Cow::Owned(Value::from(len))];
                definite = true;
                continue;
            }
            definite &= seg.is_definite();
            let mut next = Vec::new();
            for v in current {
                match v {
                    Cow::Borrowed(r) => apply(seg, r, scope, &mut next),
                    Cow::Owned(o) => {
                        let mut tmp = Vec::new();
                        apply(seg, &o, scope, &mut tmp);
                        next.extend(tmp.into_iter().map(|c| Cow::Owned(c.into_owned())));
                    }
                }
            }
            current = next;
        }
        if definite {
            current.into_iter().next().map(Cow::into_owned)
        } else {
            Some(Value::Array(
                current.into_iter().map(Cow::into_owned).collect(),
            ))
        }
    }

    /// Reads the path as `InputPath`, `OutputPath` or `ItemsPath` do: a path that matches
    /// nothing is the `States.Runtime` error AWS reports, e.g.
    /// `Invalid path '$.x' : No results for path: $['x']`.
    pub fn select(&self, scope: &Scope) -> Result<Value, DataError> {
        self.read(scope).ok_or_else(|| {
            DataError::runtime(format!(
                "Invalid path '{}' : No results for path: {}",
                self.text,
                self.normalized()
            ))
        })
    }

    /// AWS's (Jayway's) rendering used in causes, e.g. `$['NoSuchInputPath']`.
    pub fn normalized(&self) -> String {
        let mut out = match &self.root {
            Root::Input => "$".to_owned(),
            Root::Context => "$$".to_owned(),
            Root::Variable(n) => format!("${n}"),
        };
        for seg in &self.segments {
            render(seg, &mut out);
        }
        out
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn render(seg: &Segment, out: &mut String) {
    match seg {
        Segment::Names(n) => {
            let names: Vec<String> = n.iter().map(|s| format!("'{s}'")).collect();
            out.push_str(&format!("[{}]", names.join(",")));
        }
        Segment::Indexes(i) => {
            let idx: Vec<String> = i.iter().map(|x| x.to_string()).collect();
            out.push_str(&format!("[{}]", idx.join(",")));
        }
        Segment::Wildcard => out.push_str("[*]"),
        Segment::Slice(a, b, c) => {
            out.push('[');
            if let Some(a) = a {
                out.push_str(&a.to_string());
            }
            out.push(':');
            if let Some(b) = b {
                out.push_str(&b.to_string());
            }
            if let Some(c) = c {
                out.push(':');
                out.push_str(&c.to_string());
            }
            out.push(']');
        }
        Segment::Filter(_) => out.push_str("[?]"),
        Segment::Deep(inner) => {
            out.push_str("..");
            render(inner, out);
        }
        Segment::Length => out.push_str(".length()"),
    }
}

fn norm_index(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let j = if i < 0 { len + i } else { i };
    (0..len).contains(&j).then_some(j as usize)
}

fn apply<'a>(seg: &Segment, v: &'a Value, scope: &Scope, out: &mut Vec<Cow<'a, Value>>) {
    match seg {
        Segment::Names(names) => {
            if let Value::Object(o) = v {
                if names.len() == 1 {
                    if let Some(x) = o.get(&names[0]) {
                        out.push(Cow::Borrowed(x));
                    }
                } else {
                    // Jayway merges a multi-property selection into one object.
                    let mut m = Map::new();
                    for n in names {
                        if let Some(x) = o.get(n) {
                            m.insert(n.clone(), x.clone());
                        }
                    }
                    out.push(Cow::Owned(Value::Object(m)));
                }
            }
        }
        Segment::Indexes(idx) => {
            if let Value::Array(a) = v {
                for i in idx {
                    if let Some(j) = norm_index(*i, a.len()) {
                        out.push(Cow::Borrowed(&a[j]));
                    }
                }
            }
        }
        Segment::Wildcard => match v {
            Value::Array(a) => out.extend(a.iter().map(Cow::Borrowed)),
            Value::Object(o) => out.extend(o.values().map(Cow::Borrowed)),
            _ => {}
        },
        Segment::Slice(start, end, step) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let step = step.unwrap_or(1);
                if step <= 0 {
                    return;
                }
                let clamp = |x: i64| -> i64 {
                    let x = if x < 0 { len + x } else { x };
                    x.clamp(0, len)
                };
                let s = start.map(clamp).unwrap_or(0);
                let e = end.map(clamp).unwrap_or(len);
                let mut i = s;
                while i < e {
                    out.push(Cow::Borrowed(&a[i as usize]));
                    i = i.saturating_add(step);
                }
            }
        }
        Segment::Filter(expr) => match v {
            Value::Array(a) => {
                for item in a {
                    if expr.test(item, scope) {
                        out.push(Cow::Borrowed(item));
                    }
                }
            }
            Value::Object(_) if expr.test(v, scope) => out.push(Cow::Borrowed(v)),
            _ => {}
        },
        Segment::Deep(inner) => deep(inner, v, scope, out),
        Segment::Length => {}
    }
}

/// `..`: applies `inner` at `v` and at every descendant, in Jayway's order (a node's own
/// matches first, then each child's subtree in document order).
fn deep<'a>(inner: &Segment, v: &'a Value, scope: &Scope, out: &mut Vec<Cow<'a, Value>>) {
    apply(inner, v, scope, out);
    match v {
        Value::Array(a) => a.iter().for_each(|x| deep(inner, x, scope, out)),
        Value::Object(o) => o.values().for_each(|x| deep(inner, x, scope, out)),
        _ => {}
    }
}

/// `ResultPath` semantics: writes `value` into `target` at a Reference Path, creating objects
/// on the way; `$` replaces the whole target.
///
/// Fails with `States.ResultPathMatchFailure` when a step of the path meets a value that is not
/// an object (or, for `[n]`, not an array long enough), and with `States.Runtime` when the path
/// is not a Reference Path on `$`.
pub fn write(target: Value, path: &JsonPath, value: Value) -> Result<Value, DataError> {
    if path.root != Root::Input {
        return Err(DataError::runtime(format!(
            "The ResultPath '{}' must start with '$' and refer to the state input",
            path.text
        )));
    }
    if !path.is_reference() {
        return Err(DataError::runtime(format!(
            "The ResultPath '{}' is not a Reference Path (no wildcards, filters, slices, unions or deep scans)",
            path.text
        )));
    }
    if path.segments.is_empty() {
        return Ok(value);
    }
    let mut target = target;
    let original = target.clone();
    let mut slot = &mut target;
    for (k, seg) in path.segments.iter().enumerate() {
        let fail = || DataError {
            error: "States.ResultPathMatchFailure".to_owned(),
            cause: format!(
                "Unable to apply ResultPath '{}' to input '{}'",
                path.text,
                to_json(&original)
            ),
        };
        match seg {
            Segment::Names(n) => {
                if slot.is_null() && k > 0 {
                    *slot = Value::Object(Map::new());
                }
                let Value::Object(o) = slot else {
                    return Err(fail());
                };
                slot = o.entry(n[0].clone()).or_insert(Value::Null);
            }
            Segment::Indexes(i) => {
                let Value::Array(a) = slot else {
                    return Err(fail());
                };
                let Some(j) = norm_index(i[0], a.len()) else {
                    return Err(fail());
                };
                slot = &mut a[j];
            }
            _ => return Err(fail()),
        }
    }
    *slot = value;
    Ok(target)
}

// ---------------------------------------------------------------------------------------------
// Filter expressions

#[cfg(test)]
mod tests;
