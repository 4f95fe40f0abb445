//! The execution input of `migrate.asl.json`: validation, the environment guard, defaults.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::PipelineError;

/// One of the two environments a stack can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Development: may have several namespaced stacks.
    Dev,
    /// Production: exactly one stack.
    Prod,
}

impl Environment {
    /// Every environment, in documentation order.
    pub const ALL: [Environment; 2] = [Environment::Dev, Environment::Prod];

    /// `"dev"` or `"prod"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Prod => "prod",
        }
    }

    /// Parses `dev` / `prod` (exactly, lower case).
    pub fn parse(text: &str) -> Option<Environment> {
        Environment::ALL.into_iter().find(|e| e.as_str() == text)
    }

    /// Words that mark a name as belonging to this environment (`stepops/prod/db`).
    fn markers(self) -> &'static [&'static str] {
        match self {
            Environment::Dev => &["dev", "development"],
            Environment::Prod => &["prod", "production", "prd"],
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a target (a database) is named in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// A Secrets Manager secret whose value is the database URL.
    Secret,
    /// An SSM SecureString parameter whose value is the database URL.
    Parameter,
    /// An inline URL without credentials (local runs: `sqlite:PATH`).
    Url,
}

impl TargetKind {
    /// The input's key for this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::Secret => "secret",
            TargetKind::Parameter => "parameter",
            TargetKind::Url => "url",
        }
    }

    fn parse(text: &str) -> Option<TargetKind> {
        [TargetKind::Secret, TargetKind::Parameter, TargetKind::Url]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// One side of the migration, by name; its value (a URL) is fetched by the runner at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// How it is named.
    pub kind: TargetKind,
    /// The secret's or parameter's name, or the URL.
    pub name: String,
}

impl Target {
    /// `secret stepops/dev/source-db`, with any inline credentials redacted.
    pub fn describe(&self) -> String {
        format!("{} `{}`", self.kind.as_str(), crate::redact(&self.name))
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.kind.as_str(), &self.name)?;
        map.end()
    }
}

/// One entry of the stack's allow-list: a kind and a name, or a name prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedTarget {
    /// The kind it allows.
    pub kind: TargetKind,
    /// The exact name, or a prefix followed by `*`.
    pub pattern: String,
}

impl AllowedTarget {
    fn matches(&self, target: &Target) -> bool {
        self.kind == target.kind
            && match self.pattern.strip_suffix('*') {
                Some(prefix) => target.name.starts_with(prefix),
                None => target.name == self.pattern,
            }
    }
}

impl fmt::Display for AllowedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.pattern)
    }
}

/// The stack's own environment and the targets configured for it (from the function's
/// environment variables `STEPOPS_ENVIRONMENT` and `STEPOPS_ALLOWED_TARGETS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEnvironment {
    /// The stack's environment.
    pub environment: Environment,
    /// The targets an execution on this stack may name.
    pub allowed_targets: Vec<AllowedTarget>,
}

impl StackEnvironment {
    /// Parses the stack's configuration: `environment` is `dev` or `prod`; `allowed` is a list
    /// of `KIND:NAME` separated by commas or whitespace, where KIND is `secret`, `parameter` or
    /// `url` and NAME may end in `*` to allow a prefix (e.g.
    /// `secret:stepops/dev/source-db,secret:stepops/dev/dest-db` or `url:sqlite:*` locally).
    pub fn parse(environment: &str, allowed: &str) -> Result<StackEnvironment, PipelineError> {
        let env = Environment::parse(environment.trim()).ok_or_else(|| {
            PipelineError::Misconfigured(format!(
                "{} is `{}`: expected `dev` or `prod`",
                crate::ENV_ENVIRONMENT,
                environment
            ))
        })?;
        let mut allowed_targets = Vec::new();
        for item in allowed
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let (kind, pattern) = item
                .split_once(':')
                .and_then(|(k, p)| Some((TargetKind::parse(k)?, p)))
                .filter(|(_, p)| !p.is_empty())
                .ok_or_else(|| {
                    PipelineError::Misconfigured(format!(
                        "{} entry `{}` is not KIND:NAME with KIND secret, parameter or url",
                        crate::ENV_ALLOWED_TARGETS,
                        crate::redact(item)
                    ))
                })?;
            allowed_targets.push(AllowedTarget {
                kind,
                pattern: pattern.to_owned(),
            });
        }
        if allowed_targets.is_empty() {
            return Err(PipelineError::Misconfigured(format!(
                "{} is empty: no target may be migrated from this stack",
                crate::ENV_ALLOWED_TARGETS
            )));
        }
        Ok(StackEnvironment {
            environment: env,
            allowed_targets,
        })
    }

    /// Reads `STEPOPS_ENVIRONMENT` and `STEPOPS_ALLOWED_TARGETS` through `lookup` (e.g.
    /// `|k| std::env::var(k).ok()`).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<StackEnvironment, PipelineError> {
        let env = lookup(crate::ENV_ENVIRONMENT).ok_or_else(|| {
            PipelineError::Misconfigured(format!("{} is not set", crate::ENV_ENVIRONMENT))
        })?;
        let allowed = lookup(crate::ENV_ALLOWED_TARGETS).unwrap_or_default();
        StackEnvironment::parse(&env, &allowed)
    }

    /// Whether an execution on this stack may name `target`.
    pub fn allows(&self, target: &Target) -> bool {
        self.allowed_targets.iter().any(|a| a.matches(target))
    }

    fn allowed_list(&self) -> String {
        self.allowed_targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
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
}

/// The validated input, with defaults filled in: what every later state reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NormalisedInput {
    /// The stack's (and the input's) environment.
    pub environment: Environment,
    /// Where rows are read.
    pub source: Target,
    /// Where rows are written.
    pub dest: Target,
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
    /// The round the state machine starts with: always 1.
    pub round: u64,
    /// The change-tracking baseline of the round's plan: always `null` at the start (the
    /// plan then takes the destination's marker); the state machine sets it to the previous
    /// plan's `tracking` for the next round.
    pub baseline: Option<Value>,
}

const FIELDS: [&str; 9] = [
    "environment",
    "source",
    "dest",
    "config",
    "chunkRows",
    "maxConcurrency",
    "maxRounds",
    "readOnlyDuringCopy",
    "dryRun",
];
const CONFIG_FIELDS: [&str; 6] = [
    "changeTracking",
    "deferIndexes",
    "exclude",
    "include",
    "status",
    "tables",
];
const TABLE_FIELDS: [&str; 2] = ["rangeKey", "range_key"];

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

    let config = config(obj.get("config"), &mut problems);
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
    if read_only_during_copy
        && !config.contains_key("status")
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
        round: 1,
        baseline: None,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn target(
    obj: &Map<String, Value>,
    field: &str,
    stack: &StackEnvironment,
    problems: &mut Vec<String>,
    wrong_env: &mut Vec<String>,
) -> Option<Target> {
    const SHAPE: &str = r#"{"secret": NAME}, {"parameter": NAME} or {"url": "sqlite:PATH"}"#;
    let Some(value) = obj.get(field) else {
        problems.push(format!("`{field}` is missing: {SHAPE}"));
        return None;
    };
    let Some(t) = value.as_object() else {
        problems.push(format!(
            "`{field}` must be an object {SHAPE}, got {}",
            type_name(value)
        ));
        return None;
    };
    if t.len() != 1 {
        let keys: Vec<_> = t.keys().map(|k| format!("`{k}`")).collect();
        problems.push(format!(
            "`{field}` must have exactly one key ({SHAPE}), got {}",
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            }
        ));
        return None;
    }
    let (key, name) = t.iter().next().expect("one key");
    let Some(kind) = TargetKind::parse(key) else {
        problems.push(format!("`{field}.{key}` is not a target kind: {SHAPE}"));
        return None;
    };
    let Some(name) = name.as_str().map(str::trim).filter(|s| !s.is_empty()) else {
        problems.push(format!(
            "`{field}.{key}` must be a non-empty string, got {}",
            type_name(name)
        ));
        return None;
    };
    let target = Target {
        kind,
        name: name.to_owned(),
    };
    if kind == TargetKind::Url
        && let Err(why) = check_url(name)
    {
        problems.push(format!("`{field}.url` ({}) {why}", target.describe()));
        return None;
    }
    if stack.allows(&target) {
        return Some(target);
    }
    let other = Environment::ALL
        .into_iter()
        .filter(|e| *e != stack.environment)
        .find(|e| mentions(&target.name, *e));
    match other {
        Some(e) => wrong_env.push(format!(
            "`{field}` is {}, a {e} target, but this stack is `{}`",
            target.describe(),
            stack.environment
        )),
        None => problems.push(format!(
            "`{field}` is {}, which is not configured for this {} stack (configured: {})",
            target.describe(),
            stack.environment,
            stack.allowed_list()
        )),
    }
    None
}

/// Whether a target name carries one of `env`'s markers as a word (`stepops/prod/db`,
/// `prod-db`, `/stepops/production/url`).
fn mentions(name: &str, env: Environment) -> bool {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| env.markers().contains(&word.to_ascii_lowercase().as_str()))
}

/// Accepts `sqlite:PATH` and `postgres[ql]://…` without inline password.
fn check_url(url: &str) -> Result<(), String> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err("has no file path: use sqlite:PATH".into());
        }
        return Ok(());
    }
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("is not a supported URL: use sqlite:PATH, or name a secret or parameter")?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Err(
            "has a password inline: put the URL in a secret and use {\"secret\": NAME}".into(),
        );
    }
    let lower = url.to_ascii_lowercase();
    if lower.contains("password=") || lower.contains("passwd=") {
        return Err(
            "has a password inline: put the URL in a secret and use {\"secret\": NAME}".into(),
        );
    }
    Ok(())
}

fn config(value: Option<&Value>, problems: &mut Vec<String>) -> Map<String, Value> {
    let Some(value) = value else {
        return Map::new();
    };
    let Some(map) = value.as_object() else {
        problems.push(format!(
            "`config` must be an object (e.g. {{\"exclude\": [\"audit_log\"]}}), got {}",
            type_name(value)
        ));
        return Map::new();
    };
    for (key, v) in map {
        if !CONFIG_FIELDS.contains(&key.as_str()) {
            problems.push(format!(
                "unknown field `config.{key}` (known: {})",
                CONFIG_FIELDS.join(", ")
            ));
            continue;
        }
        if key == "tables" {
            table_settings(v, problems);
            continue;
        }
        if key == "status" {
            status_settings(v, map.get("include"), problems);
            continue;
        }
        if key == "changeTracking" {
            tracking_settings(v, problems);
            continue;
        }
        if key == "deferIndexes" {
            if !v.is_boolean() {
                problems.push("`config.deferIndexes` must be true or false".into());
            }
            continue;
        }
        let ok = v.as_array().is_some_and(|a| {
            a.iter()
                .all(|t| t.as_str().is_some_and(|s| !s.trim().is_empty()))
        });
        if !ok {
            problems.push(format!(
                "`config.{key}` must be an array of table names (non-empty strings)"
            ));
        }
    }
    map.clone()
}

/// `config.changeTracking`: `{"slot": NAME, "fullCheck": false}` (what
/// `stepops_migrate::TrackingConfig` accepts; this crate stays free of the database drivers, and
/// a test checks both agree on slot names).
fn tracking_settings(value: &Value, problems: &mut Vec<String>) {
    const SHAPE: &str = r#"{"slot": "stepops_dev", "fullCheck": false}"#;
    let Some(t) = value.as_object() else {
        problems.push(format!("`config.changeTracking` must be an object {SHAPE}"));
        return;
    };
    for key in t.keys() {
        if key != "slot" && key != "fullCheck" {
            problems.push(format!(
                "unknown field `config.changeTracking.{key}` (known: slot, fullCheck)"
            ));
        }
    }
    match t.get("slot").and_then(Value::as_str) {
        Some(slot) if valid_slot_name(slot) => {}
        Some(slot) => problems.push(format!(
            "`config.changeTracking.slot` {slot:?} is not a valid replication slot name: use 1 to 63 lower-case letters, digits and underscores"
        )),
        None => problems.push(format!(
            "`config.changeTracking.slot` must be a string: {SHAPE}"
        )),
    }
    if t.get("fullCheck").is_some_and(|f| !f.is_boolean()) {
        problems.push("`config.changeTracking.fullCheck` must be true or false".into());
    }
}

/// A PostgreSQL replication slot name as stepops creates them.
pub fn valid_slot_name(slot: &str) -> bool {
    !slot.is_empty()
        && slot.len() <= 63
        && slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `config.status`: `{"table": "stack_status", "column": "status", "readOnly": "READ_ONLY",
/// "readWrite": "READ_WRITE"}` (the destination's application status table, for
/// `readOnlyDuringCopy`; it is never migrated itself).
fn status_settings(value: &Value, include: Option<&Value>, problems: &mut Vec<String>) {
    const SHAPE: &str = r#"{"table": "stack_status", "column": "status", "readOnly": "READ_ONLY", "readWrite": "READ_WRITE"}"#;
    let Some(status) = value.as_object() else {
        problems.push(format!(
            "`config.status` must be an object {SHAPE}, got {}",
            type_name(value)
        ));
        return;
    };
    let mut get = |names: &[&str]| -> Option<String> {
        let found: Vec<&Value> = names.iter().filter_map(|n| status.get(*n)).collect();
        match found.as_slice() {
            [] => {
                problems.push(format!("`config.status.{}` is missing: {SHAPE}", names[0]));
                None
            }
            [Value::String(s)] if !s.trim().is_empty() => Some(s.clone()),
            [v] => {
                problems.push(format!(
                    "`config.status.{}` must be a non-empty string, got {}",
                    names[0],
                    type_name(v)
                ));
                None
            }
            _ => {
                problems.push(format!(
                    "`config.status` has both `{}` and `{}`",
                    names[0], names[1]
                ));
                None
            }
        }
    };
    let table = get(&["table"]);
    let _column = get(&["column"]);
    let read_only = get(&["readOnly", "read_only"]);
    let read_write = get(&["readWrite", "read_write"]);
    for key in status.keys() {
        if ![
            "table",
            "column",
            "readOnly",
            "read_only",
            "readWrite",
            "read_write",
        ]
        .contains(&key.as_str())
        {
            problems.push(format!(
                "unknown field `config.status.{key}` (known: table, column, readOnly, readWrite)"
            ));
        }
    }
    if let (Some(a), Some(b)) = (&read_only, &read_write)
        && a == b
    {
        problems.push(format!(
            "`config.status.readOnly` and `config.status.readWrite` are both `{a}`: they must differ"
        ));
    }
    if let Some(table) = table
        && include
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(table.as_str())))
    {
        problems.push(format!(
            "`config.include` names the status table `{table}`, which is never migrated: remove it"
        ));
    }
}

/// `config.tables`: `{"acl": {"rangeKey": "entity_id"}}`.
fn table_settings(value: &Value, problems: &mut Vec<String>) {
    let Some(tables) = value.as_object() else {
        problems.push(format!(
            "`config.tables` must be an object of table name → {{\"rangeKey\": COLUMN}}, got {}",
            type_name(value)
        ));
        return;
    };
    for (table, settings) in tables {
        let Some(settings) = settings.as_object() else {
            problems.push(format!(
                "`config.tables.{table}` must be an object such as {{\"rangeKey\": \"id\"}}"
            ));
            continue;
        };
        for (k, v) in settings {
            if !TABLE_FIELDS.contains(&k.as_str()) {
                problems.push(format!(
                    "unknown field `config.tables.{table}.{k}` (known: rangeKey)"
                ));
            } else if v.as_str().is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!(
                    "`config.tables.{table}.{k}` must be a column name (a non-empty string)"
                ));
            }
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
