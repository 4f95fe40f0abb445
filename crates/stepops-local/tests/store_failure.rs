//! Durability when the SQLite store fails under a running execution: the write is refused for
//! real (a trigger on the engine's own database raises, as a full disk would), the execution
//! ends FAILED with `States.Runtime` naming the store's error instead of running on unrecorded,
//! and once the store works again RedriveExecution resumes it from the last persisted
//! transition.

mod common;

use std::time::Duration;

use common::{client, config};
use serde_json::json;
use stepops_local::LocalEngine;

const TRIGGER: &str = "CREATE TRIGGER stepops_test_store_full BEFORE INSERT ON events
    BEGIN SELECT RAISE(FAIL, 'database or disk is full (test trigger)'); END;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failure_fails_the_execution_with_states_runtime_and_redrive_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let activity = engine.create_activity("work").unwrap();
    let machine = engine
        .create_state_machine(
            "durable",
            &json!({"StartAt": "Before", "States": {
                "Before": {"Type": "Pass", "Result": 1, "ResultPath": "$.before", "Next": "Work"},
                "Work": {"Type": "Task", "Resource": activity, "ResultPath": "$.work", "Next": "After"},
                "After": {"Type": "Pass", "Result": 2, "ResultPath": "$.after", "End": true}}})
            .to_string(),
        )
        .unwrap();
    let exec = engine
        .start_execution(&machine, &json!({"id": 7}), Some("store-breaks"))
        .unwrap();
    let sfn = client(&engine);
    let task = sfn
        .get_activity_task()
        .activity_arn(&activity)
        .send()
        .await
        .unwrap();
    let token = task.task_token().expect("a task").to_owned();
    // The worker has the task and its pickup is recorded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !engine
        .history(&exec)
        .unwrap()
        .iter()
        .any(|e| e.event_type == "ActivityStarted")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "ActivityStarted never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let persisted = engine.history(&exec).unwrap().len();

    // The store breaks; the worker answers: its result cannot be persisted.
    let db = rusqlite::Connection::open(engine.store_path()).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(TRIGGER).unwrap();
    sfn.send_task_success()
        .task_token(&token)
        .output(json!({"done": true}).to_string())
        .send()
        .await
        .unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(20), engine.wait(&exec))
        .await
        .expect("the execution ends")
        .unwrap();
    assert_eq!(failed.status, "FAILED", "{failed:?}");
    assert_eq!(failed.error.as_deref(), Some("States.Runtime"));
    let cause = failed.cause.clone().unwrap();
    assert!(
        cause.contains("database or disk is full (test trigger)") && cause.contains("redrive"),
        "{cause}"
    );
    // DescribeExecution says so too; the history is what was persisted, nothing after.
    let described = sfn
        .describe_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    assert_eq!(described.status().as_str(), "FAILED");
    assert_eq!(described.error(), Some("States.Runtime"));
    assert_eq!(engine.history(&exec).unwrap().len(), persisted);

    // The store works again: RedriveExecution resumes from the last persisted transition, the
    // task that was in flight there runs again, then the rest.
    db.execute_batch("DROP TRIGGER stepops_test_store_full;")
        .unwrap();
    sfn.redrive_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let again = loop {
        let polled = sfn
            .get_activity_task()
            .activity_arn(&activity)
            .send()
            .await
            .unwrap();
        if let Some(t) = polled.task_token().filter(|t| !t.is_empty()) {
            break (
                t.to_owned(),
                serde_json::from_str::<serde_json::Value>(polled.input().unwrap()).unwrap(),
            );
        }
    };
    assert_eq!(again.1, json!({"id": 7, "before": 1}));
    sfn.send_task_success()
        .task_token(&again.0)
        .output(json!({"done": true}).to_string())
        .send()
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(20), engine.wait(&exec))
        .await
        .expect("the redriven execution ends")
        .unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    assert_eq!(
        done.output.unwrap(),
        json!({"id": 7, "before": 1, "work": {"done": true}, "after": 2})
    );
    let history = engine.history(&exec).unwrap();
    let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "ExecutionStarted").count(),
        1
    );
    assert_eq!(types[persisted], "ExecutionRedriven", "{types:?}");
    assert_eq!(
        types.iter().filter(|t| **t == "PassStateEntered").count(),
        2,
        "Before ran once, After once: {types:?}"
    );
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e.id, i as i64 + 1, "event ids without gaps");
    }
}
