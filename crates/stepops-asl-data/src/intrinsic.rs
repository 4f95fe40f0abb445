//! Intrinsic functions (`States.*`) in JSONPath mode.
//!
//! An expression is `States.Name(arg, …)`; arguments are string literals in single quotes
//! (escapes `\'`, `\{`, `\}`, `\\`), numbers, `true`/`false`/`null`, paths (`$…`, `$$…`,
//! `$var…`) or nested intrinsic calls.

use base64::Engine as _;
use md5::Digest as _;
use rand::{Rng as _, SeedableRng as _};

use crate::path::JsonPath;
use crate::{DataError, Map, Scope, Value, to_json};

mod parser;

use parser::Parser;

/// Maximum length (characters) of the string arguments of Base64Encode/Decode and Hash.
pub const MAX_STRING_ARGUMENT: usize = 10_000;
/// Maximum number of items States.ArrayRange produces.
pub const MAX_RANGE_ITEMS: usize = 1_000;

/// One argument of a call.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A string literal: the unescaped value and the raw text between the quotes (Format needs
    /// the raw text to tell `\{` from `{`).
    Str {
        value: String,
        raw: String,
    },
    Literal(Value),
    Path(JsonPath),
    Call(Call),
}

/// A parsed call.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    name: String,
    args: Vec<Arg>,
}

const FUNCTIONS: &[&str] = &[
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayPartition",
    "States.ArrayContains",
    "States.ArrayRange",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayUnique",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.JsonMerge",
    "States.MathRandom",
    "States.MathAdd",
    "States.StringSplit",
    "States.UUID",
];

/// Whether the text is an intrinsic function call (`States.Name(…)`).
pub fn is_intrinsic(expression: &str) -> bool {
    let t = expression.trim();
    t.starts_with("States.") && t.ends_with(')') && t.contains('(')
}

/// Parses and evaluates one intrinsic call, e.g. `States.Format('{} {}', $.a, $$.b)`.
pub fn evaluate(expression: &str, scope: &Scope) -> Result<Value, DataError> {
    evaluate_for_field(expression, None, scope)
}

/// Validates an intrinsic call's syntax (function names, argument syntax, paths).
pub fn validate(expression: &str) -> Result<(), String> {
    parse(expression).map(|_| ())
}

/// Evaluates for a field (`field` is e.g. `"value.$"` or `"CausePath"`), named in error causes
/// as AWS names it: "The JSONPath '$.x' specified for the field 'CausePath' could not be found…".
pub fn evaluate_for_field(
    expression: &str,
    field: Option<&str>,
    scope: &Scope,
) -> Result<Value, DataError> {
    let call = parse(expression).map_err(|e| {
        DataError::intrinsic(format!(
            "The value of the field '{}' is not a valid intrinsic function call: {e}",
            field.unwrap_or("(intrinsic)")
        ))
    })?;
    let ctx = EvalCtx { field, scope };
    ctx.call(&call)
}

fn parse(expression: &str) -> Result<Call, String> {
    let mut p = Parser {
        c: expression.chars().collect(),
        i: 0,
    };
    p.ws();
    let call = p.call()?;
    p.ws();
    if p.i != p.c.len() {
        return Err(format!(
            "unexpected text after the call at position {}: '{}'",
            p.i,
            p.c[p.i..].iter().collect::<String>()
        ));
    }
    Ok(call)
}

struct EvalCtx<'s, 'a> {
    field: Option<&'s str>,
    scope: &'s Scope<'a>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl EvalCtx<'_, '_> {
    fn arg(&self, a: &Arg) -> Result<Value, DataError> {
        match a {
            Arg::Str { value, .. } => Ok(Value::String(value.clone())),
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Call(c) => self.call(c),
            Arg::Path(p) => p.read(self.scope).ok_or_else(|| match self.field {
                Some(f) => crate::template::path_not_found(p, f, self.scope),
                None => DataError::runtime(format!(
                    "The JSONPath '{}' in the intrinsic function call could not be found in the input '{}'",
                    p.as_str(),
                    to_json(self.scope.input)
                )),
            }),
        }
    }

    fn fail(&self, call: &Call, msg: impl std::fmt::Display) -> DataError {
        DataError::intrinsic(format!(
            "Invalid arguments in the intrinsic function call {}{}: {msg}",
            call.name,
            self.field
                .map(|f| format!(" for the field '{f}'"))
                .unwrap_or_default()
        ))
    }

    fn arity(&self, call: &Call, min: usize, max: usize) -> Result<Vec<Value>, DataError> {
        let n = call.args.len();
        if n < min || n > max {
            let expected = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(self.fail(
                call,
                format!("the function takes {expected} argument(s), {n} given"),
            ));
        }
        call.args.iter().map(|a| self.arg(a)).collect()
    }

    fn string<'v>(&self, call: &Call, v: &'v Value, what: &str) -> Result<&'v str, DataError> {
        v.as_str().ok_or_else(|| {
            self.fail(
                call,
                format!(
                    "{what} must be a string, got {} ({})",
                    type_name(v),
                    to_json(v)
                ),
            )
        })
    }

    fn array<'v>(
        &self,
        call: &Call,
        v: &'v Value,
        what: &str,
    ) -> Result<&'v Vec<Value>, DataError> {
        v.as_array().ok_or_else(|| {
            self.fail(
                call,
                format!(
                    "{what} must be an array, got {} ({})",
                    type_name(v),
                    to_json(v)
                ),
            )
        })
    }

    /// An integer argument; AWS rounds a number with a fraction half up (Java `Math.round`).
    fn int(&self, call: &Call, v: &Value, what: &str) -> Result<i64, DataError> {
        let Value::Number(n) = v else {
            return Err(self.fail(
                call,
                format!(
                    "{what} must be a number, got {} ({})",
                    type_name(v),
                    to_json(v)
                ),
            ));
        };
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        let f = n.as_f64().unwrap_or(f64::NAN);
        if !f.is_finite() || f.abs() > 9.0e15 {
            return Err(self.fail(call, format!("{what} is out of range: {n}")));
        }
        Ok((f + 0.5).floor() as i64)
    }

    fn call(&self, call: &Call) -> Result<Value, DataError> {
        match call.name.as_str() {
            "States.Format" => self.format(call),
            "States.StringToJson" => {
                let a = self.arity(call, 1, 1)?;
                let s = self.string(call, &a[0], "the argument")?;
                if s.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(s).map_err(|e| {
                    self.fail(call, format!("the string is not valid JSON ({e}): {s}"))
                })
            }
            "States.JsonToString" => {
                let a = self.arity(call, 1, 1)?;
                Ok(Value::String(to_json(&a[0])))
            }
            "States.Array" => Ok(Value::Array(self.arity(call, 0, usize::MAX)?)),
            "States.ArrayPartition" => {
                let a = self.arity(call, 2, 2)?;
                let arr = self.array(call, &a[0], "the first argument")?;
                let size = self.int(call, &a[1], "the chunk size")?;
                if size <= 0 {
                    return Err(self.fail(
                        call,
                        format!("the chunk size must be greater than 0, got {size}"),
                    ));
                }
                Ok(Value::Array(
                    arr.chunks(size as usize)
                        .map(|c| Value::Array(c.to_vec()))
                        .collect(),
                ))
            }
            "States.ArrayContains" => {
                let a = self.arity(call, 2, 2)?;
                let arr = self.array(call, &a[0], "the first argument")?;
                Ok(Value::Bool(
                    arr.iter().any(|x| crate::path::json_eq(x, &a[1])),
                ))
            }
            "States.ArrayRange" => {
                let a = self.arity(call, 3, 3)?;
                let start = self.int(call, &a[0], "the start")?;
                let end = self.int(call, &a[1], "the end")?;
                let step = self.int(call, &a[2], "the step")?;
                if step == 0 {
                    return Err(self.fail(call, "the step must not be 0"));
                }
                let count: i128 = if (step > 0 && start > end) || (step < 0 && start < end) {
                    0
                } else {
                    (end as i128 - start as i128) / step as i128 + 1
                };
                if count > MAX_RANGE_ITEMS as i128 {
                    return Err(self.fail(
                        call,
                        format!(
                            "the range has {count} items, more than the maximum of {MAX_RANGE_ITEMS}"
                        ),
                    ));
                }
                Ok(Value::Array(
                    // count <= 1000, so every item lies between start and end: no overflow.
                    (0..count as i64)
                        .map(|k| Value::from(start + k * step))
                        .collect(),
                ))
            }
            "States.ArrayGetItem" => {
                let a = self.arity(call, 2, 2)?;
                let arr = self.array(call, &a[0], "the first argument")?;
                let idx = self.int(call, &a[1], "the index")?;
                if idx < 0 || idx as usize >= arr.len() {
                    return Err(self.fail(
                        call,
                        format!(
                            "the index {idx} is out of bounds for an array of {} item(s)",
                            arr.len()
                        ),
                    ));
                }
                Ok(arr[idx as usize].clone())
            }
            "States.ArrayLength" => {
                let a = self.arity(call, 1, 1)?;
                Ok(Value::from(self.array(call, &a[0], "the argument")?.len()))
            }
            "States.ArrayUnique" => {
                let a = self.arity(call, 1, 1)?;
                let arr = self.array(call, &a[0], "the argument")?;
                let mut out: Vec<Value> = Vec::new();
                for x in arr {
                    if !out.iter().any(|y| crate::path::json_eq(x, y)) {
                        out.push(x.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            "States.Base64Encode" => {
                let a = self.arity(call, 1, 1)?;
                let s = self.string(call, &a[0], "the argument")?;
                self.limit(call, s)?;
                Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
                ))
            }
            "States.Base64Decode" => {
                let a = self.arity(call, 1, 1)?;
                let s = self.string(call, &a[0], "the argument")?;
                self.limit(call, s)?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_err(|e| {
                        self.fail(call, format!("the argument is not valid base64: {e}"))
                    })?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| self.fail(call, "the decoded data is not UTF-8 text"))
            }
            "States.Hash" => {
                let a = self.arity(call, 2, 2)?;
                let data = match &a[0] {
                    Value::String(s) => s.clone(),
                    other => to_json(other),
                };
                self.limit(call, &data)?;
                let alg = self.string(call, &a[1], "the algorithm")?;
                let bytes = data.as_bytes();
                let hex = match alg {
                    "MD5" => hex(&md5::Md5::digest(bytes)),
                    "SHA-1" => hex(&sha1::Sha1::digest(bytes)),
                    "SHA-256" => hex(&sha2::Sha256::digest(bytes)),
                    "SHA-384" => hex(&sha2::Sha384::digest(bytes)),
                    "SHA-512" => hex(&sha2::Sha512::digest(bytes)),
                    other => {
                        return Err(self.fail(
                            call,
                            format!(
                                "the hash algorithm '{other}' is not supported; use MD5, SHA-1, SHA-256, SHA-384 or SHA-512"
                            ),
                        ));
                    }
                };
                Ok(Value::String(hex))
            }
            "States.JsonMerge" => {
                let a = self.arity(call, 3, 3)?;
                let (Value::Object(x), Value::Object(y)) = (&a[0], &a[1]) else {
                    return Err(self.fail(call, "the first two arguments must be JSON objects"));
                };
                match &a[2] {
                    Value::Bool(false) => {}
                    Value::Bool(true) => {
                        return Err(self.fail(
                            call,
                            "deep merging is not supported: the third argument must be false",
                        ));
                    }
                    other => {
                        return Err(self.fail(
                            call,
                            format!(
                                "the third argument must be the boolean false, got {}",
                                to_json(other)
                            ),
                        ));
                    }
                }
                let mut m: Map<String, Value> = x.clone();
                for (k, v) in y {
                    m.insert(k.clone(), v.clone());
                }
                Ok(Value::Object(m))
            }
            "States.MathRandom" => {
                let a = self.arity(call, 2, 3)?;
                let start = self.int(call, &a[0], "the start")?;
                let end = self.int(call, &a[1], "the end")?;
                if start >= end {
                    return Err(self.fail(
                        call,
                        format!("the start ({start}) must be less than the end ({end})"),
                    ));
                }
                let n = if let Some(seed) = a.get(2) {
                    let seed = self.int(call, seed, "the seed")?;
                    rand::rngs::StdRng::seed_from_u64(seed as u64).random_range(start..end)
                } else {
                    rand::rng().random_range(start..end)
                };
                Ok(Value::from(n))
            }
            "States.MathAdd" => {
                let a = self.arity(call, 2, 2)?;
                let x = self.int(call, &a[0], "the first argument")?;
                let y = self.int(call, &a[1], "the second argument")?;
                let range = i32::MIN as i64..=i32::MAX as i64;
                if !range.contains(&x) || !range.contains(&y) {
                    return Err(self.fail(
                        call,
                        "the arguments must be within the 32-bit integer range",
                    ));
                }
                Ok(Value::from(x + y))
            }
            "States.StringSplit" => {
                let a = self.arity(call, 2, 2)?;
                let s = self.string(call, &a[0], "the first argument")?;
                let d = self.string(call, &a[1], "the delimiter")?;
                let delims: Vec<char> = d.chars().collect();
                let parts: Vec<Value> = if delims.is_empty() {
                    vec![Value::String(s.to_owned())]
                } else {
                    s.split(|c: char| delims.contains(&c))
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_owned()))
                        .collect()
                };
                Ok(Value::Array(parts))
            }
            "States.UUID" => {
                self.arity(call, 0, 0)?;
                Ok(Value::String(uuid::Uuid::new_v4().to_string()))
            }
            other => Err(self.fail(call, format!("unknown function {other}"))),
        }
    }

    fn limit(&self, call: &Call, s: &str) -> Result<(), DataError> {
        let n = s.chars().count();
        if n > MAX_STRING_ARGUMENT {
            return Err(self.fail(
                call,
                format!(
                    "the input string has {n} characters, more than the maximum of {MAX_STRING_ARGUMENT}"
                ),
            ));
        }
        Ok(())
    }

    fn format(&self, call: &Call) -> Result<Value, DataError> {
        if call.args.is_empty() {
            return Err(self.fail(call, "the function takes at least 1 argument(s), 0 given"));
        }
        // The template: a literal keeps its escapes (`\{` is a literal brace); a path or call
        // value has none.
        let (template_raw, escaped) = match &call.args[0] {
            Arg::Str { raw, .. } => (raw.clone(), true),
            other => match self.arg(other)? {
                Value::String(s) => (s, false),
                v => {
                    return Err(self.fail(
                        call,
                        format!("the format string must be a string, got {}", type_name(&v)),
                    ));
                }
            },
        };
        let values: Vec<Value> = call.args[1..]
            .iter()
            .map(|a| self.arg(a))
            .collect::<Result<_, _>>()?;
        let chars: Vec<char> = template_raw.chars().collect();
        let mut out = String::new();
        let mut used = 0usize;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if escaped && c == '\\' && i + 1 < chars.len() {
                let n = chars[i + 1];
                match n {
                    '\'' | '\\' | '{' | '}' => out.push(n),
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                i += 2;
                continue;
            }
            if c == '{' && chars.get(i + 1) == Some(&'}') {
                let Some(v) = values.get(used) else {
                    return Err(self.fail(
                        call,
                        format!(
                            "the format string has more placeholders than the {} argument(s) given",
                            values.len()
                        ),
                    ));
                };
                out.push_str(&java_string(v));
                used += 1;
                i += 2;
                continue;
            }
            out.push(c);
            i += 1;
        }
        if used != values.len() {
            return Err(self.fail(
                call,
                format!(
                    "the format string has {used} placeholder(s) but {} argument(s) were given",
                    values.len()
                ),
            ));
        }
        Ok(Value::String(out))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How AWS (Java) renders a value in `States.Format`: strings raw, objects as `{k=v, …}`,
/// arrays as `[a, b]`.
fn java_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(java_string).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{k}={}", java_string(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => to_json(other),
    }
}

#[cfg(test)]
mod tests;
