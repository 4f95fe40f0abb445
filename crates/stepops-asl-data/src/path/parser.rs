//! The JSONPath parser: text to a root and segments, with AWS's error messages.

use super::filter::{CmpOp, Expr, Operand};
use super::*;

pub(super) struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    _text: &'a str,
}

pub(super) type Parsed = (Root, Vec<Segment>);

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Parser {
            chars: text.chars().collect(),
            pos: 0,
            _text: text,
        }
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.pos + k).copied()
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    pub(super) fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(x) => format!("expected '{c}' at position {}, found '{x}'", self.pos),
                None => format!("expected '{c}' at the end"),
            })
        }
    }

    pub(super) fn path(&mut self) -> Result<Parsed, String> {
        if !self.eat('$') {
            return Err("a path must start with '$'".to_owned());
        }
        let root = self.root();
        let segments = self.segments(false)?;
        if self.pos != self.chars.len() {
            return Err(format!(
                "unexpected '{}' at position {}",
                self.chars[self.pos], self.pos
            ));
        }
        Ok((root, segments))
    }

    /// What follows a `$`: `$` for the context object, a variable's name, or nothing (the input).
    fn root(&mut self) -> Root {
        if self.eat('$') {
            Root::Context
        } else if self.peek().is_some_and(is_name_start) {
            Root::Variable(self.name())
        } else {
            Root::Input
        }
    }

    /// `first`, then more items each after a `,` (blanks allowed around the commas).
    fn comma_separated<T>(
        &mut self,
        first: T,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut items = vec![first];
        loop {
            self.skip_ws();
            if !self.eat(',') {
                return Ok(items);
            }
            self.skip_ws();
            items.push(item(self)?);
        }
    }

    /// Segments until the end (or, inside a filter, until a character that cannot continue a path).
    pub(super) fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, String> {
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

    pub(super) fn name(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// A name after `.`: anything up to `.`, `[`, or (in filters) an operator/space/paren.
    pub(super) fn dot_name(&mut self, in_filter: bool) -> String {
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

    pub(super) fn bracket(&mut self) -> Result<Segment, String> {
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
                let first = self.quoted()?;
                Segment::Names(self.comma_separated(first, Self::quoted)?)
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
                    let first = first.ok_or("expected an index")?;
                    Segment::Indexes(self.comma_separated(first, |p| {
                        Ok(p.opt_int()?.ok_or("expected an index after ','")?)
                    })?)
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

    pub(super) fn opt_int(&mut self) -> Result<Option<i64>, String> {
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

    /// A quoted name; a backslash escapes only the quote character.
    pub(super) fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or("expected a quote")?;
        self.pos += 1;
        self.until(q, "unterminated quoted name")
    }

    /// The text up to the closing `end` (consumed); `\` before `end` stands for `end` itself.
    fn until(&mut self, end: char, unterminated: &str) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(unterminated.to_owned()),
                Some('\\') if self.peek_at(1) == Some(end) => {
                    s.push(end);
                    self.pos += 2;
                }
                Some(c) if c == end => {
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

    pub(super) fn expr_or(&mut self) -> Result<Expr, String> {
        self.binary("||", Self::expr_and, Expr::Or)
    }

    pub(super) fn expr_and(&mut self) -> Result<Expr, String> {
        self.binary("&&", Self::expr_unary, Expr::And)
    }

    /// A left-associative chain of `operand (op operand)*`.
    fn binary(
        &mut self,
        op: &str,
        operand: fn(&mut Self) -> Result<Expr, String>,
        combine: fn(Box<Expr>, Box<Expr>) -> Expr,
    ) -> Result<Expr, String> {
        let mut left = operand(self)?;
        loop {
            self.skip_ws();
            if !self.starts_with(op) {
                return Ok(left);
            }
            self.pos += op.len();
            let right = operand(self)?;
            left = combine(Box::new(left), Box::new(right));
        }
    }

    pub(super) fn expr_unary(&mut self) -> Result<Expr, String> {
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
        let op = COMPARISONS.iter().find(|(text, _, word)| {
            if *word {
                self.starts_with_word(text)
            } else {
                self.starts_with(text)
            }
        });
        let Some(&(text, op, _)) = op else {
            return Ok(Expr::Exists(left));
        };
        self.pos += text.len();
        self.skip_ws();
        let right = self.operand()?;
        Ok(Expr::Cmp(left, op, right))
    }

    pub(super) fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(k, c)| self.peek_at(k) == Some(c))
    }

    pub(super) fn starts_with_word(&self, s: &str) -> bool {
        self.starts_with(s) && !self.peek_at(s.len()).is_some_and(is_name_char)
    }

    pub(super) fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some(c @ ('@' | '$')) => {
                self.pos += 1;
                let relative = c == '@';
                let root = if relative { Root::Input } else { self.root() };
                let segments = self.segments(true)?;
                Ok(Operand::Path {
                    relative,
                    path: JsonPath {
                        text: c.to_string(),
                        root,
                        segments,
                    },
                })
            }
            Some('\'') | Some('"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some('/') => {
                self.pos += 1;
                let pat = self.until('/', "unterminated regular expression")?;
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

/// Filter comparison operators, longest first where one is a prefix of another; `true` marks a
/// word operator, which must not run on into a name.
const COMPARISONS: [(&str, CmpOp, bool); 11] = [
    ("==", CmpOp::Eq, false),
    ("!=", CmpOp::Ne, false),
    ("<=", CmpOp::Le, false),
    (">=", CmpOp::Ge, false),
    ("=~", CmpOp::Regex, false),
    ("<", CmpOp::Lt, false),
    (">", CmpOp::Gt, false),
    ("nin", CmpOp::Nin, true),
    ("in", CmpOp::In, true),
    ("empty", CmpOp::Empty, true),
    ("size", CmpOp::Size, true),
];

pub(super) fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}
