//! The catalog: every `jobs/*.yaml` file parsed, checked against the rules serde cannot say,
//! and its version (a content hash that validation and the runner both compare).
//!
//! Rules: the name is the file's stem; exactly one of `command` and `steps`; every argument is
//! a literal without `${` or exactly `${NAME}` naming a parameter or `environment`; parameter
//! patterns compile and defaults obey their own rules; variables are `[A-Z_][A-Z0-9_]*` and not
//! both plain and secret; every secret is given for each of the job's environments and its
//! name belongs to that environment (`stepops/dev/…` for dev) and to no other; timeouts and
//! heartbeats are within Step Functions' limits.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use sha2::{Digest, Sha256};
use stepops_error::Environment;

use crate::definition::{JobDefinition, Parameter};
use crate::error::JobError;

/// The longest a step may run: 7 days.
pub const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;
/// Heartbeat bounds, in seconds.
pub const HEARTBEAT_SECONDS: std::ops::RangeInclusive<u64> = 10..=3600;
/// The most steps a job may have.
pub const MAX_STEPS: usize = 32;
/// The built-in placeholder: the environment the job runs in.
pub const ENVIRONMENT_PLACEHOLDER: &str = "environment";

/// The parsed, checked catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    jobs: BTreeMap<String, CheckedJob>,
    version: String,
}

/// A definition with its patterns compiled.
#[derive(Debug, Clone)]
pub(crate) struct CheckedJob {
    pub(crate) definition: JobDefinition,
    pub(crate) patterns: BTreeMap<String, Regex>,
}

/// One catalog file's result, for `stepops job check`.
#[derive(Debug)]
pub struct FileCheck {
    /// The file name (`deploy.yaml`).
    pub file: String,
    /// The definition, or why it was refused.
    pub result: Result<JobDefinition, JobError>,
}

impl Catalog {
    /// Reads every `*.yaml` of `dir`; the first bad file refuses the whole catalog.
    pub fn load_dir(dir: &Path) -> Result<Catalog, JobError> {
        Catalog::from_files(read_dir(dir)?)
    }

    /// The catalog of `(file name, YAML text)` pairs.
    pub fn from_files(files: Vec<(String, String)>) -> Result<Catalog, JobError> {
        let mut jobs = BTreeMap::new();
        for (file, text) in &files {
            let job = parse_file(file, text)?;
            jobs.insert(job.definition.name.clone(), job);
        }
        Ok(Catalog {
            jobs,
            version: version_of(&files),
        })
    }

    /// `sha256:` and the hex digest of the files' names and contents, in name order.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The definitions, by name.
    pub fn jobs(&self) -> impl Iterator<Item = &JobDefinition> {
        self.jobs.values().map(|j| &j.definition)
    }

    /// The job called `name`.
    pub fn job(&self, name: &str) -> Result<&JobDefinition, JobError> {
        self.checked(name).map(|j| &j.definition)
    }

    pub(crate) fn checked(&self, name: &str) -> Result<&CheckedJob, JobError> {
        self.jobs.get(name).ok_or_else(|| JobError::UnknownJob {
            name: crate::request::printable(name, 64),
            known: self.jobs.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

/// Checks every `*.yaml` of `dir` on its own (all problems, not only the first).
pub fn check_dir(dir: &Path) -> Result<Vec<FileCheck>, JobError> {
    Ok(read_dir(dir)?
        .into_iter()
        .map(|(file, text)| FileCheck {
            result: parse_file(&file, &text).map(|j| j.definition),
            file,
        })
        .collect())
}

fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, JobError> {
    let err = |reason: String| JobError::Catalog {
        dir: dir.display().to_string(),
        reason,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| err(e.to_string()))? {
        let path = entry.map_err(|e| err(e.to_string()))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| err(format!("{name}: {e}")))?;
        files.push((name.to_owned(), text));
    }
    files.sort();
    Ok(files)
}

fn version_of(files: &[(String, String)]) -> String {
    let mut sorted: Vec<_> = files.iter().collect();
    sorted.sort();
    let mut hash = Sha256::new();
    for (name, text) in sorted {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Parses and checks one file.
pub(crate) fn parse_file(file: &str, text: &str) -> Result<CheckedJob, JobError> {
    let problem = |p: String| JobError::Definition {
        file: format!("jobs/{file}"),
        problem: p,
    };
    let de = serde_norway::Deserializer::from_str(text);
    let definition: JobDefinition = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            problem(inner.to_string())
        } else {
            problem(format!("at `{path}`: {inner}"))
        }
    })?;
    let patterns = check_rules(file, &definition).map_err(problem)?;
    Ok(CheckedJob {
        definition,
        patterns,
    })
}

fn name_re() -> Regex {
    Regex::new(r"^[a-z][a-z0-9-]{0,62}$").expect("static regex")
}

fn check_rules(file: &str, job: &JobDefinition) -> Result<BTreeMap<String, Regex>, String> {
    let names = name_re();
    let stem = file.strip_suffix(".yaml").unwrap_or(file);
    if job.name != stem {
        return Err(format!(
            "`name` is `{}` but the file is {file}: name the file after the job",
            job.name
        ));
    }
    if !names.is_match(&job.name) {
        return Err("`name` must be lower-case letters, digits and '-', starting with a letter (at most 63)".into());
    }
    if job.description.trim().is_empty() {
        return Err("`description` is empty: say what the job does".into());
    }
    if job.environments.is_empty() {
        return Err("`environments` is empty: list where the job may run (dev, prod)".into());
    }
    let mut patterns = BTreeMap::new();
    let ident = Regex::new(r"^[a-z][a-z0-9_]{0,62}$").expect("static regex");
    for (name, p) in &job.parameters {
        if !ident.is_match(name) || name == ENVIRONMENT_PLACEHOLDER {
            return Err(format!(
                "parameter `{name}`: names are lower-case letters, digits and '_', starting \
                 with a letter, and `environment` is reserved"
            ));
        }
        check_parameter(name, p, &mut patterns)?;
    }
    match (&job.command, job.steps.is_empty()) {
        (Some(_), false) => return Err("give `command` or `steps`, not both".into()),
        (None, true) => return Err("give `command` (one step) or `steps`".into()),
        (Some(argv), true) => check_argv("command", argv, job)?,
        (None, false) => {
            if job.steps.len() > MAX_STEPS {
                return Err(format!("at most {MAX_STEPS} steps"));
            }
            let mut seen = std::collections::BTreeSet::new();
            for step in &job.steps {
                if !names.is_match(&step.name) {
                    return Err(format!(
                        "step `{}`: names are lower-case letters, digits and '-'",
                        step.name
                    ));
                }
                if !seen.insert(step.name.as_str()) {
                    return Err(format!("two steps are named `{}`", step.name));
                }
                check_argv(&format!("step `{}`", step.name), &step.command, job)?;
                if let Some(t) = step.timeout_seconds {
                    check_timeout(&format!("step `{}`", step.name), t, job.heartbeat_seconds)?;
                }
            }
        }
    }
    check_timeout("the job", job.timeout_seconds, job.heartbeat_seconds)?;
    if !HEARTBEAT_SECONDS.contains(&job.heartbeat_seconds) {
        return Err(format!(
            "`heartbeat_seconds` must be {} to {}",
            HEARTBEAT_SECONDS.start(),
            HEARTBEAT_SECONDS.end()
        ));
    }
    let var = Regex::new(r"^[A-Z_][A-Z0-9_]{0,127}$").expect("static regex");
    for (key, value) in &job.env {
        if !var.is_match(key) {
            return Err(format!("env `{key}`: variable names are [A-Z_][A-Z0-9_]*"));
        }
        check_placeholder(&format!("env `{key}`"), value, job)?;
    }
    for (key, per_env) in &job.secrets {
        if !var.is_match(key) {
            return Err(format!(
                "secrets `{key}`: variable names are [A-Z_][A-Z0-9_]*"
            ));
        }
        if job.env.contains_key(key) {
            return Err(format!(
                "`{key}` is both in `env` and in `secrets`: keep one"
            ));
        }
        for env in &job.environments {
            if !per_env.contains_key(env) {
                return Err(format!(
                    "secrets `{key}` has no entry for `{env}`, one of the job's environments"
                ));
            }
        }
        for (env, reference) in per_env {
            if !job.environments.contains(env) {
                return Err(format!(
                    "secrets `{key}`.{env}: the job does not run in `{env}` (environments: {}); \
                     remove it",
                    env_list(&job.environments)
                ));
            }
            let foreign = Environment::ALL
                .into_iter()
                .find(|other| other != env && other.is_named_in(reference.name()));
            if !env.is_named_in(reference.name()) || foreign.is_some() {
                return Err(format!(
                    "secrets `{key}`.{env}: {} does not belong to `{env}` (its name must carry \
                     `{env}` and no other environment, like `stepops/{env}/…`): a job reads \
                     only its own environment's secrets",
                    reference.describe()
                ));
            }
        }
    }
    if let Some(dir) = &job.working_dir
        && (!dir.starts_with('/') || dir.split('/').any(|c| c == ".."))
    {
        return Err("`working_dir` must be an absolute path without `..`".into());
    }
    if let Some(group) = &job.concurrency_group
        && !names.is_match(group)
    {
        return Err("`concurrency_group`: lower-case letters, digits and '-'".into());
    }
    Ok(patterns)
}

fn check_timeout(what: &str, timeout: u64, heartbeat: u64) -> Result<(), String> {
    if timeout == 0 || timeout > MAX_TIMEOUT_SECONDS {
        return Err(format!(
            "{what}: `timeout_seconds` must be 1 to {MAX_TIMEOUT_SECONDS}"
        ));
    }
    if heartbeat >= timeout && timeout > *HEARTBEAT_SECONDS.start() {
        return Err(format!(
            "{what}: `heartbeat_seconds` ({heartbeat}) must be below `timeout_seconds` ({timeout})"
        ));
    }
    Ok(())
}

fn check_parameter(
    name: &str,
    p: &Parameter,
    patterns: &mut BTreeMap<String, Regex>,
) -> Result<(), String> {
    match p {
        Parameter::String {
            pattern,
            choices,
            max_length,
            default,
            ..
        } => {
            if let Some(pattern) = pattern {
                let re = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("parameter `{name}`: `pattern` does not compile: {e}"))?;
                patterns.insert(name.to_owned(), re);
            }
            if choices.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!("parameter `{name}`: `enum` is empty"));
            }
            if max_length.is_some_and(|m| m == 0 || m > crate::MAX_VALUE_BYTES) {
                return Err(format!(
                    "parameter `{name}`: `max_length` must be 1 to {}",
                    crate::MAX_VALUE_BYTES
                ));
            }
            if let Some(d) = default {
                crate::request::check_string(name, p, patterns.get(name), d)
                    .map_err(|e| format!("its `default` is invalid: {e}"))?;
            }
        }
        Parameter::Integer {
            minimum,
            maximum,
            default,
            ..
        } => {
            if let (Some(lo), Some(hi)) = (minimum, maximum)
                && lo > hi
            {
                return Err(format!("parameter `{name}`: `minimum` is above `maximum`"));
            }
            if let Some(d) = default {
                crate::request::check_integer(name, p, *d)
                    .map_err(|e| format!("its `default` is invalid: {e}"))?;
            }
        }
        Parameter::Boolean { .. } => {}
    }
    Ok(())
}

fn check_argv(what: &str, argv: &[String], job: &JobDefinition) -> Result<(), String> {
    if argv.is_empty() || argv[0].is_empty() {
        return Err(format!("{what}: the command is empty"));
    }
    if argv[0].starts_with("${") {
        return Err(format!("{what}: the program itself cannot be a parameter"));
    }
    for arg in argv {
        check_placeholder(what, arg, job)?;
    }
    Ok(())
}

/// A value is a literal without `${`, or exactly `${NAME}` naming a parameter or `environment`.
fn check_placeholder(what: &str, value: &str, job: &JobDefinition) -> Result<(), String> {
    match placeholder(value) {
        Some(name) if name == ENVIRONMENT_PLACEHOLDER || job.parameters.contains_key(name) => {
            Ok(())
        }
        Some(name) => Err(format!(
            "{what}: `${{{name}}}` names no parameter (parameters: {})",
            job.parameters
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None if value.contains("${") => Err(format!(
            "{what}: `{value}` mixes text and a placeholder; a parameter is substituted only as a \
             whole argument (`${{NAME}}` alone), so its value is never split or parsed"
        )),
        None => Ok(()),
    }
}

/// `Some(NAME)` when `value` is exactly `${NAME}`.
pub(crate) fn placeholder(value: &str) -> Option<&str> {
    value
        .strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .filter(|n| !n.contains(['{', '}', '$']))
}

pub(crate) fn env_list(envs: &[Environment]) -> String {
    envs.iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
