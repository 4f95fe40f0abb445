//! Runs one validated admin request and produces its audit record.

use std::time::{Duration, Instant, SystemTime};

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use stepops_error::Named;

use crate::client::{Call, SynapseClient, USER_BUNDLE_MASK_ALL, USER_BUNDLE_MASK_CERTIFIED, api};
use crate::error::AdminError;
use crate::request::{AdminRequest, Task};
use crate::token::TokenSource;
use crate::types::{Environment, UserId};

/// The tracing target of the audit record's log line. The line also carries the fields
/// `audit = true` and `record` (the [`AuditRecord`] as JSON): that is how it is found in the
/// function's log group, whatever the log format (see [`crate::logging`]).
pub const AUDIT_TARGET: &str = "stepops_admin::audit";

/// What the admin Lambda keeps back from its invocation's deadline: the time to log the audit
/// record of a task cut off by its budget and to answer with its named error
/// (`Stepops.Transient`, retried by the state machine) instead of being killed by the Lambda
/// timeout (`Sandbox.Timedout`, not retried, no audit record).
pub const LAMBDA_MARGIN: Duration = Duration::from_secs(5);

/// The deadline of one Lambda invocation's requests: the invocation's own deadline (as the
/// Runtime API gives it) minus [`LAMBDA_MARGIN`]; `now` if that has passed already.
pub fn invocation_deadline(lambda_deadline: SystemTime) -> Instant {
    let left = lambda_deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(LAMBDA_MARGIN);
    Instant::now() + left
}

/// Who and what started the run, when known (the Step Functions execution, the CLI user).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditContext {
    /// The principal that started the execution (an IAM ARN, a user name).
    pub started_by: Option<String>,
    /// The execution's ARN or id.
    pub execution_id: Option<String>,
}

/// One request the task sent (or, in a dry run, would have sent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestLine {
    /// `METHOD /path?query`.
    pub request: String,
    /// The JSON body, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Whether it was sent (false for the writes a dry run skips).
    pub sent: bool,
}

/// The structured record every task produces: returned as the execution output and logged as
/// one line (target [`AUDIT_TARGET`], fields `audit = true` and `record`; in the Lambda's JSON
/// log format `record` is a JSON object, see [`crate::logging`]). It never holds the token.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// The task name (`remove-user`, …).
    pub task: String,
    /// What it acted on (`user:3350396`, `syn123`, `email:a@example.org`, …).
    pub target: String,
    /// The environment (always the stack's own).
    pub environment: String,
    /// Who started the execution, when known.
    pub started_by: Option<String>,
    /// The execution, when known.
    pub execution_id: Option<String>,
    /// True when only the reads were performed.
    pub dry_run: bool,
    /// `done`, `dry-run` or `failed`.
    pub outcome: String,
    /// What the task changes (or would change), in words.
    pub change: String,
    /// The state before, as read from the service (`null` where the API offers no read). For
    /// `remove-user`, only the user id and which parts the bundle had (see
    /// [`user_bundle_summary`]): never the profile itself.
    pub before: Value,
    /// The state after, as the service answered the write (`null` in a dry run).
    pub after: Value,
    /// The requests, in order.
    pub requests: Vec<RequestLine>,
    /// The error name and cause, for a failed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Where `remove-user` kept the profile it removed (`s3://BUCKET/admin-records/…`), when
    /// the stack keeps them ([`crate::ProfileRecords`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_record: Option<String>,
    /// When the record was made (RFC 3339, UTC).
    pub timestamp: String,
}

impl AuditRecord {
    /// The record as one JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"auditError\":\"{e}\"}}"))
    }
}

struct Run<'a, S> {
    client: &'a SynapseClient<S>,
    request: &'a AdminRequest,
    context: &'a AuditContext,
    dry_run: bool,
    requests: Vec<RequestLine>,
    /// What the reads found (as the record may show it), kept for the record of a write that
    /// fails.
    before: Value,
    /// Where a removed profile was kept.
    profile_record: Option<String>,
}

impl<S: TokenSource> Run<'_, S> {
    async fn read(&mut self, call: Call) -> Result<Value, AdminError> {
        debug_assert!(call.read_only);
        self.requests.push(RequestLine {
            request: call.describe(),
            body: call.body.clone(),
            sent: true,
        });
        self.client.execute(&call).await
    }

    /// Sends a write, or in a dry run only records it. Returns the answer (`null` if skipped).
    async fn write(&mut self, call: Call) -> Result<Value, AdminError> {
        self.requests.push(RequestLine {
            request: call.describe(),
            body: call.body.clone(),
            sent: !self.dry_run,
        });
        if self.dry_run {
            return Ok(Value::Null);
        }
        self.client.execute(&call).await
    }
}

/// Runs `request` against `client`: reads first, then (unless `dry_run`) the write. Returns the
/// audit record and logs it as one line; a failure is logged as a `failed` record too. All of
/// its requests together get the client's [`SynapseClient::task_timeout`].
pub async fn run<S: TokenSource>(
    request: &AdminRequest,
    client: &SynapseClient<S>,
    context: &AuditContext,
) -> Result<AuditRecord, AdminError> {
    run_until(
        request,
        client,
        context,
        Instant::now() + client.task_timeout(),
    )
    .await
}

/// [`run`], with every request (token reads, a refresh and retry after a 401 included) done by
/// `deadline`. A task still waiting at the deadline is cut off and fails with
/// `Stepops.Transient` (its `failed` record logged): the state machine retries it, and every
/// task is idempotent, so a write that did land before the cut is harmless.
pub async fn run_until<S: TokenSource>(
    request: &AdminRequest,
    client: &SynapseClient<S>,
    context: &AuditContext,
    deadline: Instant,
) -> Result<AuditRecord, AdminError> {
    let mut run = Run {
        client,
        request,
        context,
        dry_run: request.dry_run,
        requests: Vec::new(),
        before: Value::Null,
        profile_record: None,
    };
    let budget = deadline.saturating_duration_since(Instant::now());
    let result = match tokio::time::timeout_at(
        tokio::time::Instant::from_std(deadline),
        perform(&request.task, &mut run),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(AdminError::Transient(format!(
            "{} on {} did not finish within its time budget of {:.1} s (inside the admin function's timeout); the last request may or may not have reached the service; the task is idempotent and is retried",
            request.task.name(),
            request.task.target(),
            budget.as_secs_f64()
        ))),
    };
    let base = |outcome: &str, change: String, before: Value, after: Value, error| AuditRecord {
        task: request.task.name().to_owned(),
        target: request.task.target(),
        environment: request.environment.to_string(),
        started_by: context
            .started_by
            .clone()
            .or_else(|| request.started_by.clone()),
        execution_id: context.execution_id.clone(),
        dry_run: request.dry_run,
        outcome: outcome.to_owned(),
        change,
        before,
        after,
        requests: run.requests.clone(),
        error,
        profile_record: run.profile_record.clone(),
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    match result {
        Ok((change, before, after)) => {
            let outcome = if request.dry_run { "dry-run" } else { "done" };
            let record = base(outcome, change, before, after, None);
            tracing::info!(target: AUDIT_TARGET, audit = true, record = %record.to_json_line(), "admin task {outcome}");
            Ok(record)
        }
        Err(err) => {
            let error = json!({ "error": err.error_name().as_str(), "cause": err.to_string() });
            let record = base(
                "failed",
                describe_change(&request.task),
                run.before.clone(),
                Value::Null,
                Some(error),
            );
            tracing::warn!(target: AUDIT_TARGET, audit = true, record = %record.to_json_line(), "admin task failed");
            Err(err)
        }
    }
}

/// Validates the state machine `input` for the stack's own environment `stack`, then [`run`]s
/// it. This is the whole job of the admin Lambda: invalid input fails with
/// `Stepops.InvalidInput` / `Stepops.WrongEnvironment` before any request of any kind.
pub async fn handle<S: TokenSource>(
    input: &Value,
    stack: Environment,
    client: &SynapseClient<S>,
    context: &AuditContext,
) -> Result<AuditRecord, AdminError> {
    handle_until(
        input,
        stack,
        client,
        context,
        Instant::now() + client.task_timeout(),
    )
    .await
}

/// [`handle`] with the requests done by `deadline` (see [`run_until`]).
pub async fn handle_until<S: TokenSource>(
    input: &Value,
    stack: Environment,
    client: &SynapseClient<S>,
    context: &AuditContext,
    deadline: Instant,
) -> Result<AuditRecord, AdminError> {
    let request = AdminRequest::from_input(input, stack).inspect_err(|err| {
        tracing::warn!(
            error = err.error_name().as_str(),
            cause = %err,
            started_by = context.started_by.as_deref().unwrap_or(""),
            execution_id = context.execution_id.as_deref().unwrap_or(""),
            "admin request refused in validation; nothing was sent"
        );
    })?;
    run_until(&request, client, context, deadline).await
}

/// The admin Lambda's whole job, for its two states in `statemachine/admin.asl.json`. The event:
///
/// * `{"action": "validate", "request": INPUT}` → `{"request": CANONICAL_INPUT, "task", "target",
///   "targetId", "change", "dryRun"}`; sends nothing.
/// * `{"action": "run", "request": INPUT, "executionId"?: ARN, "startedBy"?: WHO}` → the
///   [`AuditRecord`] as JSON. The request is validated again (the state machine's input may
///   have been edited in a redrive).
///
/// Unknown actions or keys fail with `Stepops.InvalidInput`; a request for another environment
/// with `Stepops.WrongEnvironment`. A task's requests get the client's
/// [`SynapseClient::task_timeout`]; the Lambda uses [`invoke_until`] with its own deadline.
pub async fn invoke<S: TokenSource>(
    event: &Value,
    stack: Environment,
    client: &SynapseClient<S>,
) -> Result<Value, AdminError> {
    invoke_until(event, stack, client, Instant::now() + client.task_timeout()).await
}

/// [`invoke`] with a `run`'s requests done by `deadline` (in the Lambda:
/// [`invocation_deadline`] of the invocation's deadline), so that a slow service, a 401 and a
/// slow retry end in `Stepops.Transient` with an audit record, never in the Lambda's timeout.
pub async fn invoke_until<S: TokenSource>(
    event: &Value,
    stack: Environment,
    client: &SynapseClient<S>,
    deadline: Instant,
) -> Result<Value, AdminError> {
    let obj = event.as_object().ok_or_else(|| {
        AdminError::invalid(
            "the admin function's event must be a JSON object with `action` and `request`",
        )
    })?;
    if let Some(key) = obj
        .keys()
        .find(|k| !["action", "request", "executionId", "startedBy"].contains(&k.as_str()))
    {
        return Err(AdminError::invalid(format!(
            "the admin function's event has an unknown key {}",
            crate::types::quote(key)
        )));
    }
    let text = |key: &str| -> Result<Option<String>, AdminError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(AdminError::invalid(format!(
                "`{key}` in the admin function's event must be a string, not {other}"
            ))),
        }
    };
    let request = obj
        .get("request")
        .ok_or_else(|| AdminError::invalid("the admin function's event is missing `request`"))?;
    let context = AuditContext {
        started_by: text("startedBy")?,
        execution_id: text("executionId")?,
    };
    match text("action")?.as_deref() {
        Some("validate") => {
            let req = AdminRequest::from_input(request, stack).inspect_err(|err| {
                tracing::warn!(
                    error = err.error_name().as_str(),
                    cause = %err,
                    "admin request refused in validation; nothing was sent"
                );
            })?;
            Ok(json!({
                "request": req.to_input(),
                "task": req.task.name(),
                "target": req.task.target(),
                "targetId": req.task.target_id(),
                "change": describe_change(&req.task),
                "dryRun": req.dry_run,
            }))
        }
        Some("run") => {
            let record = handle_until(request, stack, client, &context, deadline).await?;
            serde_json::to_value(&record)
                .map_err(|e| AdminError::Internal(format!("cannot encode the audit record: {e}")))
        }
        Some(other) => Err(AdminError::invalid(format!(
            "action {} is unknown; use `validate` or `run`",
            crate::types::quote(other)
        ))),
        None => Err(AdminError::invalid(
            "the admin function's event is missing `action` (`validate` or `run`)",
        )),
    }
}

/// The change in words, independent of what the reads find.
fn describe_change(task: &Task) -> String {
    match task {
        Task::RemoveUser { user_id } => format!("redact all information of user {user_id}"),
        Task::VerifyOAuthClient { client_id, status } => {
            format!("set the verified status of OAuth client {client_id} to {status}")
        }
        Task::MakePublic { entity_id } => {
            format!("set the data type of {entity_id} to OPEN_DATA")
        }
        Task::DecertifyUser { user_id } => format!("remove the certification of user {user_id}"),
        Task::ReenableUser { user_id } => format!("reset the status of user {user_id}"),
        Task::UnquarantineEmail { email } => {
            format!("expire the email quarantine of {email}")
        }
        Task::SetFeature { feature, enabled } => {
            format!("set feature {feature} to enabled={enabled}")
        }
    }
}

async fn perform<S: TokenSource>(
    task: &Task,
    run: &mut Run<'_, S>,
) -> Result<(String, Value, Value), AdminError> {
    let change = describe_change(task);
    Ok(match task {
        Task::RemoveUser { user_id } => {
            // The bundle is the personal data the task removes: it reaches neither the record
            // nor a log line; only a kept profile record (an SSE-KMS object) holds it.
            let bundle = run
                .read(api::get_user_bundle(*user_id, USER_BUNDLE_MASK_ALL))
                .await?;
            let before = user_bundle_summary(*user_id, &bundle);
            run.before = before.clone();
            if !run.dry_run
                && let Some(records) = run.client.profile_records()
            {
                run.profile_record = Some(records.keep(run.request, run.context, &bundle).await?);
            }
            // The write's answer is not recorded either: it could echo the profile.
            let _answer = run.write(api::redact_user(*user_id)).await?;
            let after = done_or_null(run.dry_run, Value::Null, json!({ "redacted": true }));
            (change, before, after)
        }
        Task::VerifyOAuthClient { client_id, status } => {
            let before = run.read(api::get_oauth_client(*client_id)).await?;
            run.before = before.clone();
            let etag = before
                .get("etag")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| {
                    AdminError::Internal(format!(
                        "the OAuth client {client_id} was read without an etag; cannot update it safely"
                    ))
                })?
                .to_owned();
            let was = before.get("verified").and_then(Value::as_bool);
            let change = match was {
                Some(w) if w == *status => format!("{change} (it already is {w})"),
                Some(w) => format!("{change} (it is {w})"),
                None => change,
            };
            let after = run
                .write(api::set_oauth_client_verified(*client_id, *status, &etag))
                .await?;
            (change, before, after)
        }
        Task::MakePublic { entity_id } => {
            let after = run.write(api::make_entity_open_data(*entity_id)).await?;
            (change, Value::Null, after)
        }
        Task::DecertifyUser { user_id } => {
            let bundle = run
                .read(api::get_user_bundle(*user_id, USER_BUNDLE_MASK_CERTIFIED))
                .await?;
            let before =
                json!({ "isCertified": bundle.get("isCertified").cloned().unwrap_or(Value::Null) });
            run.before = before.clone();
            let after = run.write(api::set_certification(*user_id, false)).await?;
            let after = done_or_null(run.dry_run, after, json!({ "isCertified": false }));
            (change, before, after)
        }
        Task::ReenableUser { user_id } => {
            let after = run.write(api::reset_user_status(*user_id)).await?;
            let after = done_or_null(run.dry_run, after, json!({ "statusReset": true }));
            (change, Value::Null, after)
        }
        Task::UnquarantineEmail { email } => {
            let after = run.write(api::expire_email_quarantine(email)).await?;
            let after = done_or_null(
                run.dry_run,
                after,
                json!({ "email": email.as_str(), "quarantineExpired": true }),
            );
            (change, Value::Null, after)
        }
        Task::SetFeature { feature, enabled } => {
            let before = run.read(api::get_feature_status(*feature)).await?;
            run.before = before.clone();
            let after = run
                .write(api::set_feature_status(*feature, *enabled))
                .await?;
            (change, before, after)
        }
    })
}

/// The parts of a user bundle (the `UserBundle` model's fields), as the audit record may name
/// them.
const USER_BUNDLE_PARTS: [&str; 7] = [
    "userProfile",
    "ORCID",
    "verificationSubmission",
    "isCertified",
    "isVerified",
    "isACTMember",
    "isARReviewer",
];

/// What the audit record says about a user's bundle: the user id and which parts the bundle
/// had (`{"userId": "3350396", "parts": ["userProfile", "ORCID", …]}`): no value of any part,
/// so no name, email, ORCID or profile text.
pub fn user_bundle_summary(user_id: UserId, bundle: &Value) -> Value {
    let parts: Vec<&str> = USER_BUNDLE_PARTS
        .into_iter()
        .filter(|p| bundle.get(p).is_some_and(|v| !v.is_null()))
        .collect();
    json!({ "userId": user_id, "parts": parts })
}

/// The service answers some writes with an empty body: record what was done instead.
fn done_or_null(dry_run: bool, answer: Value, done: Value) -> Value {
    if dry_run {
        Value::Null
    } else if answer.is_null() {
        done
    } else {
        answer
    }
}
