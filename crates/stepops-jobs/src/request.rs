//! A request to run a job (`{"job", "environment", "params"}`) checked against the catalog:
//! the job exists and may run in the environment, every parameter is known, typed, within its
//! bounds and pattern, required ones are given and defaults filled in, sizes are bounded; the
//! result ([`ValidatedJob`]) carries the argument vectors with parameters substituted as whole
//! arguments, the secrets of that environment only, and the catalog's version.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepops_error::Environment;

use crate::catalog::{Catalog, ENVIRONMENT_PLACEHOLDER, env_list, placeholder};
use crate::definition::{Parameter, SecretRef};
use crate::error::JobError;

/// The largest request accepted, as JSON, in bytes.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024;
/// The largest parameter value, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Added to a step's timeout for its Task state's `TimeoutSeconds`.
pub const STATE_TIMEOUT_MARGIN_SECONDS: u64 = 300;
/// The most parameters a request may give.
pub const MAX_PARAMS: usize = 64;

/// What a caller asks for: run `job` in `environment` with `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The job's name.
    pub job: String,
    /// `dev` or `prod`.
    pub environment: String,
    /// Parameter values: JSON strings, numbers or booleans (strings are parsed for integer
    /// and boolean parameters, as the CLI gives them).
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
}

impl JobRequest {
    /// Parses a request from JSON, refusing unknown keys and oversized input.
    pub fn from_json(value: &Value) -> Result<JobRequest, JobError> {
        let size = value.to_string().len();
        let job = value
            .get("job")
            .and_then(Value::as_str)
            .map(|j| printable(j, 64))
            .unwrap_or_else(|| "?".into());
        if size > MAX_REQUEST_BYTES {
            return Err(JobError::Request {
                job,
                problem: format!(
                    "the request is {size} bytes, over the limit of {MAX_REQUEST_BYTES}: pass \
                     large data by reference (an S3 key, a secret name), not as a parameter"
                ),
            });
        }
        serde_json::from_value(value.clone()).map_err(|e| JobError::Request {
            job,
            problem: format!(
                "the request is not {{\"job\", \"environment\", \"params\": {{…}}}}: {e}"
            ),
        })
    }
}

/// A request that passed validation: what the state machine and the runner run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatedJob {
    /// The job.
    pub job: String,
    /// The environment.
    pub environment: Environment,
    /// The catalog version validated against.
    pub catalog_version: String,
    /// Every parameter, defaults filled in.
    pub params: BTreeMap<String, Value>,
    /// The concurrency group's lock key: `ENV/GROUP`.
    pub concurrency_group: String,
    /// The job's heartbeat, seconds.
    pub heartbeat_seconds: u64,
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
}

/// One step, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    /// Position in the job (0-based).
    pub index: usize,
    /// The step's name (the job's name for a one-step job).
    pub name: String,
    /// The argument vector, parameters substituted.
    pub argv: Vec<String>,
    /// Declared variables, parameters substituted.
    pub env: BTreeMap<String, String>,
    /// Secrets of this environment: variable → where it is read.
    pub secrets: BTreeMap<String, SecretRef>,
    /// The directory to run in (a fresh one when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Seconds before the process group is stopped.
    pub timeout_seconds: u64,
    /// The Task state's `TimeoutSeconds`: the step's timeout plus
    /// [`STATE_TIMEOUT_MARGIN_SECONDS`] (the runner stops the process first and reports
    /// `Stepops.JobTimedOut`; this is the backstop).
    pub state_timeout_seconds: u64,
    /// Whether running it twice is harmless.
    pub idempotent: bool,
}

impl Catalog {
    /// Validates `request`: see the module docs. Nothing runs before this passes.
    pub fn validate(&self, request: &JobRequest) -> Result<ValidatedJob, JobError> {
        let checked = self.checked(&request.job)?;
        let job = &checked.definition;
        let bad = |problem: String| JobError::Request {
            job: job.name.clone(),
            problem,
        };
        let environment = Environment::parse(&request.environment)
            .filter(|e| job.environments.contains(e))
            .ok_or_else(|| JobError::WrongEnvironment {
                job: job.name.clone(),
                environment: printable(&request.environment, 16),
                allowed: env_list(&job.environments),
            })?;
        if request.params.len() > MAX_PARAMS {
            return Err(bad(format!("more than {MAX_PARAMS} parameters")));
        }
        for key in request.params.keys() {
            if !job.parameters.contains_key(key) {
                return Err(bad(format!(
                    "unknown parameter `{}` (parameters: {}); `stepops job show {}` lists them",
                    printable(key, 64),
                    list_or_none(job.parameters.keys()),
                    job.name
                )));
            }
        }
        let mut params = BTreeMap::new();
        let mut text = BTreeMap::new();
        for (name, p) in &job.parameters {
            let value = match request.params.get(name) {
                Some(v) => coerce(name, p, checked.patterns.get(name), v).map_err(&bad)?,
                None => default_of(p).ok_or_else(|| {
                    bad(format!(
                        "missing required parameter `{name}` ({}{}): add --param {name}=VALUE",
                        p.type_name(),
                        p.description()
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    ))
                })?,
            };
            text.insert(name.as_str(), value_text(&value));
            params.insert(name.clone(), value);
        }
        text.insert(ENVIRONMENT_PLACEHOLDER, environment.as_str().to_owned());
        let subst = |v: &String| match placeholder(v) {
            Some(name) => text.get(name).cloned().unwrap_or_default(),
            None => v.clone(),
        };
        let env: BTreeMap<String, String> =
            job.env.iter().map(|(k, v)| (k.clone(), subst(v))).collect();
        let secrets: BTreeMap<String, SecretRef> = job
            .secrets
            .iter()
            .filter_map(|(k, per_env)| per_env.get(&environment).map(|r| (k.clone(), r.clone())))
            .collect();
        let one = job.command.as_ref().map(|argv| {
            vec![(
                job.name.clone(),
                argv.clone(),
                job.timeout_seconds,
                job.idempotent,
            )]
        });
        let steps = one
            .unwrap_or_else(|| {
                job.steps
                    .iter()
                    .map(|s| {
                        (
                            s.name.clone(),
                            s.command.clone(),
                            s.timeout_seconds.unwrap_or(job.timeout_seconds),
                            s.idempotent.unwrap_or(job.idempotent),
                        )
                    })
                    .collect()
            })
            .into_iter()
            .enumerate()
            .map(
                |(index, (name, argv, timeout_seconds, idempotent))| PlannedStep {
                    index,
                    name,
                    argv: argv.iter().map(subst).collect(),
                    env: env.clone(),
                    secrets: secrets.clone(),
                    working_dir: job.working_dir.clone(),
                    timeout_seconds,
                    state_timeout_seconds: timeout_seconds + STATE_TIMEOUT_MARGIN_SECONDS,
                    idempotent,
                },
            )
            .collect();
        Ok(ValidatedJob {
            job: job.name.clone(),
            environment,
            catalog_version: self.version().to_owned(),
            params,
            concurrency_group: format!(
                "{environment}/{}",
                job.concurrency_group.as_deref().unwrap_or(&job.name)
            ),
            heartbeat_seconds: job.heartbeat_seconds,
            steps,
        })
    }

    /// [`Catalog::validate`], refusing a request validated against another catalog version.
    pub fn validate_at(
        &self,
        request: &JobRequest,
        catalog_version: &str,
    ) -> Result<ValidatedJob, JobError> {
        if catalog_version != self.version() {
            return Err(JobError::CatalogDrift {
                validated: printable(catalog_version, 80),
                mine: self.version().to_owned(),
            });
        }
        self.validate(request)
    }
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<_> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn default_of(p: &Parameter) -> Option<Value> {
    match p {
        Parameter::String { default, .. } => default.clone().map(Value::from),
        Parameter::Integer { default, .. } => default.map(Value::from),
        Parameter::Boolean { default, .. } => default.map(Value::from),
    }
}

fn coerce(name: &str, p: &Parameter, re: Option<&Regex>, v: &Value) -> Result<Value, String> {
    match (p, v) {
        (Parameter::String { .. }, Value::String(s)) => {
            check_string(name, p, re, s).map(|()| v.clone())
        }
        (Parameter::Integer { .. }, Value::Number(n)) => {
            let i = n
                .as_i64()
                .ok_or_else(|| format!("parameter `{name}` must be a whole number"))?;
            check_integer(name, p, i).map(|()| Value::from(i))
        }
        (Parameter::Integer { .. }, Value::String(s)) => {
            let i: i64 = s.trim().parse().map_err(|_| {
                format!(
                    "parameter `{name}` must be a whole number, not `{}`",
                    printable(s, 40)
                )
            })?;
            check_integer(name, p, i).map(|()| Value::from(i))
        }
        (Parameter::Boolean { .. }, Value::Bool(_)) => Ok(v.clone()),
        (Parameter::Boolean { .. }, Value::String(s)) => match s.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("parameter `{name}` must be true or false")),
        },
        _ => Err(format!(
            "parameter `{name}` must be a {}, not {}",
            p.type_name(),
            stepops_error::json_type_name(v)
        )),
    }
}

/// A string value against its parameter's rules.
pub(crate) fn check_string(
    name: &str,
    p: &Parameter,
    re: Option<&Regex>,
    s: &str,
) -> Result<(), String> {
    let Parameter::String {
        choices,
        max_length,
        ..
    } = p
    else {
        return Ok(());
    };
    let max = max_length.unwrap_or(MAX_VALUE_BYTES).min(MAX_VALUE_BYTES);
    if s.len() > max {
        return Err(format!(
            "parameter `{name}` is {} bytes, over its limit of {max}",
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(format!(
            "parameter `{name}` holds a control character (a newline, NUL, …): not allowed in \
             an argument"
        ));
    }
    if let Some(choices) = choices
        && !choices.iter().any(|c| c == s)
    {
        return Err(format!(
            "parameter `{name}` is `{}`, not one of: {}",
            printable(s, 40),
            choices.join(", ")
        ));
    }
    if let Some(re) = re
        && !re.is_match(s)
    {
        return Err(format!(
            "parameter `{name}` is `{}`, which does not match its pattern {}",
            printable(s, 40),
            re.as_str()
                .trim_start_matches("^(?:")
                .trim_end_matches(")$")
        ));
    }
    Ok(())
}

/// An integer value against its parameter's bounds.
pub(crate) fn check_integer(name: &str, p: &Parameter, i: i64) -> Result<(), String> {
    if let Parameter::Integer {
        minimum, maximum, ..
    } = p
        && (minimum.is_some_and(|lo| i < lo) || maximum.is_some_and(|hi| i > hi))
    {
        return Err(format!(
            "parameter `{name}` is {i}, outside {}..={}",
            minimum.map(|v| v.to_string()).unwrap_or_default(),
            maximum.map(|v| v.to_string()).unwrap_or_default()
        ));
    }
    Ok(())
}

/// `s` cut to `max` characters with control characters escaped, safe to put in a message.
pub(crate) fn printable(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).flat_map(char::escape_debug).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// The validation Lambda's logic: `event` is a request; the stack serves `stack`. Returns
/// `{"request": …, "job": ValidatedJob, "leaseUntil": TIME}` (the job state machine's input
/// after `Validate`): the concurrency group is held until `leaseUntil` (now plus every step's
/// Task timeout) at the latest, so a run that failed, was stopped or timed out frees its group
/// by then even if nothing releases it.
pub fn validate_event(
    catalog: &Catalog,
    event: &Value,
    stack: Environment,
) -> Result<Value, JobError> {
    let request = JobRequest::from_json(event)?;
    if request.environment != stack.as_str() {
        return Err(JobError::WrongEnvironment {
            job: printable(&request.job, 64),
            environment: printable(&request.environment, 16),
            allowed: format!("this stack's `{stack}` only"),
        });
    }
    let job = catalog.validate(&request)?;
    let longest: u64 = job.steps.iter().map(|s| s.state_timeout_seconds).sum();
    let until = chrono::Utc::now() + chrono::Duration::seconds(longest.min(i64::MAX as u64) as i64);
    Ok(serde_json::json!({
        "request": request,
        "job": job,
        "leaseUntil": until.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    }))
}
