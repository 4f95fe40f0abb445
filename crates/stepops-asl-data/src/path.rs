//! JSONPath as AWS Step Functions evaluates it (Jayway semantics) and `ResultPath` writes.
//!
//! Supported: `$` (input), `$$` (context object), `$name` (variables); `.name`, `['name']`,
//! `["name"]`, `[0]`, `[-1]`, `[0,2]`, `['a','b']`, `[*]`, `.*`, `[a:b:c]`, `..name`, `..*`,
//! `..[…]`, filters `[?(…)]` with `&&`, `||`, `!`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~`,
//! `in`, `nin`, `empty`, and a trailing `.length()`.
//!
//! A *definite* path (no wildcard, deep scan, slice, filter, union) yields one value or nothing;
//! an *indefinite* one always yields an array of its matches (possibly empty).

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::{DataError, Map, Scope, Value, to_json};

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

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `@.x…` (relative) or `$.x…` (absolute) path.
    Path {
        relative: bool,
        path: JsonPath,
    },
    Literal(Value),
    /// `/pattern/flags`.
    Regex(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// Bare operand: existence (paths) or truthiness (literal booleans).
    Exists(Operand),
    Cmp(Operand, CmpOp, Operand),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Regex,
    In,
    Nin,
    Empty,
    Size,
}

impl Operand {
    fn eval(&self, current: &Value, scope: &Scope) -> Option<Value> {
        match self {
            Operand::Path { relative, path } => {
                if *relative {
                    path.read_from(current, scope)
                } else {
                    path.read(scope)
                }
            }
            Operand::Literal(v) => Some(v.clone()),
            Operand::Regex(r) => Some(Value::String(r.clone())),
        }
    }
}

impl Expr {
    fn test(&self, current: &Value, scope: &Scope) -> bool {
        match self {
            Expr::Or(a, b) => a.test(current, scope) || b.test(current, scope),
            Expr::And(a, b) => a.test(current, scope) && b.test(current, scope),
            Expr::Not(a) => !a.test(current, scope),
            Expr::Exists(op) => match op {
                Operand::Literal(Value::Bool(b)) => *b,
                Operand::Literal(_) | Operand::Regex(_) => true,
                Operand::Path { .. } => match op.eval(current, scope) {
                    None => false,
                    Some(Value::Array(a)) if !op_is_definite(op) => !a.is_empty(),
                    Some(_) => true,
                },
            },
            Expr::Cmp(l, op, r) => {
                let Some(lv) = l.eval(current, scope) else {
                    // Jayway: a missing value equals nothing, so only `!=` holds.
                    return *op == CmpOp::Ne;
                };
                let rv = r.eval(current, scope);
                compare(&lv, *op, rv.as_ref(), r)
            }
        }
    }
}

fn op_is_definite(op: &Operand) -> bool {
    match op {
        Operand::Path { path, .. } => path.is_definite(),
        _ => true,
    }
}

/// Jayway-like ordering: numbers by value, strings lexicographically; other pairs unordered.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Equality with numbers compared by value.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn compare(l: &Value, op: CmpOp, r: Option<&Value>, r_op: &Operand) -> bool {
    match op {
        CmpOp::Eq => r.is_some_and(|r| json_eq(l, r)),
        CmpOp::Ne => !r.is_some_and(|r| json_eq(l, r)),
        CmpOp::Lt => r.and_then(|r| order(l, r)) == Some(Ordering::Less),
        CmpOp::Le => matches!(
            r.and_then(|r| order(l, r)),
            Some(Ordering::Less | Ordering::Equal)
        ),
        CmpOp::Gt => r.and_then(|r| order(l, r)) == Some(Ordering::Greater),
        CmpOp::Ge => matches!(
            r.and_then(|r| order(l, r)),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        CmpOp::Regex => {
            let (Value::String(s), Operand::Regex(pattern)) = (l, r_op) else {
                return false;
            };
            regex::Regex::new(pattern).is_ok_and(|re| re.is_match(s))
        }
        CmpOp::In | CmpOp::Nin => {
            let found = match r {
                Some(Value::Array(a)) => a.iter().any(|x| json_eq(l, x)),
                _ => false,
            };
            (op == CmpOp::In) == found
        }
        CmpOp::Empty => {
            let empty = match l {
                Value::Array(a) => a.is_empty(),
                Value::String(s) => s.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => return false,
            };
            r == Some(&Value::Bool(empty))
        }
        CmpOp::Size => {
            let n = match l {
                Value::Array(a) => a.len(),
                Value::String(s) => s.chars().count(),
                _ => return false,
            };
            r.is_some_and(|r| json_eq(&Value::from(n), r))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    _text: &'a str,
}

type Parsed = (Root, Vec<Segment>);

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            chars: text.chars().collect(),
            pos: 0,
            _text: text,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.pos + k).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(x) => format!("expected '{c}' at position {}, found '{x}'", self.pos),
                None => format!("expected '{c}' at the end"),
            })
        }
    }

    fn path(&mut self) -> Result<Parsed, String> {
        if !self.eat('$') {
            return Err("a path must start with '$'".to_owned());
        }
        let root = if self.eat('$') {
            Root::Context
        } else if self.peek().is_some_and(is_name_start) {
            Root::Variable(self.name())
        } else {
            Root::Input
        };
        let segments = self.segments(false)?;
        if self.pos != self.chars.len() {
            return Err(format!(
                "unexpected '{}' at position {}",
                self.chars[self.pos], self.pos
            ));
        }
        Ok((root, segments))
    }

    /// Segments until the end (or, inside a filter, until a character that cannot continue a path).
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, String> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some('.') => {
                    if self.peek_at(1) == Some('.') {
                        self.pos += 2;
                        let inner = if self.peek() == Some('[') {
                            self.bracket()?
                        } else if self.eat('*') {
                            Segment::Wildcard
                        } else {
                            let n = self.dot_name(in_filter);
                            if n.is_empty() {
                                return Err("a name must follow '..'".to_owned());
                            }
                            Segment::Names(vec![n])
                        };
                        segs.push(Segment::Deep(Box::new(inner)));
                    } else {
                        self.pos += 1;
                        if self.eat('*') {
                            segs.push(Segment::Wildcard);
                        } else if self.peek() == Some('[') {
                            // `$.['a']` is accepted by Jayway as `$['a']`.
                            segs.push(self.bracket()?);
                        } else {
                            let n = self.dot_name(in_filter);
                            if n.is_empty() {
                                return Err(format!(
                                    "a name must follow '.' at position {}",
                                    self.pos
                                ));
                            }
                            if n == "length"
                                && self.peek() == Some('(')
                                && self.peek_at(1) == Some(')')
                            {
                                self.pos += 2;
                                segs.push(Segment::Length);
                            } else if self.peek() == Some('(') {
                                return Err(format!("unsupported function '{n}()'"));
                            } else {
                                segs.push(Segment::Names(vec![n]));
                            }
                        }
                    }
                }
                Some('[') => segs.push(self.bracket()?),
                Some(c) if in_filter => {
                    let _ = c;
                    break;
                }
                Some(c) => return Err(format!("unexpected '{c}' at position {}", self.pos)),
            }
        }
        Ok(segs)
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// A name after `.`: anything up to `.`, `[`, or (in filters) an operator/space/paren.
    fn dot_name(&mut self, in_filter: bool) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            // Jayway: blanks need bracket notation (`['a b']`); they end a name in filters.
            let stop = c == '.'
                || c == '['
                || c == ']'
                || c == '('
                || c.is_whitespace()
                || (in_filter && matches!(c, ')' | '=' | '!' | '<' | '>' | '&' | '|' | ','));
            if stop {
                break;
            }
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn bracket(&mut self) -> Result<Segment, String> {
        self.expect('[')?;
        self.skip_ws();
        let seg = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Segment::Wildcard
            }
            Some('?') => {
                self.pos += 1;
                self.skip_ws();
                self.expect('(')?;
                let e = self.expr_or()?;
                self.skip_ws();
                self.expect(')')?;
                Segment::Filter(Box::new(e))
            }
            Some('\'') | Some('"') => {
                let mut names = vec![self.quoted()?];
                loop {
                    self.skip_ws();
                    if !self.eat(',') {
                        break;
                    }
                    self.skip_ws();
                    names.push(self.quoted()?);
                }
                Segment::Names(names)
            }
            Some(c) if c == '-' || c == ':' || c.is_ascii_digit() => {
                let first = self.opt_int()?;
                self.skip_ws();
                if self.eat(':') {
                    let end = self.opt_int()?;
                    self.skip_ws();
                    let step = if self.eat(':') { self.opt_int()? } else { None };
                    Segment::Slice(first, end, step)
                } else {
                    let mut idx = vec![first.ok_or("expected an index")?];
                    loop {
                        self.skip_ws();
                        if !self.eat(',') {
                            break;
                        }
                        self.skip_ws();
                        idx.push(self.opt_int()?.ok_or("expected an index after ','")?);
                    }
                    Segment::Indexes(idx)
                }
            }
            Some(c) => {
                return Err(format!(
                    "unexpected '{c}' in brackets at position {}",
                    self.pos
                ));
            }
            None => return Err("unterminated '['".to_owned()),
        };
        self.skip_ws();
        self.expect(']')?;
        Ok(seg)
    }

    fn opt_int(&mut self) -> Result<Option<i64>, String> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let s: String = self.chars[start..self.pos].iter().collect();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<i64>()
            .map(Some)
            .map_err(|_| format!("invalid index '{s}'"))
    }

    /// A quoted name; a backslash escapes only the quote character and itself.
    fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or("expected a quote")?;
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted name".to_owned()),
                Some('\\') if self.peek_at(1) == Some(q) => {
                    s.push(q);
                    self.pos += 2;
                }
                Some(c) if c == q => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn expr_or(&mut self) -> Result<Expr, String> {
        let mut left = self.expr_and()?;
        loop {
            self.skip_ws();
            if self.peek() == Some('|') && self.peek_at(1) == Some('|') {
                self.pos += 2;
                let right = self.expr_and()?;
                left = Expr::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn expr_and(&mut self) -> Result<Expr, String> {
        let mut left = self.expr_unary()?;
        loop {
            self.skip_ws();
            if self.peek() == Some('&') && self.peek_at(1) == Some('&') {
                self.pos += 2;
                let right = self.expr_unary()?;
                left = Expr::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn expr_unary(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        if self.peek() == Some('!') && self.peek_at(1) != Some('=') {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.expr_unary()?)));
        }
        if self.peek() == Some('(') {
            self.pos += 1;
            let e = self.expr_or()?;
            self.skip_ws();
            self.expect(')')?;
            return Ok(e);
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = if self.starts_with("==") {
            Some((CmpOp::Eq, 2))
        } else if self.starts_with("!=") {
            Some((CmpOp::Ne, 2))
        } else if self.starts_with("<=") {
            Some((CmpOp::Le, 2))
        } else if self.starts_with(">=") {
            Some((CmpOp::Ge, 2))
        } else if self.starts_with("=~") {
            Some((CmpOp::Regex, 2))
        } else if self.starts_with("<") {
            Some((CmpOp::Lt, 1))
        } else if self.starts_with(">") {
            Some((CmpOp::Gt, 1))
        } else if self.starts_with_word("nin") {
            Some((CmpOp::Nin, 3))
        } else if self.starts_with_word("in") {
            Some((CmpOp::In, 2))
        } else if self.starts_with_word("empty") {
            Some((CmpOp::Empty, 5))
        } else if self.starts_with_word("size") {
            Some((CmpOp::Size, 4))
        } else {
            None
        };
        let Some((op, n)) = op else {
            return Ok(Expr::Exists(left));
        };
        self.pos += n;
        self.skip_ws();
        let right = self.operand()?;
        Ok(Expr::Cmp(left, op, right))
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(k, c)| self.peek_at(k) == Some(c))
    }

    fn starts_with_word(&self, s: &str) -> bool {
        self.starts_with(s) && !self.peek_at(s.len()).is_some_and(is_name_char)
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some('@') => {
                self.pos += 1;
                let segs = self.segments(true)?;
                Ok(Operand::Path {
                    relative: true,
                    path: JsonPath {
                        text: "@".to_owned(),
                        root: Root::Input,
                        segments: segs,
                    },
                })
            }
            Some('$') => {
                self.pos += 1;
                let root = if self.eat('$') {
                    Root::Context
                } else if self.peek().is_some_and(is_name_start) {
                    Root::Variable(self.name())
                } else {
                    Root::Input
                };
                let segs = self.segments(true)?;
                Ok(Operand::Path {
                    relative: false,
                    path: JsonPath {
                        text: "$".to_owned(),
                        root,
                        segments: segs,
                    },
                })
            }
            Some('\'') | Some('"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some('/') => {
                self.pos += 1;
                let mut pat = String::new();
                loop {
                    match self.peek() {
                        None => return Err("unterminated regular expression".to_owned()),
                        Some('\\') if self.peek_at(1) == Some('/') => {
                            pat.push('/');
                            self.pos += 2;
                        }
                        Some('/') => {
                            self.pos += 1;
                            break;
                        }
                        Some(c) => {
                            pat.push(c);
                            self.pos += 1;
                        }
                    }
                }
                let mut flags = String::new();
                while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    flags.push(self.chars[self.pos]);
                    self.pos += 1;
                }
                let pattern = if flags.is_empty() {
                    format!("^(?:{pat})$")
                } else {
                    format!("(?{flags})^(?:{pat})$")
                };
                regex::Regex::new(&pattern)
                    .map_err(|e| format!("invalid regular expression: {e}"))?;
                Ok(Operand::Regex(pattern))
            }
            Some('[') | Some('{') => {
                // A JSON literal (array or object): find its end by bracket matching.
                let start = self.pos;
                let mut depth = 0i32;
                let mut in_str: Option<char> = None;
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if let Some(q) = in_str {
                        if c == '\\' {
                            self.pos += 1;
                        } else if c == q {
                            in_str = None;
                        }
                        continue;
                    }
                    match c {
                        '"' | '\'' => in_str = Some(c),
                        '[' | '{' => depth += 1,
                        ']' | '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                let text = text.replace('\'', "\"");
                serde_json::from_str(&text)
                    .map(Operand::Literal)
                    .map_err(|e| format!("invalid literal '{text}': {e}"))
            }
            Some(_) => {
                let start = self.pos;
                while self.peek().is_some_and(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.' | '_')
                }) {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                match text.as_str() {
                    "true" => Ok(Operand::Literal(Value::Bool(true))),
                    "false" => Ok(Operand::Literal(Value::Bool(false))),
                    "null" => Ok(Operand::Literal(Value::Null)),
                    _ => serde_json::from_str::<Value>(&text)
                        .ok()
                        .filter(Value::is_number)
                        .map(Operand::Literal)
                        .ok_or_else(|| format!("invalid filter operand '{text}'")),
                }
            }
            None => Err("unexpected end of filter".to_owned()),
        }
    }
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests;
