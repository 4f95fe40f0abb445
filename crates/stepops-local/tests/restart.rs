//! Durability: an engine dropped mid-execution; a new engine on the same state dir finishes it.

mod common;

use std::time::Duration;

use common::{client, config};
use serde_json::json;
use stepops_local::LocalEngine;

#[tokio::test]
async fn restart_continues_running_executions() {
    let dir = tempfile::tempdir().unwrap();
    let def = r#"{
      "StartAt": "Before",
      "States": {
        "Before": {"Type": "Pass", "Result": "before", "ResultPath": "$.before", "Next": "Which"},
        "Which": {"Type": "Choice", "Choices": [{"Variable": "$.id", "NumericEquals": 1, "Next": "Wait"}],
                  "Default": "Work"},
        "Wait": {"Type": "Wait", "Seconds": 3, "Next": "Work"},
        "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
                 "ResultPath": "$.work", "Next": "After"},
        "After": {"Type": "Pass", "Result": "after", "ResultPath": "$.after", "End": true}
      }
    }"#;
    let (exec, waiting_exec, old_token) = {
        let engine = LocalEngine::start(config(dir.path())).await.unwrap();
        engine.create_activity("work").unwrap();
        let machine = engine.create_state_machine("durable", def).unwrap();
        let exec = engine
            .start_execution(&machine, &json!({"id": 1}), Some("in-wait"))
            .unwrap();
        // A second execution parked on the activity when the engine dies.
        let waiting_exec = engine
            .start_execution(&machine, &json!({"id": 2}), Some("in-task"))
            .unwrap();
        // A worker takes the second execution's task, then the engine dies under it.
        let sfn = client(&engine);
        let taken = sfn
            .get_activity_task()
            .activity_arn(engine.activity_arn("work"))
            .send()
            .await
            .unwrap();
        let old_token = taken.task_token().expect("a task").to_string();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(engine.describe(&exec).unwrap().status, "RUNNING");
        let types: Vec<String> = engine
            .history(&exec)
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert!(
            types.iter().any(|t| t == "WaitStateEntered")
                && !types.iter().any(|t| t == "WaitStateExited"),
            "the first execution is in its Wait state: {types:?}"
        );
        (exec, waiting_exec, old_token)
        // dropped here: the "process" dies
    };

    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let sfn = client(&engine);
    assert_eq!(engine.describe(&exec).unwrap().status, "RUNNING");
    // The old engine's token is refused as timed out, so its worker stops.
    let err = sfn
        .send_task_heartbeat()
        .task_token(&old_token)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_task_timed_out(), "{err:?}");
    let activity = engine.activity_arn("work");
    let mut answered = 0;
    while answered < 2 {
        let t = sfn
            .get_activity_task()
            .activity_arn(&activity)
            .send()
            .await
            .unwrap();
        let Some(token) = t.task_token().filter(|t| !t.is_empty()) else {
            continue;
        };
        let input: serde_json::Value = serde_json::from_str(t.input().unwrap()).unwrap();
        sfn.send_task_success()
            .task_token(token)
            .output(json!({"worked": input["id"]}).to_string())
            .send()
            .await
            .unwrap();
        answered += 1;
    }
    for (arn, id) in [(&exec, 1), (&waiting_exec, 2)] {
        let done = tokio::time::timeout(Duration::from_secs(20), engine.wait(arn))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, "SUCCEEDED", "{done:?}");
        assert_eq!(
            done.output.unwrap(),
            json!({"id": id, "before": "before", "work": {"worked": id}, "after": "after"})
        );
    }
    let history = engine.history(&exec).unwrap();
    let started = history
        .iter()
        .filter(|e| e.event_type == "ExecutionStarted")
        .count();
    assert_eq!(started, 1, "the execution resumed, it did not start over");
    let before = history
        .iter()
        .filter(|e| e.event_type == "PassStateEntered")
        .count();
    assert_eq!(before, 2, "Before ran once, After once: {history:?}");
}
