//! Filter expressions (`[?(…)]`): operands, boolean expressions, comparison operators and
//! the comparisons as Jayway evaluates them.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operand {
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
pub(super) enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// Bare operand: existence (paths) or truthiness (literal booleans).
    Exists(Operand),
    Cmp(Operand, CmpOp, Operand),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CmpOp {
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
    pub(super) fn eval(&self, current: &Value, scope: &Scope) -> Option<Value> {
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
    pub(super) fn test(&self, current: &Value, scope: &Scope) -> bool {
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

pub(super) fn op_is_definite(op: &Operand) -> bool {
    match op {
        Operand::Path { path, .. } => path.is_definite(),
        _ => true,
    }
}

/// Jayway-like ordering: numbers by value, strings lexicographically; other pairs unordered.
pub(super) fn order(a: &Value, b: &Value) -> Option<Ordering> {
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

pub(super) fn compare(l: &Value, op: CmpOp, r: Option<&Value>, r_op: &Operand) -> bool {
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
