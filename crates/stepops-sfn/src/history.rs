//! An execution's history, oldest event first (`GetExecutionHistory`, every page, without
//! execution data), reduced to what stepops reads from it: each event's type, the state it
//! concerns and an execution's error and cause.

use crate::SfnError;

/// One history event, as far as stepops needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryItem {
    /// `TaskStateEntered`, `MapStateExited`, `ExecutionFailed`, `ExecutionRedriven`, …
    pub event_type: String,
    /// The state's name (`…StateEntered` / `…StateExited` events).
    pub state: Option<String>,
    /// The error (`ExecutionFailed`, `ExecutionAborted`, `ExecutionTimedOut`).
    pub error: Option<String>,
    /// The cause (same events).
    pub cause: Option<String>,
}

impl HistoryItem {
    /// An event of `event_type` (for tests and other readers).
    pub fn new(event_type: &str) -> HistoryItem {
        HistoryItem {
            event_type: event_type.to_owned(),
            ..HistoryItem::default()
        }
    }

    /// A `…StateEntered` / `…StateExited` event of `state`.
    pub fn state(event_type: &str, state: &str) -> HistoryItem {
        HistoryItem {
            state: Some(state.to_owned()),
            ..HistoryItem::new(event_type)
        }
    }
}

/// The events of `execution_arn`, oldest first. The caller's role needs
/// `states:GetExecutionHistory` on the machine's executions.
pub async fn execution_history(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Result<Vec<HistoryItem>, SfnError> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .include_execution_data(false)
            .max_results(1000)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| SfnError::call("GetExecutionHistory", e))?;
        for e in page.events() {
            let mut item = HistoryItem::new(e.r#type().as_str());
            if let Some(d) = e.state_entered_event_details() {
                item.state = Some(d.name().to_owned());
            }
            if let Some(d) = e.state_exited_event_details() {
                item.state = Some(d.name().to_owned());
            }
            let ended = [
                e.execution_failed_event_details()
                    .map(|d| (d.error(), d.cause())),
                e.execution_aborted_event_details()
                    .map(|d| (d.error(), d.cause())),
                e.execution_timed_out_event_details()
                    .map(|d| (d.error(), d.cause())),
            ];
            if let Some((error, cause)) = ended.into_iter().flatten().next() {
                item.error = error.map(str::to_owned);
                item.cause = cause.map(str::to_owned);
            }
            out.push(item);
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
}
