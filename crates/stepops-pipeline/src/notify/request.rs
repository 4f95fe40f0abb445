//! What a notification is about: the state machine's own request ([`NotifyRequest`]) or a
//! Step Functions status-change event, completed from the execution's history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepops_error::ReleaseOutcome;

use crate::PipelineError;
use crate::history::{ExecutionHistory, FailureFacts, failure_facts};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum RunStatus {
    /// Destination equals source (or a dry run finished).
    #[serde(rename = "SUCCEEDED")]
    Succeeded,
    /// A step failed; `error` and `failedStep` say which and why.
    #[serde(rename = "FAILED")]
    Failed,
    /// The execution ran past its `TimeoutSeconds`; `failedStep` is the state it was in.
    #[serde(rename = "TIMED_OUT")]
    TimedOut,
    /// Someone stopped the execution (`StopExecution`); `failedStep` is the state it was in.
    #[serde(rename = "ABORTED")]
    Aborted,
}

impl RunStatus {
    /// `SUCCEEDED` / `FAILED` / `TIMED_OUT` / `ABORTED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
            RunStatus::TimedOut => "TIMED_OUT",
            RunStatus::Aborted => "ABORTED",
        }
    }
}

/// What the run did (every field optional: the state machine sends what it knows).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Summary {
    /// Tables that needed copying (first round).
    pub tables: Option<u64>,
    /// Chunks planned, all rounds together.
    pub chunks: Option<u64>,
    /// Chunks whose copy results were counted into `rowsCopied`/`rowsDeleted` (equal to
    /// `chunks` when every round's result files could be read).
    pub chunks_copied: Option<u64>,
    /// Rows inserted into the destination.
    pub rows_copied: Option<u64>,
    /// Rows deleted from the destination before inserting.
    pub rows_deleted: Option<u64>,
    /// Rows the plan estimated to copy (first round).
    pub estimated_rows: Option<u64>,
    /// Rounds run (plan → copy → verify).
    pub rounds: Option<u64>,
    /// Wall-clock duration; computed from `startTime` when absent.
    pub duration_seconds: Option<f64>,
    /// A dry run: nothing was copied.
    pub dry_run: Option<bool>,
}

/// A Step Functions error as `Catch` hands it over (`{"Error": …, "Cause": …}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StepError {
    /// The error name (`Stepops.NotConverged`, `States.HeartbeatTimeout`, …).
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    /// The cause: text, or for Lambda errors a JSON document with `errorMessage`.
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// A notification about one run: built by the state machine (a success, an admin task's
/// outcome) or from a Step Functions status-change event and the execution's history
/// ([`request_from_status_change`]: every failure, timeout and abort of the migration).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyRequest {
    /// How the run ended.
    pub status: RunStatus,
    /// The stack's environment.
    pub environment: String,
    /// The execution (`$$.Execution.Id`).
    pub execution_arn: String,
    /// What the run did.
    #[serde(default)]
    pub summary: Option<Summary>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<StepError>,
    /// The state that failed.
    #[serde(default)]
    pub failed_step: Option<String>,
    /// When the execution started (`$$.Execution.StartTime`), for the duration.
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    /// What ran, in words (`migration`, `admin task`); by default taken from the state
    /// machine's name in `executionArn` (`…-admin` → `admin task`, else `migration`).
    #[serde(default)]
    pub workflow: Option<String>,
    /// Whether this execution put the destination read-only (`readOnlyDuringCopy`) and has not
    /// put it back: a failure notification then says so and how to undo it.
    #[serde(default)]
    pub destination_read_only: Option<bool>,
    /// What the release machine (`statemachine/release.asl.json`) did with the destination
    /// after the failure; it overrides `destinationReadOnly` when present.
    #[serde(default)]
    pub release: Option<ReleaseOutcome>,
    /// Why the release machine's `release` step failed (no runner took it, the stack refused).
    #[serde(default)]
    pub release_error: Option<StepError>,
    /// An admin task's audit record (`statemachine/admin.asl.json`): its task, target, outcome
    /// and change are summarised.
    #[serde(default)]
    pub admin: Option<Value>,
    /// A relationalize run's summary (`statemachine/relationalize.asl.json`): archives,
    /// documents, invalid documents, failed archives, rows, the first failures.
    #[serde(default)]
    pub relationalize: Option<Value>,
    /// How often the execution was redriven before it ended this way.
    #[serde(default)]
    pub redrive_count: Option<u32>,
    /// Why the execution's history could not be read (the failed step is then unknown).
    #[serde(default)]
    pub history_error: Option<String>,
}

impl NotifyRequest {
    /// Parses the state machine's payload with a clear error.
    pub fn from_value(value: Value) -> Result<NotifyRequest, PipelineError> {
        serde_json::from_value(value).map_err(|e| PipelineError::InvalidNotification(e.to_string()))
    }
}

/// `source` of Step Functions' EventBridge events.
pub const STATES_SOURCE: &str = "aws.states";
/// `detail-type` of an execution status change.
pub const STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// The EventBridge event Step Functions sends when an execution's status changes (what the
/// template's rule hands the notify function; fields it does not need are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StatusChangeEvent {
    /// `aws.states`.
    pub source: String,
    /// `Step Functions Execution Status Change`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// The execution, as `DescribeExecution` describes it.
    pub detail: StatusChangeDetail,
    /// Added by the release machine: its `release` step's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseOutcome>,
    /// Added by the release machine: that step's error (its Catch).
    #[serde(
        default,
        rename = "releaseError",
        skip_serializing_if = "Option::is_none"
    )]
    pub release_error: Option<StepError>,
}

/// The `detail` of a [`StatusChangeEvent`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChangeDetail {
    /// The execution.
    pub execution_arn: String,
    /// Its state machine.
    #[serde(default)]
    pub state_machine_arn: Option<String>,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: String,
    /// Start, epoch milliseconds.
    #[serde(default)]
    pub start_date: Option<i64>,
    /// End, epoch milliseconds.
    #[serde(default)]
    pub stop_date: Option<i64>,
    /// The execution input (JSON text; left out by AWS when too large).
    #[serde(default)]
    pub input: Option<String>,
    /// The execution's error.
    #[serde(default)]
    pub error: Option<String>,
    /// Its cause.
    #[serde(default)]
    pub cause: Option<String>,
    /// Redrives so far.
    #[serde(default)]
    pub redrive_count: Option<u32>,
}

/// What the notify function receives.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyInput {
    /// A request the state machine built (`NotifySuccess`, the admin machine).
    Request(Box<NotifyRequest>),
    /// A Step Functions status change (the template's EventBridge rule).
    StatusChange(Box<StatusChangeEvent>),
}

impl NotifyInput {
    /// Tells the two apart: an event has `source` `aws.states` and a `detail-type`.
    pub fn from_value(value: Value) -> Result<NotifyInput, PipelineError> {
        let is_event = value.get("detail-type").is_some()
            || value.get("source").and_then(Value::as_str) == Some(STATES_SOURCE);
        if !is_event {
            return NotifyRequest::from_value(value).map(|r| NotifyInput::Request(Box::new(r)));
        }
        let event: StatusChangeEvent = serde_json::from_value(value).map_err(|e| {
            PipelineError::InvalidNotification(format!("not a Step Functions status change: {e}"))
        })?;
        if event.source != STATES_SOURCE || event.detail_type != STATUS_CHANGE {
            return Err(PipelineError::InvalidNotification(format!(
                "an event of source {:?} and detail-type {:?}: the notify function takes                  \"{STATUS_CHANGE}\" events of {STATES_SOURCE} only (check the rule's pattern)",
                event.source, event.detail_type
            )));
        }
        Ok(NotifyInput::StatusChange(Box::new(event)))
    }
}

/// Builds the notification for a status change: the status, error and cause from the event,
/// the failed step and whether the destination was left read-only from the execution's
/// history (read through `history`; if it cannot be read the notification still goes out,
/// saying so). `environment` is the stack's own (the function's `STEPOPS_ENVIRONMENT`); without
/// it, the execution input's `environment`.
pub async fn request_from_status_change<H: ExecutionHistory>(
    event: &StatusChangeEvent,
    history: &H,
    environment: Option<&str>,
) -> Result<NotifyRequest, PipelineError> {
    let d = &event.detail;
    let status = match d.status.as_str() {
        "FAILED" => RunStatus::Failed,
        "TIMED_OUT" => RunStatus::TimedOut,
        "ABORTED" => RunStatus::Aborted,
        "SUCCEEDED" => RunStatus::Succeeded,
        other => {
            return Err(PipelineError::InvalidNotification(format!(
                "status {other} is not how a run ends: the rule's pattern should list FAILED, \
                 TIMED_OUT and ABORTED"
            )));
        }
    };
    let environment = environment
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            let input: Value = serde_json::from_str(d.input.as_deref()?).ok()?;
            input.get("environment")?.as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into());
    let migration = !machine_name(&d.execution_arn).contains("admin");
    let (facts, history_error) = match history.history(&d.execution_arn).await {
        Ok(events) => (failure_facts(&events), None),
        Err(e) => {
            tracing::warn!(execution = %d.execution_arn, error = %e, "cannot read the execution history: the failed step is unknown");
            (FailureFacts::default(), Some(e))
        }
    };
    let error = d.error.clone().or(facts.error.clone());
    let cause = d.cause.clone().or(facts.cause.clone());
    Ok(NotifyRequest {
        status,
        environment,
        execution_arn: d.execution_arn.clone(),
        summary: None,
        error: (error.is_some() || cause.is_some()).then_some(StepError { error, cause }),
        failed_step: facts.failed_step.clone(),
        start_time: d
            .start_date
            .and_then(DateTime::<Utc>::from_timestamp_millis),
        workflow: None,
        destination_read_only: (migration && history_error.is_none())
            .then_some(facts.destination_read_only),
        release: event.release.clone(),
        release_error: event.release_error.clone(),
        admin: None,
        relationalize: None,
        redrive_count: d.redrive_count.or(Some(facts.redrives)).filter(|n| *n > 0),
        history_error,
    })
}

/// The state machine's name in an execution ARN (`arn:aws:states:R:A:execution:MACHINE:NAME`).
pub(super) fn machine_name(execution_arn: &str) -> &str {
    execution_arn.split(':').nth(6).unwrap_or("")
}
