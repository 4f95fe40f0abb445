//! RedriveExecution: resets what did not succeed so that a run re-runs only that.

use super::*;

/// For RedriveExecution: resets what did not succeed so that `run` re-runs only that.
pub(crate) fn redrive(snapshot: &Snapshot) -> Result<Snapshot, LoadError> {
    let mut tree: Tree = serde_json::from_value(snapshot.0.clone())
        .map_err(|e| LoadError::Snapshot(format!("not a stepops-asl snapshot: {e}")))?;
    match tree.status.as_str() {
        // RUNNING: the last persisted progress of an execution that was stopped because the
        // store failed (the service records it FAILED); it resumes from there.
        "FAILED" | "TIMED_OUT" | "ABORTED" | "RUNNING" => {}
        other => {
            return Err(LoadError::Snapshot(format!(
                "only a FAILED, TIMED_OUT or ABORTED execution can be redriven (this one is {other})"
            )));
        }
    }
    fn reset(tree: &mut Tree, id: u64) {
        let Some(n) = tree.nodes.get_mut(&id) else {
            return;
        };
        if n.status == NodeStatus::Succeeded {
            return;
        }
        let fresh_start = n.status == NodeStatus::Pending;
        n.status = if fresh_start {
            NodeStatus::Pending
        } else {
            NodeStatus::Running
        };
        n.error = None;
        n.cause = None;
        n.retries.clear();
        if let Some(map) = n.map.as_mut() {
            crate::map::mark_redriven(map);
        }
        let children = n.children.clone();
        for c in children {
            reset(tree, c);
        }
    }
    reset(&mut tree, 0);
    tree.status = "RUNNING".into();
    tree.redrive_pending = true;
    let v = serde_json::to_value(&tree).map_err(|e| LoadError::Snapshot(e.to_string()))?;
    Ok(Snapshot(v))
}
