//! Step Functions, as every stepops caller needs it: one module instead of one copy per caller.
//!
//! The runner polls activities, the notify function reads histories, `stepops start` and
//! `stepops admin` start executions and wait for them; all of them talk to AWS Step Functions
//! or to the local engine (`stepops-local`) with the same SDK client. This crate sits just
//! above `stepops-error` and knows nothing of migrations, Lambda or the CLI:
//!
//! - [`client`]: the AWS configuration with long-poll timeouts, the Step Functions client for
//!   AWS or a local endpoint (placeholder credentials), the CloudFormation client, and the
//!   caller's identity (STS) that a command records as `startedBy`.
//! - [`stack`]: a stack's state machine from its CloudFormation outputs (`DescribeStacks`,
//!   paginated), checked to carry the environment asked for.
//! - [`execution`]: finding a state machine by name, starting an execution, waiting for its end
//!   with backoff and progress.
//! - [`history`]: an execution's history (`GetExecutionHistory`, paginated).
//! - [`logs`]: a job's step streams in CloudWatch Logs (listed and read, paginated).
//!
//! Every failure is a [`SfnError`], named with the documented `Stepops.*` names.

pub mod client;
pub mod error;
pub mod execution;
pub mod history;
pub mod logs;
pub mod stack;

pub use client::{
    caller_arn, cloudformation_client, connect, load_sdk_config, local_logs_client,
    local_sfn_client, logs_client, sfn_client,
};
pub use error::SfnError;
pub use execution::{
    Finished, Progress, WaitOptions, execution_status, find_state_machines, start_execution,
    stop_execution, wait_for_execution,
};
pub use history::{HistoryItem, execution_history};
pub use logs::{log_stream_names, read_log_stream};
pub use stack::{StackOutput, stack_output, stacks_with_output, state_machine_of_stack};
