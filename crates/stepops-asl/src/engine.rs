//! The executor.

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{
    Definition, ExecutionInfo, ExecutionResult, ExecutionStore, LoadError, RunOptions, Snapshot,
    TaskDispatcher,
};

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    _definition: Arc<Definition>,
    _info: ExecutionInfo,
    _input: Value,
    _resume: Option<Snapshot>,
    _tasks: Arc<dyn TaskDispatcher>,
    _store: Arc<dyn ExecutionStore>,
    _options: RunOptions,
    _stop: CancellationToken,
) -> ExecutionResult {
    ExecutionResult::Failed {
        error: Some("States.Runtime".into()),
        cause: Some("the interpreter is not implemented yet".into()),
    }
}

pub(crate) fn redrive(snapshot: &Snapshot) -> Result<Snapshot, LoadError> {
    Ok(snapshot.clone())
}
