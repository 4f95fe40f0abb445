//! Choice rules (JSONPath mode).
//!
//! A rule is a comparison (`Variable` plus one operator, literal or `…Path` form), a type test
//! (`IsNull`, `IsPresent`, `IsNumeric`, `IsString`, `IsBoolean`, `IsTimestamp`) or a boolean
//! combination (`And`, `Or`, `Not`). As in AWS, a comparison whose operand has the wrong type
//! is false (never an error); a `Variable` (or `…Path` operand) that matches nothing is a
//! `States.Runtime` error, except for `IsPresent`.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};

use crate::path::JsonPath;
use crate::{DataError, Scope, Value, to_json};

/// A parsed Choice rule (top-level rules carry `Next`; nested ones in And/Or/Not do not).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    next: Option<String>,
    assign: Option<Value>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare {
        variable: JsonPath,
        op: Op,
        operand: Operand,
    },
    Test {
        variable: JsonPath,
        test: TypeTest,
        expected: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Literal(Value),
    Path(JsonPath),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    Matches,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Op {
    family: Family,
    cmp: Cmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeTest {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

const COMPARISONS: &[(&str, Family, Cmp)] = &[
    ("StringEquals", Family::String, Cmp::Eq),
    ("StringLessThan", Family::String, Cmp::Lt),
    ("StringGreaterThan", Family::String, Cmp::Gt),
    ("StringLessThanEquals", Family::String, Cmp::Le),
    ("StringGreaterThanEquals", Family::String, Cmp::Ge),
    ("StringMatches", Family::String, Cmp::Matches),
    ("NumericEquals", Family::Numeric, Cmp::Eq),
    ("NumericLessThan", Family::Numeric, Cmp::Lt),
    ("NumericGreaterThan", Family::Numeric, Cmp::Gt),
    ("NumericLessThanEquals", Family::Numeric, Cmp::Le),
    ("NumericGreaterThanEquals", Family::Numeric, Cmp::Ge),
    ("BooleanEquals", Family::Boolean, Cmp::Eq),
    ("TimestampEquals", Family::Timestamp, Cmp::Eq),
    ("TimestampLessThan", Family::Timestamp, Cmp::Lt),
    ("TimestampGreaterThan", Family::Timestamp, Cmp::Gt),
    ("TimestampLessThanEquals", Family::Timestamp, Cmp::Le),
    ("TimestampGreaterThanEquals", Family::Timestamp, Cmp::Ge),
];

const TESTS: &[(&str, TypeTest)] = &[
    ("IsNull", TypeTest::Null),
    ("IsPresent", TypeTest::Present),
    ("IsNumeric", TypeTest::Numeric),
    ("IsString", TypeTest::String),
    ("IsBoolean", TypeTest::Boolean),
    ("IsTimestamp", TypeTest::Timestamp),
];

impl Rule {
    /// Parses one rule object; `top_level` requires `Next` (and forbids it otherwise).
    pub fn parse(value: &Value, top_level: bool) -> Result<Rule, String> {
        let Value::Object(m) = value else {
            return Err(format!(
                "a Choice rule must be an object, got {}",
                to_json(value)
            ));
        };
        let next = match m.get("Next") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(format!("'Next' must be a string, got {}", to_json(other))),
        };
        if top_level && next.is_none() {
            return Err("a top-level Choice rule needs a 'Next' field".to_owned());
        }
        if !top_level && next.is_some() {
            return Err("a Choice rule nested in And/Or/Not must not have 'Next'".to_owned());
        }
        let assign = m.get("Assign").cloned();
        if assign.is_some() && !top_level {
            return Err("'Assign' is only allowed on top-level Choice rules".to_owned());
        }

        let mut operators = Vec::new();
        for key in m.keys() {
            match key.as_str() {
                "Next" | "Comment" | "Assign" | "Variable" => {}
                "And" | "Or" | "Not" => operators.push(key.clone()),
                k if TESTS.iter().any(|(n, _)| *n == k) => operators.push(key.clone()),
                k if COMPARISONS
                    .iter()
                    .any(|(n, _, _)| *n == k || k.strip_suffix("Path") == Some(*n)) =>
                {
                    operators.push(key.clone())
                }
                other => return Err(format!("unknown field '{other}' in a Choice rule")),
            }
        }
        let [op_name] = operators.as_slice() else {
            return Err(if operators.is_empty() {
                "a Choice rule needs exactly one operator (a comparison, an Is* test, And, Or or Not)"
                    .to_owned()
            } else {
                format!(
                    "a Choice rule must have exactly one operator, found {}",
                    operators.join(", ")
                )
            });
        };
        let operand_value = &m[op_name.as_str()];

        let kind = match op_name.as_str() {
            "And" | "Or" => {
                if m.contains_key("Variable") {
                    return Err(format!("'{op_name}' rules do not take a 'Variable'"));
                }
                let Value::Array(items) = operand_value else {
                    return Err(format!("'{op_name}' must be a non-empty array of rules"));
                };
                if items.is_empty() {
                    return Err(format!("'{op_name}' must be a non-empty array of rules"));
                }
                let rules = items
                    .iter()
                    .map(|r| Rule::parse(r, false))
                    .collect::<Result<Vec<_>, _>>()?;
                if op_name == "And" {
                    Kind::And(rules)
                } else {
                    Kind::Or(rules)
                }
            }
            "Not" => {
                if m.contains_key("Variable") {
                    return Err("'Not' rules do not take a 'Variable'".to_owned());
                }
                Kind::Not(Box::new(Rule::parse(operand_value, false)?))
            }
            name => {
                let variable = match m.get("Variable") {
                    Some(Value::String(s)) => reference_path(s, "Variable")?,
                    Some(other) => {
                        return Err(format!(
                            "'Variable' must be a string, got {}",
                            to_json(other)
                        ));
                    }
                    None => return Err(format!("the '{name}' rule needs a 'Variable'")),
                };
                if let Some((_, test)) = TESTS.iter().find(|(n, _)| *n == name) {
                    let Value::Bool(expected) = operand_value else {
                        return Err(format!(
                            "'{name}' must be true or false, got {}",
                            to_json(operand_value)
                        ));
                    };
                    Kind::Test {
                        variable,
                        test: *test,
                        expected: *expected,
                    }
                } else {
                    let (base, is_path) = match name.strip_suffix("Path") {
                        Some(b) if COMPARISONS.iter().any(|(n, _, _)| *n == b) => (b, true),
                        _ => (name, false),
                    };
                    let &(_, family, cmp) = COMPARISONS
                        .iter()
                        .find(|(n, _, _)| *n == base)
                        .ok_or_else(|| format!("unknown operator '{name}'"))?;
                    let operand = if is_path {
                        let Value::String(p) = operand_value else {
                            return Err(format!(
                                "'{name}' must be a path string, got {}",
                                to_json(operand_value)
                            ));
                        };
                        Operand::Path(reference_path(p, name)?)
                    } else {
                        check_literal(name, family, cmp, operand_value)?;
                        Operand::Literal(operand_value.clone())
                    };
                    Kind::Compare {
                        variable,
                        op: Op { family, cmp },
                        operand,
                    }
                }
            }
        };
        Ok(Rule { next, assign, kind })
    }

    /// The `Next` state of a top-level rule.
    pub fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// The rule's `Assign` block, if any (top-level rules only).
    pub fn assign(&self) -> Option<&Value> {
        self.assign.as_ref()
    }

    /// Evaluates the rule against the step's input (and variables, context).
    pub fn matches(&self, scope: &Scope) -> Result<bool, DataError> {
        match &self.kind {
            Kind::And(rules) => {
                for r in rules {
                    if !r.matches(scope)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Kind::Or(rules) => {
                for r in rules {
                    if r.matches(scope)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Kind::Not(r) => Ok(!r.matches(scope)?),
            Kind::Test {
                variable,
                test,
                expected,
            } => {
                let value = variable.read(scope);
                let actual = match test {
                    TypeTest::Present => value.is_some(),
                    _ => {
                        let v = value.ok_or_else(|| invalid_path(variable))?;
                        match test {
                            TypeTest::Null => v.is_null(),
                            TypeTest::Numeric => v.is_number(),
                            TypeTest::String => v.is_string(),
                            TypeTest::Boolean => v.is_boolean(),
                            TypeTest::Timestamp => v.as_str().and_then(parse_timestamp).is_some(),
                            TypeTest::Present => unreachable!("handled above"),
                        }
                    }
                };
                Ok(actual == *expected)
            }
            Kind::Compare {
                variable,
                op,
                operand,
            } => {
                let left = variable.read(scope).ok_or_else(|| invalid_path(variable))?;
                let right = match operand {
                    Operand::Literal(v) => v.clone(),
                    Operand::Path(p) => p.read(scope).ok_or_else(|| invalid_path(p))?,
                };
                Ok(compare(&left, *op, &right))
            }
        }
    }
}

fn invalid_path(path: &JsonPath) -> DataError {
    DataError::runtime(format!(
        "Invalid path '{}': The choice state's condition path references an invalid value.",
        path.as_str()
    ))
}

fn reference_path(text: &str, field: &str) -> Result<JsonPath, String> {
    let p = JsonPath::parse(text).map_err(|e| format!("'{field}': {e}"))?;
    if !p.is_reference() {
        return Err(format!(
            "'{field}' must be a Reference Path (no wildcards, filters, slices, unions or deep scans): '{text}'"
        ));
    }
    Ok(p)
}

fn check_literal(name: &str, family: Family, cmp: Cmp, v: &Value) -> Result<(), String> {
    let ok = match family {
        Family::String => v.is_string(),
        Family::Numeric => v.is_number(),
        Family::Boolean => v.is_boolean(),
        Family::Timestamp => v.as_str().and_then(parse_timestamp).is_some(),
    };
    if ok {
        return Ok(());
    }
    let what = match (family, cmp) {
        (Family::String, Cmp::Matches) => "a string pattern",
        (Family::String, _) => "a string",
        (Family::Numeric, _) => "a number",
        (Family::Boolean, _) => "true or false",
        (Family::Timestamp, _) => "an RFC 3339 timestamp such as 2001-01-01T12:00:00Z",
    };
    Err(format!("'{name}' must be {what}, got {}", to_json(v)))
}

/// Parses a timestamp as AWS accepts it: RFC 3339 with an uppercase `T` between date and time
/// and a zone (`Z` or `±hh:mm`); fractional seconds allowed.
pub fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    if b.len() < 20 || b[10] != b'T' || s.contains('z') || s.contains('t') {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

fn compare(left: &Value, op: Op, right: &Value) -> bool {
    let ord = match op.family {
        Family::String => {
            let (Value::String(l), Value::String(r)) = (left, right) else {
                return false;
            };
            if op.cmp == Cmp::Matches {
                return string_matches(l, r);
            }
            // Java String.compareTo: UTF-16 code units.
            l.encode_utf16().cmp(r.encode_utf16())
        }
        Family::Numeric => {
            let (Value::Number(l), Value::Number(r)) = (left, right) else {
                return false;
            };
            match (l.as_i64(), r.as_i64()) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => match (l.as_f64(), r.as_f64()) {
                    (Some(a), Some(b)) => match a.partial_cmp(&b) {
                        Some(o) => o,
                        None => return false,
                    },
                    _ => return false,
                },
            }
        }
        Family::Boolean => {
            let (Value::Bool(l), Value::Bool(r)) = (left, right) else {
                return false;
            };
            return op.cmp == Cmp::Eq && l == r;
        }
        Family::Timestamp => {
            let (Some(l), Some(r)) = (
                left.as_str().and_then(parse_timestamp),
                right.as_str().and_then(parse_timestamp),
            ) else {
                return false;
            };
            l.cmp(&r)
        }
    };
    match op.cmp {
        Cmp::Eq => ord == Ordering::Equal,
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Ge => ord != Ordering::Less,
        Cmp::Matches => false,
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` is a literal star and `\\` a
/// literal backslash.
pub fn string_matches(value: &str, pattern: &str) -> bool {
    // Tokenise the pattern into literal chars and wildcards.
    #[derive(PartialEq)]
    enum Tok {
        Lit(char),
        Star,
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.peek() {
                Some('*') | Some('\\') => toks.push(Tok::Lit(it.next().unwrap_or('\\'))),
                _ => toks.push(Tok::Lit('\\')),
            },
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Lit(c)),
        }
    }
    let s: Vec<char> = value.chars().collect();
    // Classic greedy wildcard matching with backtracking to the last star.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if j < toks.len() {
            match toks[j] {
                Tok::Star => {
                    star = Some((j, i));
                    j += 1;
                    continue;
                }
                Tok::Lit(c) if c == s[i] => {
                    i += 1;
                    j += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sj, si)) => {
                j = sj + 1;
                i = si + 1;
                star = Some((sj, si + 1));
            }
            None => return false,
        }
    }
    toks[j..].iter().all(|t| *t == Tok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Map;
    use serde_json::json;

    fn eval(rule: Value, input: Value) -> Result<bool, DataError> {
        let vars: Map<String, Value> = serde_json::from_value(json!({"v": 5})).unwrap();
        let ctx = json!({"Execution": {"Input": {"x": 0}}});
        Rule::parse(&rule, false)
            .unwrap()
            .matches(&Scope::new(&input, &ctx, &vars))
    }

    #[test]
    fn comparisons_and_type_mismatch() {
        let r = |op: &str, lit: Value| json!({"Variable": "$.x", op: lit});
        assert!(eval(r("NumericEquals", json!(1)), json!({"x": 1.0})).unwrap());
        assert!(!eval(r("NumericEquals", json!(1)), json!({"x": "1"})).unwrap());
        assert!(!eval(r("NumericEquals", json!(0)), json!({"x": false})).unwrap());
        assert!(eval(r("NumericGreaterThan", json!(1)), json!({"x": 1.5})).unwrap());
        assert!(eval(r("NumericLessThanEquals", json!(1.5)), json!({"x": 1.5})).unwrap());
        assert!(eval(r("StringLessThan", json!("b")), json!({"x": "a"})).unwrap());
        assert!(!eval(r("StringGreaterThan", json!("A ")), json!({"x": "A"})).unwrap());
        assert!(!eval(r("BooleanEquals", json!(true)), json!({"x": 1})).unwrap());
        assert!(eval(r("BooleanEquals", json!(false)), json!({"x": false})).unwrap());
        assert!(
            eval(
                r("TimestampEquals", json!("2012-10-09T19:00:55Z")),
                json!({"x": "2012-10-09T20:00:55+01:00"})
            )
            .unwrap()
        );
        assert!(
            !eval(
                r("TimestampEquals", json!("2012-10-09T19:00:55Z")),
                json!({"x": "2012-10-09 19:00:55Z"})
            )
            .unwrap()
        );
        assert!(
            eval(
                r("TimestampLessThan", json!("2012-10-09T19:00:56Z")),
                json!({"x": "2012-10-09T19:00:55.5Z"})
            )
            .unwrap()
        );
    }

    #[test]
    fn path_forms_variables_and_context() {
        assert!(
            eval(
                json!({"Variable": "$.a", "NumericEqualsPath": "$v"}),
                json!({"a": 5})
            )
            .unwrap()
        );
        assert!(
            eval(
                json!({"Variable": "$$.Execution.Input.x", "NumericLessThanEquals": 0}),
                json!({})
            )
            .unwrap()
        );
        let e = eval(
            json!({"Variable": "$.a", "StringEqualsPath": "$.b"}),
            json!({"a": "x"}),
        )
        .unwrap_err();
        assert_eq!(
            e.cause,
            "Invalid path '$.b': The choice state's condition path references an invalid value."
        );
    }

    #[test]
    fn type_tests() {
        let type_test = |op: &str, flag: bool, x: Value| {
            eval(json!({"Variable": "$.x", op: flag}), json!({"x": x}))
        };
        assert!(type_test("IsNull", true, Value::Null).unwrap());
        assert!(type_test("IsPresent", true, Value::Null).unwrap());
        assert!(type_test("IsNumeric", false, json!("1")).unwrap());
        assert!(type_test("IsString", true, json!("")).unwrap());
        assert!(type_test("IsBoolean", true, json!(false)).unwrap());
        assert!(type_test("IsTimestamp", true, json!("2023-02-24T00:00:00.123+02:00")).unwrap());
        assert!(type_test("IsTimestamp", false, json!("2023-02-24")).unwrap());
        assert!(eval(json!({"Variable": "$.nope", "IsPresent": false}), json!({})).unwrap());
        let e = eval(json!({"Variable": "$.nope", "IsNull": true}), json!({})).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert_eq!(
            e.cause,
            "Invalid path '$.nope': The choice state's condition path references an invalid value."
        );
    }

    #[test]
    fn boolean_combinations() {
        let rule = json!({"And": [
            {"Variable": "$.v", "NumericGreaterThanEquals": 20},
            {"Not": {"Variable": "$.t", "StringEquals": "Private"}},
            {"Or": [{"Variable": "$.v", "NumericLessThan": 30}, {"Variable": "$.t", "IsNull": true}]}
        ]});
        assert!(eval(rule.clone(), json!({"v": 22, "t": "Public"})).unwrap());
        assert!(!eval(rule, json!({"v": 22, "t": "Private"})).unwrap());
        // And short-circuits: IsPresent guards a missing field.
        let guarded = json!({"And": [{"Variable": "$.k", "IsPresent": true}, {"Variable": "$.k", "StringEquals": "x"}]});
        assert!(!eval(guarded, json!({})).unwrap());
    }

    #[test]
    fn timestamps_as_aws_accepts_them() {
        for ok in [
            "2016-03-05T21:29:29.243167252Z",
            "2016-03-14T01:59:00Z",
            "2023-12-13T07:09:46.000000Z",
            "2023-12-13T07:10:01.00Z",
            "2012-10-09T19:00:55+01:00",
        ] {
            assert!(parse_timestamp(ok).is_some(), "{ok} should parse");
        }
        for bad in [
            "2016-13-05T21:29:29Z",
            "05-12-2016T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "2016-12-05 21:29:29Z",
            "2016-12-05T21:29:29",
            "2023-12-13T07:10:32.000000",
            "2023-02-24",
            "2016-12-05t21:29:29z",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad} should not parse");
        }
    }

    #[test]
    fn string_matches_wildcards() {
        assert!(string_matches("log-1.txt", "log-*.txt"));
        assert!(string_matches("log-.txt", "log-*.txt"));
        assert!(!string_matches("log-1.txt.gz", "log-*.txt"));
        assert!(string_matches("a*b", r"a\*b"));
        assert!(!string_matches("axb", r"a\*b"));
        assert!(string_matches(r"a\b", r"a\\b"));
        assert!(string_matches("anything", "*"));
        assert!(string_matches("", "*"));
        assert!(string_matches("abcbc", "*bc"));
        assert!(
            eval(
                json!({"Variable": "$.x", "StringMatches": "*.txt"}),
                json!({"x": "f.txt"})
            )
            .unwrap()
        );
    }

    #[test]
    fn parse_errors() {
        let bad = [
            json!({"Variable": "$.x"}),
            json!({"Variable": "$.x", "StringEquals": 1}),
            json!({"Variable": "$.x", "NumericEquals": "1"}),
            json!({"Variable": "$.x", "TimestampEquals": "yesterday"}),
            json!({"Variable": "$.x", "IsNull": "yes"}),
            json!({"Variable": "$.x[*]", "IsNull": true}),
            json!({"Variable": "$.x", "StringEquals": "a", "NumericEquals": 1}),
            json!({"And": []}),
            json!({"Variable": "$.x", "Foo": 1}),
        ];
        for b in bad {
            assert!(Rule::parse(&b, false).is_err(), "{b} should not parse");
        }
        assert!(Rule::parse(&json!({"Variable": "$.x", "IsNull": true}), true).is_err());
        let top = Rule::parse(
            &json!({"Variable": "$.x", "IsNull": true, "Next": "N", "Assign": {"a": 1}}),
            true,
        )
        .unwrap();
        assert_eq!(top.next(), Some("N"));
        assert_eq!(top.assign(), Some(&json!({"a": 1})));
    }
}
