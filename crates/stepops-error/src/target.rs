//! The target reference a step names (`{"secret": NAME}`, `{"parameter": NAME}`,
//! `{"url": URL}`) and the stack's allow-list of them: validate-input and the runner check every
//! reference against the same [`StackEnvironment`] before anything is read or written.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::environment::Environment;
use crate::url::{check_inline_url, redact};
use crate::{ErrorName, Named};

/// How a target (a database) is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// A Secrets Manager secret whose value is the database URL (or the RDS JSON shape).
    Secret,
    /// An SSM SecureString parameter whose value is the database URL.
    Parameter,
    /// An inline URL without credentials (local runs: `sqlite:PATH`).
    Url,
}

impl TargetKind {
    /// Every kind, in documentation order.
    pub const ALL: [TargetKind; 3] = [TargetKind::Secret, TargetKind::Parameter, TargetKind::Url];

    /// The JSON key for this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::Secret => "secret",
            TargetKind::Parameter => "parameter",
            TargetKind::Url => "url",
        }
    }

    /// Parses `secret`, `parameter` or `url`.
    pub fn parse(text: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// The shape of a target reference, for messages.
pub const TARGET_SHAPE: &str = r#"{"secret": NAME}, {"parameter": NAME} or {"url": "sqlite:PATH"}"#;

/// A reference to a database, by name; its value (a URL) is fetched by the runner at run time.
/// `Display` gives `secret NAME` (a URL with its password redacted), never a secret's value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TargetRef {
    /// How it is named.
    pub kind: TargetKind,
    /// The secret's or parameter's name, or the URL.
    pub name: String,
}

impl TargetRef {
    /// Parses the reference in `value`, the JSON field `field` (`source`, `dest`, `target`):
    /// exactly one key, a non-empty name, and for `url` a supported URL without a password.
    /// The error says what is wrong and never holds a password.
    pub fn from_json(field: &str, value: Option<&Value>) -> Result<TargetRef, String> {
        let Some(value) = value else {
            return Err(format!("`{field}` is missing: {TARGET_SHAPE}"));
        };
        let Some(t) = value.as_object() else {
            return Err(format!(
                "`{field}` must be an object {TARGET_SHAPE}, got {}",
                json_type_name(value)
            ));
        };
        let Some((key, name)) = t.iter().next().filter(|_| t.len() == 1) else {
            let keys: Vec<_> = t.keys().map(|k| format!("`{k}`")).collect();
            return Err(format!(
                "`{field}` must have exactly one key ({TARGET_SHAPE}), got {}",
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            ));
        };
        let Some(kind) = TargetKind::parse(key) else {
            return Err(format!(
                "`{field}.{}` is not a target kind: {TARGET_SHAPE}",
                redact(key)
            ));
        };
        let Some(name) = name.as_str().map(str::trim).filter(|s| !s.is_empty()) else {
            return Err(format!(
                "`{field}.{key}` must be a non-empty string, got {}",
                json_type_name(name)
            ));
        };
        let target = TargetRef {
            kind,
            name: name.to_owned(),
        };
        if kind == TargetKind::Url
            && let Err(why) = check_inline_url(name)
        {
            return Err(format!("`{field}.url` ({}) {why}", target.describe()));
        }
        Ok(target)
    }

    /// `secret `stepops/dev/source-db``, with any inline credentials redacted.
    pub fn describe(&self) -> String {
        format!("{} `{}`", self.kind.as_str(), redact(&self.name))
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), redact(&self.name))
    }
}

impl fmt::Debug for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetRef({self})")
    }
}

impl Serialize for TargetRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.kind.as_str(), &self.name)?;
        map.end()
    }
}

/// `a string`, `an object`, … for messages about a JSON value.
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One entry of a stack's allow-list: a kind and a name, or a name prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedTarget {
    /// The kind it allows.
    pub kind: TargetKind,
    /// The exact name, or a prefix followed by `*`.
    pub pattern: String,
}

impl AllowedTarget {
    /// Whether this entry allows `target`.
    pub fn matches(&self, target: &TargetRef) -> bool {
        self.kind == target.kind
            && match self.pattern.strip_suffix('*') {
                Some(prefix) => target.name.starts_with(prefix),
                None => target.name == self.pattern,
            }
    }
}

impl fmt::Display for AllowedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), redact(&self.pattern))
    }
}

/// A stack's own environment and the targets configured for it: validate-input reads it from
/// `STEPOPS_ENVIRONMENT`/`STEPOPS_ALLOWED_TARGETS`, the runner from its `environment` and
/// `allowed_targets` keys, both from the stack's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEnvironment {
    /// The stack's environment.
    pub environment: Environment,
    /// The targets a task on this stack may name.
    pub allowed_targets: Vec<AllowedTarget>,
}

/// Why a target reference is refused by a stack's allow-list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    /// The name marks it as the other environment's (`stepops/prod/db` on a dev stack).
    #[error("{0}")]
    OtherEnvironment(String),
    /// The stack's allow-list does not hold it.
    #[error("{0}")]
    NotConfigured(String),
}

impl Named for TargetRefusal {
    fn error_name(&self) -> ErrorName {
        match self {
            TargetRefusal::OtherEnvironment(_) => ErrorName::WrongEnvironment,
            TargetRefusal::NotConfigured(_) => ErrorName::InvalidInput,
        }
    }
}

impl StackEnvironment {
    /// The allow-list `allowed` of a stack of `environment`: `KIND:NAME` entries separated by
    /// commas or whitespace, KIND `secret`, `parameter` or `url`, NAME ending in `*` to allow a
    /// prefix (e.g. `secret:stepops/dev/source-db,secret:stepops/dev/dest-db`, or
    /// `url:sqlite:*` locally). The error completes a sentence naming where the list came from
    /// (`STEPOPS_ALLOWED_TARGETS …`).
    pub fn new(environment: Environment, allowed: &str) -> Result<StackEnvironment, String> {
        let mut allowed_targets = Vec::new();
        for item in allowed
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let entry = item
                .split_once(':')
                .and_then(|(k, p)| Some((TargetKind::parse(k)?, p)))
                .filter(|(_, p)| !p.is_empty());
            let Some((kind, pattern)) = entry else {
                return Err(format!(
                    "entry `{}` is not KIND:NAME with KIND secret, parameter or url",
                    redact(item)
                ));
            };
            allowed_targets.push(AllowedTarget {
                kind,
                pattern: pattern.to_owned(),
            });
        }
        if allowed_targets.is_empty() {
            return Err("is empty: no target may be migrated from this stack".into());
        }
        Ok(StackEnvironment {
            environment,
            allowed_targets,
        })
    }

    /// Whether a task on this stack may name `target`.
    pub fn allows(&self, target: &TargetRef) -> bool {
        self.allowed_targets.iter().any(|a| a.matches(target))
    }

    /// The allow-list as configured, for messages.
    pub fn allowed_list(&self) -> String {
        self.allowed_targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks `target`, the task's field `field`: allowed, or refused as another
    /// environment's (`Stepops.WrongEnvironment`) or as not configured (`Stepops.InvalidInput`).
    pub fn check(&self, field: &str, target: &TargetRef) -> Result<(), TargetRefusal> {
        if self.allows(target) {
            return Ok(());
        }
        let other = Environment::ALL
            .into_iter()
            .filter(|e| *e != self.environment)
            .find(|e| e.is_named_in(&target.name));
        Err(match other {
            Some(e) => TargetRefusal::OtherEnvironment(format!(
                "`{field}` is {}, a {e} target, but this stack is `{}`",
                target.describe(),
                self.environment
            )),
            None => TargetRefusal::NotConfigured(format!(
                "`{field}` is {}, which is not configured for this {} stack (configured: {})",
                target.describe(),
                self.environment,
                self.allowed_list()
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<TargetRef, String> {
        TargetRef::from_json("source", Some(&v))
    }

    #[test]
    fn references_parse_with_their_messages() {
        assert_eq!(
            parse(json!({"secret": " a/b "})).unwrap(),
            TargetRef {
                kind: TargetKind::Secret,
                name: "a/b".into()
            }
        );
        for (v, says) in [
            (json!("x"), "`source` must be an object"),
            (json!({}), "exactly one key"),
            (json!({"secret": "a", "url": "b"}), "exactly one key"),
            (json!({"file": "x"}), "`source.file` is not a target kind"),
            (json!({"secret": " "}), "non-empty string"),
            (
                json!({"url": "postgres://u:hunter2@h/db"}),
                "password inline",
            ),
            (json!({"url": "mysql://h/db"}), "not a supported URL"),
        ] {
            let e = parse(v.clone()).unwrap_err();
            assert!(e.contains(says), "{v}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert!(
            TargetRef::from_json("dest", None)
                .unwrap_err()
                .starts_with("`dest` is missing")
        );
        let t = parse(json!({"url": "postgres://u@h/db?sslmode=require"})).unwrap();
        assert_eq!(t.to_string(), "url postgres://u@h/db?sslmode=require");
        assert_eq!(
            serde_json::to_value(&t).unwrap()["url"],
            "postgres://u@h/db?sslmode=require"
        );
    }

    #[test]
    fn the_allow_list_refuses_other_environments_and_unlisted_targets() {
        let stack = StackEnvironment::new(
            Environment::Dev,
            "secret:stepops/dev/*, parameter:/stepops/dev/db url:sqlite:*",
        )
        .unwrap();
        let r = |kind, name: &str| TargetRef {
            kind,
            name: name.into(),
        };
        assert!(
            stack
                .check("source", &r(TargetKind::Secret, "stepops/dev/a"))
                .is_ok()
        );
        assert!(
            stack
                .check("dest", &r(TargetKind::Url, "sqlite:/x.db"))
                .is_ok()
        );
        let prod = stack
            .check("dest", &r(TargetKind::Secret, "stepops/prod/db"))
            .unwrap_err();
        assert_eq!(prod.error_name(), ErrorName::WrongEnvironment);
        assert!(
            prod.to_string()
                .contains("a prod target, but this stack is `dev`")
        );
        let other = stack
            .check("dest", &r(TargetKind::Parameter, "/stepops/dev/other"))
            .unwrap_err();
        assert_eq!(other.error_name(), ErrorName::InvalidInput);
        assert!(
            other
                .to_string()
                .contains("not configured for this dev stack")
        );
        assert!(
            StackEnvironment::new(Environment::Dev, " ")
                .unwrap_err()
                .contains("is empty")
        );
        assert!(
            StackEnvironment::new(Environment::Dev, "file:x")
                .unwrap_err()
                .contains("entry `file:x`")
        );
    }
}
