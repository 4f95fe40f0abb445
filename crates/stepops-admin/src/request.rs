//! The admin request: parsed and validated from the state machine's input or from CLI arguments,
//! before any request of any kind is sent.
//!
//! State machine input:
//! `{"environment": "dev", "task": "remove-user", "args": {"userId": "3350396"}, "dryRun": true}`.
//! Unknown keys anywhere are refused (a typo such as `dry_run` must not turn a dry run into a
//! real one). A `prod` request must carry `"confirm"`: its target typed again (`"3350396"`,
//! `"syn123"`, the email or the feature), so that a start from the console is confirmed as
//! `stepops admin` confirms it on the terminal; `Stepops.NotConfirmed` otherwise.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::AdminError;
use crate::types::{ClientId, Email, EntityId, Environment, Feature, UserId, quote};

/// One admin task with its validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Read the user's bundle for the audit record, then redact the user.
    RemoveUser {
        /// The user to redact.
        user_id: UserId,
    },
    /// Read the OAuth client's etag, then set its verification status.
    VerifyOAuthClient {
        /// The client.
        client_id: ClientId,
        /// The verification status to set (default `true`).
        status: bool,
    },
    /// Set the entity's data type to `OPEN_DATA`.
    MakePublic {
        /// The entity.
        entity_id: EntityId,
    },
    /// Remove the user's certification.
    DecertifyUser {
        /// The user.
        user_id: UserId,
    },
    /// Reset the user's status so they can sign in again.
    ReenableUser {
        /// The user.
        user_id: UserId,
    },
    /// Expire the quarantine of an email address.
    UnquarantineEmail {
        /// The address.
        email: Email,
    },
    /// Enable or disable a feature globally.
    SetFeature {
        /// The feature.
        feature: Feature,
        /// Whether it should be enabled.
        enabled: bool,
    },
}

/// The task names, as the input and the CLI spell them.
pub const TASK_NAMES: [&str; 7] = [
    "remove-user",
    "verify-oauth-client",
    "make-public",
    "decertify-user",
    "reenable-user",
    "unquarantine-email",
    "set-feature",
];

impl Task {
    /// The task's name (`remove-user`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Task::RemoveUser { .. } => "remove-user",
            Task::VerifyOAuthClient { .. } => "verify-oauth-client",
            Task::MakePublic { .. } => "make-public",
            Task::DecertifyUser { .. } => "decertify-user",
            Task::ReenableUser { .. } => "reenable-user",
            Task::UnquarantineEmail { .. } => "unquarantine-email",
            Task::SetFeature { .. } => "set-feature",
        }
    }

    /// The object the task acts on, as the audit record names it (`user:3350396`, `syn123`, …).
    pub fn target(&self) -> String {
        match self {
            Task::RemoveUser { user_id }
            | Task::DecertifyUser { user_id }
            | Task::ReenableUser { user_id } => format!("user:{user_id}"),
            Task::VerifyOAuthClient { client_id, .. } => format!("oauth-client:{client_id}"),
            Task::MakePublic { entity_id } => entity_id.to_string(),
            Task::UnquarantineEmail { email } => format!("email:{email}"),
            Task::SetFeature { feature, .. } => format!("feature:{feature}"),
        }
    }

    /// The bare target id a person types again to confirm a prod run (`3350396`, `syn123`, …).
    pub fn target_id(&self) -> String {
        match self {
            Task::RemoveUser { user_id }
            | Task::DecertifyUser { user_id }
            | Task::ReenableUser { user_id } => user_id.to_string(),
            Task::VerifyOAuthClient { client_id, .. } => client_id.to_string(),
            Task::MakePublic { entity_id } => entity_id.to_string(),
            Task::UnquarantineEmail { email } => email.to_string(),
            Task::SetFeature { feature, .. } => feature.to_string(),
        }
    }

    /// The arguments as the state machine input carries them (canonical form).
    pub fn args_json(&self) -> Value {
        match self {
            Task::RemoveUser { user_id }
            | Task::DecertifyUser { user_id }
            | Task::ReenableUser { user_id } => json!({ "userId": user_id }),
            Task::VerifyOAuthClient { client_id, status } => {
                json!({ "clientId": client_id, "status": status })
            }
            Task::MakePublic { entity_id } => json!({ "entityId": entity_id }),
            Task::UnquarantineEmail { email } => json!({ "email": email }),
            Task::SetFeature { feature, enabled } => {
                json!({ "feature": feature, "enabled": enabled })
            }
        }
    }
}

/// A validated admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest {
    /// The environment the request is for (always the stack's own once validated).
    pub environment: Environment,
    /// The task and its arguments.
    pub task: Task,
    /// Perform only the reads and report what would change.
    pub dry_run: bool,
    /// Who asked for the run, as the starter declared it (`startedBy` in the input; the CLI
    /// fills it with the caller's identity). Recorded in the audit record; not an authorisation.
    pub started_by: Option<String>,
    /// The target typed again to confirm the run (`confirm` in the input), in its canonical
    /// form; required in `prod` (see [`AdminRequest::with_confirmation`]).
    pub confirm: Option<String>,
}

/// The state machine input form of a request (what [`AdminRequest::to_input`] produces).
#[derive(Debug, Serialize)]
struct Input<'a> {
    environment: Environment,
    task: &'a str,
    args: Value,
    #[serde(rename = "dryRun")]
    dry_run: bool,
    #[serde(rename = "startedBy", skip_serializing_if = "Option::is_none")]
    started_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm: Option<&'a str>,
}

/// Checks a declared `startedBy`: 1 to 256 printable characters.
fn check_started_by(raw: &str) -> Result<String, AdminError> {
    let n = raw.chars().count();
    if n == 0 || n > 256 || raw.chars().any(char::is_control) || raw.trim() != raw {
        return Err(AdminError::invalid(format!(
            "`startedBy` {} must be 1 to 256 printable characters (an IAM ARN or a user name)",
            quote(raw)
        )));
    }
    Ok(raw.to_owned())
}

impl AdminRequest {
    /// Parses and validates the state machine input. `stack` is the stack's own environment: a
    /// request for the other one is refused with [`AdminError::WrongEnvironment`].
    pub fn from_input(input: &Value, stack: Environment) -> Result<Self, AdminError> {
        let obj = input.as_object().ok_or_else(|| {
            AdminError::invalid(
                "the input must be a JSON object such as {\"environment\": \"dev\", \"task\": \"remove-user\", \"args\": {\"userId\": \"3350396\"}, \"dryRun\": true}",
            )
        })?;
        reject_unknown_keys(
            "input",
            obj,
            &[
                "environment",
                "task",
                "args",
                "dryRun",
                "startedBy",
                "confirm",
            ],
        )?;
        let environment = check_environment(required_str(obj, "environment", "input")?, stack)?;
        let task_name = required_str(obj, "task", "input")?;
        let dry_run = match obj.get("dryRun") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(AdminError::invalid(format!(
                    "`dryRun` must be true or false (a JSON boolean), not {other}"
                )));
            }
        };
        let empty = Map::new();
        let args = match obj.get("args") {
            None => &empty,
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(AdminError::invalid(format!(
                    "`args` must be a JSON object, not {other}"
                )));
            }
        };
        let task = parse_task_json(task_name, args)?;
        let started_by = match obj.get("startedBy") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(check_started_by(s)?),
            Some(other) => {
                return Err(AdminError::invalid(format!(
                    "`startedBy` must be a string, not {other}"
                )));
            }
        };
        let request = AdminRequest {
            environment,
            task,
            dry_run,
            started_by,
            confirm: None,
        };
        match obj.get("confirm") {
            None | Some(Value::Null) if environment == Environment::Prod => {
                Err(AdminError::NotConfirmed(format!(
                    "a prod admin task must be confirmed: add \"confirm\": {} (the target typed again) to the input; nothing was sent",
                    quote(&request.task.target_id())
                )))
            }
            None | Some(Value::Null) => Ok(request),
            Some(Value::String(typed)) => request.with_confirmation(typed),
            Some(other) => Err(AdminError::invalid(format!(
                "`confirm` must be a string (the target typed again), not {other}"
            ))),
        }
    }

    /// Parses and validates CLI arguments: `environment` from `--env`, the task name, then the
    /// task's own arguments (`remove-user 3350396`, `verify-oauth-client 100001 --status false`,
    /// `set-feature MULTIPART_AUTO_CLEANUP --enabled true`, …). The same rules as
    /// [`AdminRequest::from_input`] apply.
    pub fn from_cli<S: AsRef<str>>(
        environment: &str,
        stack: Environment,
        task: &str,
        args: &[S],
        dry_run: bool,
    ) -> Result<Self, AdminError> {
        let environment = check_environment(environment, stack)?;
        let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        let task = parse_task_cli(task, &args)?;
        Ok(AdminRequest {
            environment,
            task,
            dry_run,
            started_by: None,
            confirm: None,
        })
    }

    /// Records `typed` (the target typed again by whoever starts the run) as the request's
    /// confirmation, in the target's canonical form. [`AdminError::NotConfirmed`] if it does
    /// not name this request's target (see [`AdminRequest::confirms`]).
    pub fn with_confirmation(mut self, typed: &str) -> Result<Self, AdminError> {
        if !self.confirms(typed) {
            return Err(AdminError::NotConfirmed(format!(
                "`confirm` {} does not name the target of {}: the input needs \"confirm\": {} (the target typed again); nothing was sent",
                quote(typed),
                self.task.name(),
                quote(&self.task.target_id()),
            )));
        }
        self.confirm = Some(self.task.target_id());
        Ok(self)
    }

    /// Records who asks for the run (for example the CLI caller's IAM ARN).
    pub fn with_started_by(mut self, who: &str) -> Result<Self, AdminError> {
        self.started_by = Some(check_started_by(who)?);
        Ok(self)
    }

    /// Whether `typed` (what a person typed to confirm a `prod` run) names this request's
    /// target: the same id, email or feature, ignoring surrounding spaces (and the case of an
    /// entity's `syn` prefix).
    pub fn confirms(&self, typed: &str) -> bool {
        let typed = typed.trim();
        match &self.task {
            Task::MakePublic { entity_id } => EntityId::parse(typed).is_ok_and(|e| e == *entity_id),
            _ => typed == self.task.target_id(),
        }
    }

    /// A Step Functions execution name for this request: `admin-TASK-TARGET-YYYYMMDDTHHMMSSZ`,
    /// limited to the allowed characters (`A-Z a-z 0-9 - _`) and 80 characters.
    pub fn execution_name(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let target: String = self
            .task
            .target_id()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
        let dry = if self.dry_run { "-dry" } else { "" };
        let head = format!("admin-{}-", self.task.name());
        let room = 80 - head.len() - stamp.len() - dry.len() - 1;
        let target: String = target.chars().take(room).collect();
        format!("{head}{target}-{stamp}{dry}")
    }

    /// The state machine input for this request (what the CLI starts an execution with).
    pub fn to_input(&self) -> Value {
        serde_json::to_value(Input {
            environment: self.environment,
            task: self.task.name(),
            args: self.task.args_json(),
            dry_run: self.dry_run,
            started_by: self.started_by.as_deref(),
            confirm: self.confirm.as_deref(),
        })
        .unwrap_or(Value::Null)
    }
}

fn check_environment(raw: &str, stack: Environment) -> Result<Environment, AdminError> {
    let env = crate::types::parse_environment(raw)?;
    if env != stack {
        return Err(AdminError::WrongEnvironment {
            requested: env.to_string(),
            stack: stack.to_string(),
        });
    }
    Ok(env)
}

fn unknown_task(name: &str) -> AdminError {
    AdminError::invalid(format!(
        "task {} is unknown; use one of {}",
        quote(name),
        TASK_NAMES.join(", ")
    ))
}

fn reject_unknown_keys(
    what: &str,
    obj: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), AdminError> {
    if let Some(key) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        let allowed = if allowed.is_empty() {
            "none".to_owned()
        } else {
            allowed.join(", ")
        };
        return Err(AdminError::invalid(format!(
            "{what} has an unknown key {}; allowed: {allowed}",
            quote(key)
        )));
    }
    Ok(())
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<&'a str, AdminError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(AdminError::invalid(format!(
            "`{key}` in {what} must be a string, not {other}"
        ))),
        None => Err(AdminError::invalid(format!("{what} is missing `{key}`"))),
    }
}

/// An id given as a JSON string of digits or as a JSON integer.
fn id_text(args: &Map<String, Value>, key: &str) -> Result<String, AdminError> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        Some(other) => Err(AdminError::invalid(format!(
            "`args.{key}` must be a positive whole number (as a string or a JSON integer), not {other}"
        ))),
        None => Err(AdminError::invalid(format!("`args` is missing `{key}`"))),
    }
}

fn optional_bool(args: &Map<String, Value>, key: &str) -> Result<Option<bool>, AdminError> {
    match args.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(AdminError::invalid(format!(
            "`args.{key}` must be true or false (a JSON boolean), not {other}"
        ))),
    }
}

fn parse_task_json(name: &str, args: &Map<String, Value>) -> Result<Task, AdminError> {
    let keys: &[&str] = match name {
        "remove-user" | "decertify-user" | "reenable-user" => &["userId"],
        "verify-oauth-client" => &["clientId", "status"],
        "make-public" => &["entityId"],
        "unquarantine-email" => &["email"],
        "set-feature" => &["feature", "enabled"],
        _ => return Err(unknown_task(name)),
    };
    reject_unknown_keys(&format!("`args` of {name}"), args, keys)?;
    let user = || -> Result<UserId, AdminError> { UserId::parse(&id_text(args, "userId")?) };
    Ok(match name {
        "remove-user" => Task::RemoveUser { user_id: user()? },
        "decertify-user" => Task::DecertifyUser { user_id: user()? },
        "reenable-user" => Task::ReenableUser { user_id: user()? },
        "verify-oauth-client" => Task::VerifyOAuthClient {
            client_id: ClientId::parse(&id_text(args, "clientId")?)?,
            status: optional_bool(args, "status")?.unwrap_or(true),
        },
        "make-public" => Task::MakePublic {
            entity_id: EntityId::parse(required_str(args, "entityId", "`args`")?)?,
        },
        "unquarantine-email" => Task::UnquarantineEmail {
            email: Email::parse(required_str(args, "email", "`args`")?)?,
        },
        "set-feature" => Task::SetFeature {
            feature: Feature::parse(required_str(args, "feature", "`args`")?)?,
            enabled: optional_bool(args, "enabled")?.ok_or_else(|| {
                AdminError::invalid("`args` of set-feature is missing `enabled` (true or false)")
            })?,
        },
        _ => return Err(unknown_task(name)),
    })
}

/// A strict CLI boolean: exactly `true` or `false`.
fn cli_bool(option: &str, raw: &str) -> Result<bool, AdminError> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(AdminError::invalid(format!(
            "{option} must be `true` or `false`, not {}",
            quote(raw)
        ))),
    }
}

/// CLI arguments split into positionals and `(option, value)` pairs.
type SplitArgs<'a> = (Vec<&'a str>, Vec<(String, &'a str)>);

/// Splits CLI arguments into positionals and `--option value` / `--option=value` pairs, allowing
/// only the named options, each at most once.
fn split_cli<'a>(
    task: &str,
    args: &[&'a str],
    options: &[&str],
) -> Result<SplitArgs<'a>, AdminError> {
    let mut positionals = Vec::new();
    let mut given: Vec<(String, &'a str)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        if let Some(rest) = arg.strip_prefix("--") {
            let (name, value) = match rest.split_once('=') {
                Some((n, v)) => (n, v),
                None => {
                    i += 1;
                    let v = args.get(i).ok_or_else(|| {
                        AdminError::invalid(format!("--{rest} needs a value (true or false)"))
                    })?;
                    (rest, *v)
                }
            };
            if !options.contains(&name) {
                let allowed = if options.is_empty() {
                    "none".to_owned()
                } else {
                    options
                        .iter()
                        .map(|o| format!("--{o}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(AdminError::invalid(format!(
                    "{task} has no option {}; its options: {allowed}",
                    quote(&format!("--{name}"))
                )));
            }
            if given.iter().any(|(n, _)| n == name) {
                return Err(AdminError::invalid(format!("--{name} is given twice")));
            }
            given.push((name.to_owned(), value));
        } else {
            positionals.push(arg);
        }
        i += 1;
    }
    Ok((positionals, given))
}

fn parse_task_cli(name: &str, args: &[&str]) -> Result<Task, AdminError> {
    let (usage, options): (&str, &[&str]) = match name {
        "remove-user" | "decertify-user" | "reenable-user" => ("USER_ID", &[]),
        "verify-oauth-client" => ("CLIENT_ID [--status true|false]", &["status"]),
        "make-public" => ("SYN_ID", &[]),
        "unquarantine-email" => ("EMAIL", &[]),
        "set-feature" => ("FEATURE --enabled true|false", &["enabled"]),
        _ => return Err(unknown_task(name)),
    };
    let (positionals, given) = split_cli(name, args, options)?;
    let target = match positionals.as_slice() {
        [one] => *one,
        [] => {
            return Err(AdminError::invalid(format!(
                "{name} needs its target: {name} {usage}"
            )));
        }
        [_, extra, ..] => {
            return Err(AdminError::invalid(format!(
                "{name} takes one target, but {} was given too: {name} {usage}",
                quote(extra)
            )));
        }
    };
    let option = |n: &str| given.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    Ok(match name {
        "remove-user" => Task::RemoveUser {
            user_id: UserId::parse(target)?,
        },
        "decertify-user" => Task::DecertifyUser {
            user_id: UserId::parse(target)?,
        },
        "reenable-user" => Task::ReenableUser {
            user_id: UserId::parse(target)?,
        },
        "verify-oauth-client" => Task::VerifyOAuthClient {
            client_id: ClientId::parse(target)?,
            status: match option("status") {
                Some(v) => cli_bool("--status", v)?,
                None => true,
            },
        },
        "make-public" => Task::MakePublic {
            entity_id: EntityId::parse(target)?,
        },
        "unquarantine-email" => Task::UnquarantineEmail {
            email: Email::parse(target)?,
        },
        "set-feature" => Task::SetFeature {
            feature: Feature::parse(target)?,
            enabled: match option("enabled") {
                Some(v) => cli_bool("--enabled", v)?,
                None => {
                    return Err(AdminError::invalid(format!(
                        "set-feature needs --enabled true or --enabled false: {name} {usage}"
                    )));
                }
            },
        },
        _ => return Err(unknown_task(name)),
    })
}

#[cfg(test)]
mod tests;
