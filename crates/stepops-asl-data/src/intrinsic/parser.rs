//! The intrinsic-function parser: `States.Name(arg, …)` to a call with literal, path and
//! nested-call arguments.

use super::*;

pub(super) struct Parser {
    pub(super) c: Vec<char>,
    pub(super) i: usize,
}

impl Parser {
    pub(super) fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    pub(super) fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    pub(super) fn call(&mut self) -> Result<Call, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            self.i += 1;
        }
        let name: String = self.c[start..self.i].iter().collect();
        if !FUNCTIONS.contains(&name.as_str()) {
            return Err(format!("unknown intrinsic function '{name}'"));
        }
        self.ws();
        if self.peek() != Some('(') {
            return Err(format!("expected '(' after '{name}'"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.peek() == Some(')') {
            self.i += 1;
            return Ok(Call { name, args });
        }
        loop {
            self.ws();
            args.push(self.arg()?);
            self.ws();
            match self.peek() {
                Some(',') => self.i += 1,
                Some(')') => {
                    self.i += 1;
                    return Ok(Call { name, args });
                }
                Some(c) => return Err(format!("unexpected '{c}' in the arguments of {name}")),
                None => return Err(format!("missing ')' in the call of {name}")),
            }
        }
    }

    pub(super) fn arg(&mut self) -> Result<Arg, String> {
        match self.peek() {
            Some('\'') => {
                self.i += 1;
                let mut value = String::new();
                let mut raw = String::new();
                loop {
                    match self.peek() {
                        None => return Err("unterminated string literal".to_owned()),
                        Some('\\') => {
                            let next = self
                                .c
                                .get(self.i + 1)
                                .copied()
                                .ok_or("unterminated string literal")?;
                            raw.push('\\');
                            raw.push(next);
                            // `\'`, `\\`, `\{`, `\}` escape; other backslashes are kept.
                            match next {
                                '\'' | '\\' | '{' | '}' => value.push(next),
                                _ => {
                                    value.push('\\');
                                    value.push(next);
                                }
                            }
                            self.i += 2;
                        }
                        Some('\'') => {
                            self.i += 1;
                            return Ok(Arg::Str { value, raw });
                        }
                        Some(c) => {
                            value.push(c);
                            raw.push(c);
                            self.i += 1;
                        }
                    }
                }
            }
            Some('$') => {
                // A path runs to the next top-level ',' or ')' (brackets and quotes nest).
                let start = self.i;
                let mut depth = 0i32;
                let mut quote: Option<char> = None;
                while let Some(c) = self.peek() {
                    if let Some(q) = quote {
                        if c == '\\' {
                            self.i += 1;
                        } else if c == q {
                            quote = None;
                        }
                    } else {
                        match c {
                            '\'' | '"' => quote = Some(c),
                            '[' | '(' => depth += 1,
                            ']' => depth -= 1,
                            ')' if depth == 0 => break,
                            ')' => depth -= 1,
                            ',' if depth == 0 => break,
                            _ => {}
                        }
                    }
                    self.i += 1;
                }
                let text: String = self.c[start..self.i].iter().collect();
                let text = text.trim_end();
                JsonPath::parse(text)
                    .map(Arg::Path)
                    .map_err(|e| e.to_string())
            }
            Some('S') => Ok(Arg::Call(self.call()?)),
            Some(_) => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| !matches!(c, ',' | ')') && !c.is_whitespace())
                {
                    self.i += 1;
                }
                let text: String = self.c[start..self.i].iter().collect();
                match text.as_str() {
                    "true" => Ok(Arg::Literal(Value::Bool(true))),
                    "false" => Ok(Arg::Literal(Value::Bool(false))),
                    "null" => Ok(Arg::Literal(Value::Null)),
                    _ => serde_json::from_str::<Value>(&text)
                        .ok()
                        .filter(Value::is_number)
                        .map(Arg::Literal)
                        .ok_or_else(|| format!("invalid argument '{text}'")),
                }
            }
            None => Err("missing argument".to_owned()),
        }
    }
}
