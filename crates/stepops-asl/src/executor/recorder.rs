//! The recorder: hands pending history events and a snapshot of the frame tree to the
//! [`ExecutionStore`] (group commit), paced so that snapshotting never dominates.

use super::*;

/// Group commit. After each write the recorder waits before taking the next batch (unless a
/// task waits to be dispatched, see [`Exec::flush`], or the run is over): at least
/// [`PACE_MIN`], so that a fast run commits once per millisecond rather than once per
/// transition, and `PACE_FACTOR × t` after a snapshot that took `t` to take (under the
/// execution's lock), so that snapshotting a large tree (a Map with thousands of items) holds
/// the lock at most a fifth of the time however fast the store is; at most [`PACE_MAX`].
const PACE_MIN: Duration = Duration::from_millis(1);
const PACE_FACTOR: u32 = 4;
const PACE_MAX: Duration = Duration::from_millis(250);

/// Pauses between the attempts of a failing store write.
const STORE_RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// Hands pending events and the latest snapshot to the store until the run is over.
///
/// A write that still fails after [`STORE_RETRY_PAUSES`] stops the execution: the failure goes
/// to [`Exec::persisted`] (tasks waiting in [`Exec::flush`] are not dispatched), every frame is
/// cancelled through [`Exec::abort`], nothing more is written, and `run` reports
/// `States.Runtime` naming the store's error. The store keeps the last batch it wrote.
pub(super) async fn record_loop(
    exec: Arc<Exec>,
    store: Arc<dyn ExecutionStore>,
    done: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut broken = false;
    let mut pace = Duration::ZERO;
    loop {
        if !pace.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pace) => {}
                _ = exec.urgent.notified() => {}
            }
            pace = Duration::ZERO;
        }
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let batch = {
            let mut g = exec.lock();
            if g.pending.is_empty() && !g.changed {
                None
            } else {
                g.changed = false;
                g.taken += 1;
                let events = std::mem::take(&mut g.pending);
                let snap = if broken {
                    Value::Null
                } else {
                    let started = std::time::Instant::now();
                    let snap = serde_json::to_value(&g.tree).unwrap_or(Value::Null);
                    if !finished {
                        pace = (started.elapsed() * PACE_FACTOR).clamp(PACE_MIN, PACE_MAX);
                    }
                    snap
                };
                Some((g.taken, events, snap))
            }
        };
        let Some((n, events, snap)) = batch else {
            if finished {
                return;
            }
            exec.dirty.notified().await;
            continue;
        };
        if broken {
            continue;
        }
        match write_batch(&exec, &store, events, Snapshot(snap)).await {
            Ok(()) => exec.persisted.send_modify(|p| p.batches = n),
            Err(e) => {
                tracing::error!(
                    execution = %exec.info.execution_arn,
                    error = %e,
                    "could not record execution progress; stopping the execution"
                );
                broken = true;
                exec.persisted.send_modify(|p| p.failed = Some(e));
                exec.abort.cancel();
            }
        }
    }
}

/// One `ExecutionStore::record` call (off the async threads), retried after short pauses.
pub(super) async fn write_batch(
    exec: &Exec,
    store: &Arc<dyn ExecutionStore>,
    events: Vec<HistoryEvent>,
    snapshot: Snapshot,
) -> Result<(), String> {
    let batch = Arc::new((events, snapshot));
    let mut pauses = STORE_RETRY_PAUSES.iter();
    loop {
        let (store, batch) = (store.clone(), batch.clone());
        let arn = exec.info.execution_arn.clone();
        let r = tokio::task::spawn_blocking(move || store.record(&arn, &batch.0, &batch.1)).await;
        let e = match r {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the store panicked while recording: {e}"),
        };
        match pauses.next() {
            Some(p) => {
                tracing::warn!(execution = %exec.info.execution_arn, error = %e, "could not record execution progress; trying again");
                tokio::time::sleep(*p).await;
            }
            None => return Err(e),
        }
    }
}
