//! What a failure notification learns from the execution's history: the state whose failure
//! ended the execution, and whether the run left the destination read-only.
//!
//! The failure notification comes from an EventBridge rule on Step Functions' execution status
//! changes (not from the state machine: a `Catch` would make a redrive resume at the
//! notification instead of at the failed step). The event says that the execution failed and
//! why, not where; [`ExecutionHistory`] reads `GetExecutionHistory` ([`SfnHistory`] in AWS and
//! against the local engine alike) and [`failure_facts`] derives the rest.

use std::future::Future;

/// One history event, as far as the notification needs it (read by `stepops-sfn`).
pub use stepops_sfn::HistoryItem;

/// Reads an execution's history, oldest event first (the AWS boundary of the notify function).
pub trait ExecutionHistory: Send + Sync {
    /// The events of `execution_arn`, or why they cannot be read.
    fn history(
        &self,
        execution_arn: &str,
    ) -> impl Future<Output = Result<Vec<HistoryItem>, String>> + Send;
}

/// [`ExecutionHistory`] through `GetExecutionHistory` (paginated, without execution data;
/// [`stepops_sfn::execution_history`]). The notify function's role needs
/// `states:GetExecutionHistory` on the machine's executions.
#[derive(Debug, Clone)]
pub struct SfnHistory {
    client: aws_sdk_sfn::Client,
}

impl SfnHistory {
    /// Reads through `client` (AWS: from the function's configuration).
    pub fn new(client: aws_sdk_sfn::Client) -> SfnHistory {
        SfnHistory { client }
    }

    /// Reads from a Step Functions endpoint such as the local engine's
    /// `http://127.0.0.1:PORT` (placeholder credentials, region `us-east-1`).
    pub fn at_endpoint(endpoint: &str) -> SfnHistory {
        SfnHistory::new(stepops_sfn::local_sfn_client(endpoint))
    }
}

impl ExecutionHistory for SfnHistory {
    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryItem>, String> {
        stepops_sfn::execution_history(&self.client, execution_arn)
            .await
            .map_err(|e| e.to_string())
    }
}

/// No history (a caller that cannot reach Step Functions): every read fails with `why`.
#[derive(Debug, Clone)]
pub struct NoHistory(pub String);

impl ExecutionHistory for NoHistory {
    async fn history(&self, _execution_arn: &str) -> Result<Vec<HistoryItem>, String> {
        Err(self.0.clone())
    }
}

/// The migration's state that puts the destination read-only.
pub const READ_ONLY_STATE: &str = "SetDestinationReadOnly";
/// The migration's state that puts it back read-write.
pub const READ_WRITE_STATE: &str = "SetDestinationReadWrite";

/// What the history says about how an execution ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureFacts {
    /// The top-level state the execution was in when it ended: entered and not exited (the
    /// state that failed, or that was running at a timeout or a stop). A redrive resumes there.
    pub failed_step: Option<String>,
    /// `SetDestinationReadOnly` succeeded and `SetDestinationReadWrite` did not.
    pub destination_read_only: bool,
    /// The error of the last `ExecutionFailed` / `ExecutionAborted` / `ExecutionTimedOut`.
    pub error: Option<String>,
    /// Its cause.
    pub cause: Option<String>,
    /// Redrives in the history (`ExecutionRedriven` events).
    pub redrives: u32,
}

/// Derives [`FailureFacts`] from `events` (oldest first). A redriven execution's history holds
/// every attempt: the state a redrive resumes is counted as open once, whether or not the
/// history enters it again.
pub fn failure_facts(events: &[HistoryItem]) -> FailureFacts {
    let mut facts = FailureFacts::default();
    let mut open: Vec<String> = Vec::new();
    let mut resumed: Vec<String> = Vec::new();
    let (mut read_only, mut read_write) = (false, false);
    for e in events {
        let t = e.event_type.as_str();
        if let (true, Some(name)) = (t.ends_with("StateEntered"), &e.state) {
            if let Some(i) = resumed.iter().position(|n| n == name) {
                resumed.remove(i);
            } else {
                open.push(name.clone());
            }
        } else if let (true, Some(name)) = (t.ends_with("StateExited"), &e.state) {
            if let Some(i) = open.iter().rposition(|n| n == name) {
                open.remove(i);
            }
            resumed.retain(|n| n != name);
            read_only |= name == READ_ONLY_STATE;
            read_write |= name == READ_WRITE_STATE;
        } else if t == "ExecutionRedriven" {
            facts.redrives += 1;
            resumed = open.clone();
        } else if matches!(
            t,
            "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut"
        ) {
            facts.error = e.error.clone();
            facts.cause = e.cause.clone();
        }
    }
    facts.failed_step = open.into_iter().next();
    facts.destination_read_only = read_only && !read_write;
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entered(s: &str) -> HistoryItem {
        HistoryItem::state("TaskStateEntered", s)
    }
    fn exited(s: &str) -> HistoryItem {
        HistoryItem::state("TaskStateExited", s)
    }
    fn failed(e: &str) -> HistoryItem {
        HistoryItem {
            error: Some(e.into()),
            cause: Some("why".into()),
            ..HistoryItem::new("ExecutionFailed")
        }
    }

    #[test]
    fn the_open_state_is_the_failed_step() {
        let h = [
            HistoryItem::new("ExecutionStarted"),
            entered("ValidateInput"),
            exited("ValidateInput"),
            entered(READ_ONLY_STATE),
            exited(READ_ONLY_STATE),
            entered("Plan"),
            exited("Plan"),
            HistoryItem::state("MapStateEntered", "CopyChunks"),
            HistoryItem::new("MapRunStarted"),
            HistoryItem::new("MapRunFailed"),
            failed("States.ExceedToleratedFailureThreshold"),
        ];
        let f = failure_facts(&h);
        assert_eq!(f.failed_step.as_deref(), Some("CopyChunks"));
        assert!(f.destination_read_only);
        assert_eq!(
            f.error.as_deref(),
            Some("States.ExceedToleratedFailureThreshold")
        );
        assert_eq!(f.redrives, 0);
    }

    #[test]
    fn loops_read_write_and_nested_states() {
        // Round 2's Verify fails; the destination went back read-write? No: never reached.
        let mut h = vec![
            entered("Plan"),
            exited("Plan"),
            entered("Verify"),
            exited("Verify"),
        ];
        h.extend([
            entered("Plan"),
            exited("Plan"),
            entered("Verify"),
            failed("Stepops.NotConverged"),
        ]);
        let f = failure_facts(&h);
        assert_eq!(f.failed_step.as_deref(), Some("Verify"));
        assert!(!f.destination_read_only, "never put read-only");
        // A failure after SetDestinationReadWrite succeeded: not read-only.
        let h = [
            entered(READ_ONLY_STATE),
            exited(READ_ONLY_STATE),
            entered(READ_WRITE_STATE),
            exited(READ_WRITE_STATE),
            entered("NotifySuccess"),
            failed("States.Runtime"),
        ];
        let f = failure_facts(&h);
        assert!(!f.destination_read_only);
        assert_eq!(f.failed_step.as_deref(), Some("NotifySuccess"));
        // A failing SetDestinationReadWrite leaves it read-only.
        let h = [
            entered(READ_ONLY_STATE),
            exited(READ_ONLY_STATE),
            entered(READ_WRITE_STATE),
            failed("Stepops.Unauthorized"),
        ];
        assert!(failure_facts(&h).destination_read_only);
        // Inside an inline Map the outermost open state is the step.
        let h = [
            HistoryItem::state("MapStateEntered", "Outer"),
            entered("Inner"),
            failed("X"),
        ];
        assert_eq!(failure_facts(&h).failed_step.as_deref(), Some("Outer"));
    }

    #[test]
    fn redriven_histories_count_the_resumed_state_once() {
        let first = [
            entered("Plan"),
            exited("Plan"),
            HistoryItem::state("MapStateEntered", "CopyChunks"),
            failed("States.ExceedToleratedFailureThreshold"),
            HistoryItem::new("ExecutionRedriven"),
        ];
        // The redrive enters CopyChunks again (the local engine does), then Verify fails.
        let mut h = first.to_vec();
        h.extend([
            HistoryItem::state("MapStateEntered", "CopyChunks"),
            HistoryItem::state("MapStateExited", "CopyChunks"),
            entered("Verify"),
            failed("Stepops.NotConverged"),
        ]);
        let f = failure_facts(&h);
        assert_eq!(f.failed_step.as_deref(), Some("Verify"));
        assert_eq!(f.redrives, 1);
        assert_eq!(f.error.as_deref(), Some("Stepops.NotConverged"));
        // Without re-entering it (the history goes on with the resumed state's events).
        let mut h = first.to_vec();
        h.extend([
            HistoryItem::new("MapRunRedriven"),
            HistoryItem::state("MapStateExited", "CopyChunks"),
            entered("Verify"),
            failed("Stepops.NotConverged"),
        ]);
        assert_eq!(failure_facts(&h).failed_step.as_deref(), Some("Verify"));
        // And failing again at the resumed state.
        let mut h = first.to_vec();
        h.extend([
            HistoryItem::state("MapStateEntered", "CopyChunks"),
            failed("States.ExceedToleratedFailureThreshold"),
        ]);
        assert_eq!(failure_facts(&h).failed_step.as_deref(), Some("CopyChunks"));
    }

    #[test]
    fn timeouts_and_aborts_name_the_running_state() {
        let h = [
            entered("Plan"),
            HistoryItem {
                error: Some("States.Timeout".into()),
                ..HistoryItem::new("ExecutionTimedOut")
            },
        ];
        let f = failure_facts(&h);
        assert_eq!(f.failed_step.as_deref(), Some("Plan"));
        assert_eq!(f.error.as_deref(), Some("States.Timeout"));
    }
}
