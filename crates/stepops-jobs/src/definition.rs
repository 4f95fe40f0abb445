//! A job's definition as written in `jobs/NAME.yaml` (and described by `jobs/schema.json`):
//! plain serde types that refuse unknown keys. The rules serde cannot say (names, bounds,
//! placeholders, secrets per environment) are checked by [`crate::catalog`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stepops_error::Environment;

/// One job: a command (or a list of steps) with typed parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDefinition {
    /// The job's name: the file's stem, `[a-z][a-z0-9-]*`.
    pub name: String,
    /// One or two sentences: what the job does.
    pub description: String,
    /// The environments it may run in.
    pub environments: Vec<Environment>,
    /// The argument vector of a one-step job (no shell). An element that is exactly
    /// `${NAME}` is replaced by parameter NAME's value (or `${environment}`), as one argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The steps of a multi-step job, run in order; each is resumable on its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepDefinition>,
    /// Typed parameters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Parameter>,
    /// Environment variables given to the command (a value may be exactly `${NAME}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Secrets injected as environment variables: variable → environment → where it is read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, BTreeMap<Environment, SecretRef>>,
    /// An absolute directory on the runner to run in; without it, a fresh empty directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// How long one step may run before its process group is stopped.
    pub timeout_seconds: u64,
    /// How often the runner must be heard from while a step runs (Step Functions'
    /// `HeartbeatSeconds`): a runner silent this long is presumed dead.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u64,
    /// Whether running a step twice is harmless. A step that is not is never run again
    /// automatically after its runner died mid-way.
    pub idempotent: bool,
    /// At most one run per group and environment at a time (default: the job's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_group: Option<String>,
}

/// The default heartbeat, in seconds.
pub const DEFAULT_HEARTBEAT_SECONDS: u64 = 60;

fn default_heartbeat() -> u64 {
    DEFAULT_HEARTBEAT_SECONDS
}

/// One step of a multi-step job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    /// The step's name, unique in the job.
    pub name: String,
    /// Its argument vector (placeholders as in [`JobDefinition::command`]).
    pub command: Vec<String>,
    /// Overrides the job's timeout for this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Overrides the job's `idempotent` for this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
}

/// A typed parameter. Without a `default` it is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Parameter {
    /// A string, optionally matching a whole-value `pattern` or one of `enum`.
    String {
        /// What it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// A regular expression the whole value must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
        /// The allowed values.
        #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
        choices: Option<Vec<String>>,
        /// At most this many bytes (and never more than [`crate::MAX_VALUE_BYTES`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_length: Option<usize>,
        /// The value when none is given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
    },
    /// A whole number within optional bounds.
    Integer {
        /// What it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The smallest value allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minimum: Option<i64>,
        /// The largest value allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maximum: Option<i64>,
        /// The value when none is given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<i64>,
    },
    /// `true` or `false`.
    Boolean {
        /// What it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The value when none is given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<bool>,
    },
}

impl Parameter {
    /// The parameter's description, if any.
    pub fn description(&self) -> Option<&str> {
        match self {
            Parameter::String { description, .. }
            | Parameter::Integer { description, .. }
            | Parameter::Boolean { description, .. } => description.as_deref(),
        }
    }

    /// `string`, `integer` or `boolean`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Parameter::String { .. } => "string",
            Parameter::Integer { .. } => "integer",
            Parameter::Boolean { .. } => "boolean",
        }
    }

    /// Whether a request must give it (it has no default).
    pub fn is_required(&self) -> bool {
        match self {
            Parameter::String { default, .. } => default.is_none(),
            Parameter::Integer { default, .. } => default.is_none(),
            Parameter::Boolean { default, .. } => default.is_none(),
        }
    }
}

/// Where a secret is read: a Secrets Manager secret or an SSM parameter, by name. Written
/// `{secret: NAME}` or `{parameter: NAME}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSecretRef", into = "RawSecretRef")]
pub enum SecretRef {
    /// A Secrets Manager secret name (`stepops/ENV/…`).
    Secret(String),
    /// An SSM parameter name (`/stepops/ENV/…`, a SecureString).
    Parameter(String),
}

impl SecretRef {
    /// The secret's or parameter's name.
    pub fn name(&self) -> &str {
        match self {
            SecretRef::Secret(n) | SecretRef::Parameter(n) => n,
        }
    }

    /// `secret NAME` or `parameter NAME`, for messages.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Secret(n) => format!("secret `{n}`"),
            SecretRef::Parameter(n) => format!("parameter `{n}`"),
        }
    }
}

/// [`SecretRef`] as written: exactly one of the two keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameter: Option<String>,
}

impl TryFrom<RawSecretRef> for SecretRef {
    type Error = String;
    fn try_from(raw: RawSecretRef) -> Result<Self, String> {
        match (raw.secret, raw.parameter) {
            (Some(s), None) if !s.is_empty() => Ok(SecretRef::Secret(s)),
            (None, Some(p)) if !p.is_empty() => Ok(SecretRef::Parameter(p)),
            _ => Err("a secret is {secret: NAME} or {parameter: NAME} (one, not empty)".into()),
        }
    }
}

impl From<SecretRef> for RawSecretRef {
    fn from(r: SecretRef) -> Self {
        match r {
            SecretRef::Secret(s) => RawSecretRef {
                secret: Some(s),
                parameter: None,
            },
            SecretRef::Parameter(p) => RawSecretRef {
                secret: None,
                parameter: Some(p),
            },
        }
    }
}
