//! In-process runner workers: each one a spawned [`Runner`] with its stop signal, started and
//! drained the same way by every local setup (the pipeline, the jobs).

use stepops_runner::{RunReport, Runner, StepHandler};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One runner running on the current tokio runtime.
pub(crate) struct Worker {
    pub(crate) name: String,
    stop: CancellationToken,
    handle: JoinHandle<RunReport>,
}

impl Worker {
    /// Spawns `runner`; it polls until [`stop_all`] (or [`Worker::kill`]).
    pub(crate) fn spawn<H: StepHandler>(name: String, runner: Runner<H>) -> Worker {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(runner.run(stop.clone().cancelled_owned()));
        Worker { name, stop, handle }
    }

    /// Ends the worker at once, as a crashed process dies: its running steps are dropped
    /// mid-way and nothing is answered (the engine notices by the missing heartbeats).
    pub(crate) fn kill(self) {
        self.handle.abort();
    }
}

/// Stops every worker (they drain: running steps get their drain timeout to finish) and
/// returns their reports.
pub(crate) async fn stop_all(workers: Vec<Worker>) -> Vec<RunReport> {
    for w in &workers {
        w.stop.cancel();
    }
    let mut reports = Vec::new();
    for w in workers {
        if let Ok(r) = w.handle.await {
            reports.push(r);
        }
    }
    reports
}
