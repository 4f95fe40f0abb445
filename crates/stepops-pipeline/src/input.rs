//! The execution input of `migrate.asl.json`: validation, the environment guard, defaults.

use serde::Serialize;
use serde_json::{Map, Value};
use stepops_error::{
    Environment, MigrationConfig, StackEnvironment, TargetKind, TargetRef, TargetRefusal,
    json_type_name as type_name,
};

use crate::PipelineError;

/// The stack's configuration: `environment` is `dev` or `prod` (from `STEPOPS_ENVIRONMENT`),
/// `allowed` the list of targets an execution may name (from `STEPOPS_ALLOWED_TARGETS`; see
/// [`StackEnvironment::new`] for its `KIND:NAME` syntax).
pub fn stack_environment(
    environment: &str,
    allowed: &str,
) -> Result<StackEnvironment, PipelineError> {
    let env = Environment::parse(environment.trim()).ok_or_else(|| {
        PipelineError::Misconfigured(format!(
            "{} is `{}`: expected `dev` or `prod`",
            crate::ENV_ENVIRONMENT,
            environment
        ))
    })?;
    StackEnvironment::new(env, allowed).map_err(|why| {
        PipelineError::Misconfigured(format!("{} {why}", crate::ENV_ALLOWED_TARGETS))
    })
}

/// Reads `STEPOPS_ENVIRONMENT` and `STEPOPS_ALLOWED_TARGETS` through `lookup` (e.g.
/// `|k| std::env::var(k).ok()`).
pub fn stack_environment_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<StackEnvironment, PipelineError> {
    let env = lookup(crate::ENV_ENVIRONMENT).ok_or_else(|| {
        PipelineError::Misconfigured(format!("{} is not set", crate::ENV_ENVIRONMENT))
    })?;
    let allowed = lookup(crate::ENV_ALLOWED_TARGETS).unwrap_or_default();
    stack_environment(&env, &allowed)
}

/// The sane limits of the numeric settings (inclusive) and their defaults.
#[derive(Debug, Clone, Copy)]
pub struct Limits;

impl Limits {
    /// `chunkRows`: target rows per chunk.
    pub const CHUNK_ROWS: (u64, u64) = (100, 10_000_000);
    /// Default `chunkRows`.
    pub const DEFAULT_CHUNK_ROWS: u64 = 50_000;
    /// `maxConcurrency`: chunks copied at once.
    pub const MAX_CONCURRENCY: (u64, u64) = (1, 1000);
    /// Default `maxConcurrency`.
    pub const DEFAULT_MAX_CONCURRENCY: u64 = 8;
    /// `maxRounds`: plan → copy → verify rounds before `Stepops.NotConverged`.
    pub const MAX_ROUNDS: (u64, u64) = (1, 20);
    /// Default `maxRounds`.
    pub const DEFAULT_MAX_ROUNDS: u64 = 5;
    /// `delayBeforeStartSeconds`: a wait after validation, before anything is touched (one day
    /// at most).
    pub const DELAY_BEFORE_START_SECONDS: (u64, u64) = (0, 86_400);
}

/// The validated input, with defaults filled in: what every later state reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NormalisedInput {
    /// The stack's (and the input's) environment.
    pub environment: Environment,
    /// Where rows are read.
    pub source: TargetRef,
    /// Where rows are written.
    pub dest: TargetRef,
    /// The migration engine's configuration (`include`, `exclude`, `tables.NAME.rangeKey`,
    /// `status: {table, column, readOnly, readWrite}`), `{}` by default.
    pub config: Map<String, Value>,
    /// Target rows per chunk.
    pub chunk_rows: u64,
    /// Chunks copied at once.
    pub max_concurrency: u64,
    /// Round limit.
    pub max_rounds: u64,
    /// Put the destination read-only before copying and back read-write after.
    pub read_only_during_copy: bool,
    /// Plan only: report what would be copied, copy nothing.
    pub dry_run: bool,
    /// Seconds to wait after validation, before anything is touched (time to stop a run
    /// started by mistake); left out of the output when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub delay_before_start_seconds: u64,
    /// The round the state machine starts with: always 1.
    pub round: u64,
    /// The change-tracking baseline of the round's plan: always `null` at the start (the
    /// plan then takes the destination's marker); the state machine sets it to the previous
    /// plan's `tracking` for the next round.
    pub baseline: Option<Value>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

const FIELDS: [&str; 10] = [
    "environment",
    "source",
    "dest",
    "config",
    "chunkRows",
    "maxConcurrency",
    "maxRounds",
    "readOnlyDuringCopy",
    "dryRun",
    "delayBeforeStartSeconds",
];
/// Validates an execution input against the stack it runs on.
///
/// Refuses with `Stepops.WrongEnvironment` an input whose `environment` is not the stack's, or
/// that names a target of another environment; with `Stepops.InvalidInput` anything else that is
/// wrong (every problem at once). Touches nothing: it only reads `input`.
pub fn validate_input(
    input: &Value,
    stack: &StackEnvironment,
) -> Result<NormalisedInput, PipelineError> {
    let mut problems = Vec::new();
    let mut wrong_env = Vec::new();

    let Some(obj) = input.as_object() else {
        return Err(PipelineError::InvalidInput {
            problems: vec![format!(
                "the input must be a JSON object, got {}",
                type_name(input)
            )],
        });
    };
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            problems.push(format!(
                "unknown field `{key}` (known: {})",
                FIELDS.join(", ")
            ));
        }
    }

    let environment = match obj.get("environment") {
        None => {
            problems.push("`environment` is missing: `dev` or `prod`".into());
            None
        }
        Some(Value::String(s)) => match Environment::parse(s) {
            Some(e) if e == stack.environment => Some(e),
            Some(e) => {
                wrong_env.push(format!(
                    "the input's environment is `{e}` but this stack is `{}`",
                    stack.environment
                ));
                None
            }
            None => {
                problems.push(format!("`environment` is `{s}`: expected `dev` or `prod`"));
                None
            }
        },
        Some(other) => {
            problems.push(format!(
                "`environment` must be a string (`dev` or `prod`), got {}",
                type_name(other)
            ));
            None
        }
    };

    let source = target(obj, "source", stack, &mut problems, &mut wrong_env);
    let dest = target(obj, "dest", stack, &mut problems, &mut wrong_env);
    if let (Some(s), Some(d)) = (&source, &dest)
        && s == d
    {
        problems.push(format!(
            "`source` and `dest` are the same target ({}): a migration needs two databases",
            s.describe()
        ));
    }

    let (config, parsed) = config(obj.get("config"), &mut problems);
    match stepops_error::synapse_key_parameters(obj.get("config")) {
        Err(why) => problems.push(why),
        Ok(keys) => {
            for (field, parameter) in keys {
                let what = format!("the {field} stack's service key: ");
                allowed(
                    stack,
                    field,
                    &parameter,
                    &what,
                    &mut problems,
                    &mut wrong_env,
                );
            }
        }
    }
    let chunk_rows = integer(
        obj,
        "chunkRows",
        Limits::CHUNK_ROWS,
        Limits::DEFAULT_CHUNK_ROWS,
        &mut problems,
    );
    let max_concurrency = integer(
        obj,
        "maxConcurrency",
        Limits::MAX_CONCURRENCY,
        Limits::DEFAULT_MAX_CONCURRENCY,
        &mut problems,
    );
    let max_rounds = integer(
        obj,
        "maxRounds",
        Limits::MAX_ROUNDS,
        Limits::DEFAULT_MAX_ROUNDS,
        &mut problems,
    );
    let read_only_during_copy = boolean(obj, "readOnlyDuringCopy", &mut problems);
    let dry_run = boolean(obj, "dryRun", &mut problems);
    let delay_before_start_seconds = integer(
        obj,
        "delayBeforeStartSeconds",
        Limits::DELAY_BEFORE_START_SECONDS,
        0,
        &mut problems,
    );
    if read_only_during_copy
        && parsed.as_ref().is_none_or(|c| c.status.is_none())
        && let Some(d) = &dest
        && d.kind == TargetKind::Url
        && d.name.starts_with("sqlite:")
    {
        problems.push(format!(
            "`readOnlyDuringCopy` needs `config.status` (a status table: {{\"table\", \"column\", \
             \"readOnly\", \"readWrite\"}}) when `dest` is SQLite ({}): SQLite has no read-only \
             switch of its own",
            d.describe()
        ));
    }

    if !wrong_env.is_empty() {
        let mut message = wrong_env.join("; ");
        if !problems.is_empty() {
            message.push_str(&format!(" (also: {})", problems.join("; ")));
        }
        return Err(PipelineError::WrongEnvironment { message });
    }
    if !problems.is_empty() {
        return Err(PipelineError::InvalidInput { problems });
    }
    Ok(NormalisedInput {
        environment: environment.expect("checked"),
        source: source.expect("checked"),
        dest: dest.expect("checked"),
        config,
        chunk_rows,
        max_concurrency,
        max_rounds,
        read_only_during_copy,
        dry_run,
        delay_before_start_seconds,
        round: 1,
        baseline: None,
    })
}

fn target(
    obj: &Map<String, Value>,
    field: &str,
    stack: &StackEnvironment,
    problems: &mut Vec<String>,
    wrong_env: &mut Vec<String>,
) -> Option<TargetRef> {
    let target = TargetRef::from_json(field, obj.get(field))
        .map_err(|why| problems.push(why))
        .ok()?;
    allowed(stack, field, &target, "", problems, wrong_env).then_some(target)
}

/// Whether `stack` allows `target` (named `field`); a refusal goes to `wrong_env` (another
/// environment's) or `problems` (not configured), after `what`.
fn allowed(
    stack: &StackEnvironment,
    field: &str,
    target: &TargetRef,
    what: &str,
    problems: &mut Vec<String>,
    wrong_env: &mut Vec<String>,
) -> bool {
    match stack.check(field, target) {
        Ok(()) => true,
        Err(TargetRefusal::OtherEnvironment(why)) => {
            wrong_env.push(format!("{what}{why}"));
            false
        }
        Err(TargetRefusal::NotConfigured(why)) => {
            problems.push(format!("{what}{why}"));
            false
        }
    }
}

/// `config`: the migration engine's own [`MigrationConfig`], deserialized as the engine does
/// (so a key the engine accepts is accepted here without a second edit), handed on as given.
fn config(
    value: Option<&Value>,
    problems: &mut Vec<String>,
) -> (Map<String, Value>, Option<MigrationConfig>) {
    let Some(value) = value else {
        return (Map::new(), None);
    };
    let Some(map) = value.as_object() else {
        problems.push(format!(
            "`config` must be an object (e.g. {{\"exclude\": [\"audit_log\"]}}), got {}",
            type_name(value)
        ));
        return (Map::new(), None);
    };
    match MigrationConfig::from_json("config", value) {
        Ok(parsed) => (map.clone(), Some(parsed)),
        Err(found) => {
            problems.extend(found);
            (map.clone(), None)
        }
    }
}

fn integer(
    obj: &Map<String, Value>,
    field: &str,
    (min, max): (u64, u64),
    default: u64,
    problems: &mut Vec<String>,
) -> u64 {
    match obj.get(field) {
        None => default,
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => n,
            _ if v.is_number() || v.as_str().is_some_and(|s| s.parse::<f64>().is_ok()) => {
                problems.push(format!(
                    "`{field}` is {v}: must be a whole number from {min} to {max}"
                ));
                default
            }
            _ => {
                problems.push(format!(
                    "`{field}` must be a whole number from {min} to {max}, got {}",
                    type_name(v)
                ));
                default
            }
        },
    }
}

fn boolean(obj: &Map<String, Value>, field: &str, problems: &mut Vec<String>) -> bool {
    match obj.get(field) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            problems.push(format!(
                "`{field}` must be true or false, got {}",
                type_name(v)
            ));
            false
        }
    }
}
