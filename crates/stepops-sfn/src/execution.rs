//! Executions: finding a state machine by name (`ListStateMachines`, paginated), starting and
//! stopping an execution, and waiting for its end (`DescribeExecution` with doubling delays up to a
//! ceiling, reporting progress on every poll).

use std::time::{Duration, Instant};

use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::Value;

use crate::SfnError;

/// The state machines whose name satisfies `wanted`, as `(name, arn)`, over every page.
pub async fn find_state_machines(
    sfn: &aws_sdk_sfn::Client,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, SfnError> {
    let mut pages = sfn.list_state_machines().into_paginator().send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| SfnError::call("ListStateMachines", e))?;
        found.extend(
            page.state_machines()
                .iter()
                .filter(|m| wanted(m.name()))
                .map(|m| (m.name().to_owned(), m.state_machine_arn().to_owned())),
        );
    }
    Ok(found)
}

/// Starts an execution of `state_machine` with `input`, named `name` (else a UUID chosen by
/// Step Functions); returns the execution's ARN.
pub async fn start_execution(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    name: Option<&str>,
    input: &Value,
) -> Result<String, SfnError> {
    let started = sfn
        .start_execution()
        .state_machine_arn(state_machine)
        .set_name(name.map(str::to_owned))
        .input(input.to_string())
        .send()
        .await
        .map_err(|e| SfnError::call("StartExecution", e))?;
    Ok(started.execution_arn().to_owned())
}

/// An execution's status (`DescribeExecution`).
pub async fn execution_status(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Result<ExecutionStatus, SfnError> {
    Ok(describe(sfn, execution_arn).await?.status().clone())
}

async fn describe(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Result<DescribeExecutionOutput, SfnError> {
    sfn.describe_execution()
        .execution_arn(execution_arn)
        .send()
        .await
        .map_err(|e| SfnError::call("DescribeExecution", e))
}

/// Stops a running execution (`StopExecution`) with `cause`; a running activity task's worker
/// learns it when its next heartbeat is refused.
pub async fn stop_execution(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    cause: &str,
) -> Result<(), SfnError> {
    sfn.stop_execution()
        .execution_arn(execution_arn)
        .cause(cause)
        .send()
        .await
        .map_err(|e| SfnError::call("StopExecution", e))?;
    Ok(())
}

/// How [`wait_for_execution`] polls.
#[derive(Clone, Debug)]
pub struct WaitOptions {
    /// The first delay between polls; it doubles after each poll.
    pub first_delay: Duration,
    /// The ceiling of the delay.
    pub max_delay: Duration,
    /// Give up (the execution keeps running) after this long; `None`: wait for the end.
    pub limit: Option<Duration>,
}

impl Default for WaitOptions {
    fn default() -> WaitOptions {
        WaitOptions {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            limit: None,
        }
    }
}

/// One poll of a running execution, for a progress display.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Polls so far (1 for the first).
    pub polls: u32,
    /// Time since the wait began.
    pub elapsed: Duration,
}

/// How an execution ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: ExecutionStatus,
    /// The output (JSON), when it succeeded.
    pub output: Option<Value>,
    /// The error name, when it did not.
    pub error: Option<String>,
    /// The cause, when it did not.
    pub cause: Option<String>,
}

impl Finished {
    /// Whether the execution succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded
    }
}

/// Polls `DescribeExecution` on `execution_arn` until it ends (or `options.limit` passes),
/// calling `on_progress` after each poll that found it still running.
pub async fn wait_for_execution(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    options: &WaitOptions,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Finished, SfnError> {
    let started = Instant::now();
    let mut delay = options.first_delay;
    let mut polls = 0;
    loop {
        let d = describe(sfn, execution_arn).await?;
        polls += 1;
        match d.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {}
            status => {
                let output =
                    d.output()
                        .map(serde_json::from_str)
                        .transpose()
                        .map_err(|source| SfnError::Output {
                            arn: execution_arn.to_owned(),
                            source,
                        })?;
                return Ok(Finished {
                    status: status.clone(),
                    output,
                    error: d.error().map(str::to_owned),
                    cause: d.cause().map(str::to_owned),
                });
            }
        }
        let elapsed = started.elapsed();
        on_progress(&Progress { polls, elapsed });
        if options.limit.is_some_and(|limit| elapsed > limit) {
            return Err(SfnError::StillRunning {
                arn: execution_arn.to_owned(),
                waited: elapsed,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(options.max_delay);
    }
}
