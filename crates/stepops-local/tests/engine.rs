//! Executions end to end: the interpreter with this crate's dispatcher, store and API,
//! driven through the library API and the real `aws-sdk-sfn` client.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{client, config};
use serde_json::{Value, json};
use stepops_local::{LambdaError, LocalEngine, handler};

const ACTIVITY_MACHINE: &str = r#"{
  "StartAt": "Work",
  "States": {
    "Work": {
      "Type": "Task",
      "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
      "HeartbeatSeconds": 2,
      "TimeoutSeconds": 30,
      "ResultPath": "$.result",
      "End": true
    }
  }
}"#;

async fn worker_once(sfn: &aws_sdk_sfn::Client, activity: &str) -> (String, Value) {
    for _ in 0..20 {
        let t = sfn
            .get_activity_task()
            .activity_arn(activity)
            .worker_name("test-worker")
            .send()
            .await
            .unwrap();
        if let Some(token) = t.task_token().filter(|t| !t.is_empty()) {
            let input = serde_json::from_str(t.input().unwrap()).unwrap();
            return (token.to_string(), input);
        }
    }
    panic!("no activity task arrived");
}

#[tokio::test]
async fn lambda_tasks_results_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    engine.register_lambda(
        "double",
        handler(|v: Value| async move {
            match v["n"].as_i64() {
                Some(n) => Ok(json!({"n": n * 2})),
                None => Err(LambdaError::new(
                    "Stepops.InvalidInput",
                    "n must be a number",
                )),
            }
        }),
    );
    let def = json!({
        "StartAt": "Optimized",
        "States": {
            "Optimized": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "double", "Payload.$": "$"},
                "ResultPath": "$.invoke",
                "Next": "Bare"
            },
            "Bare": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:double",
                "InputPath": "$.invoke.Payload",
                "ResultPath": "$.bare",
                "Next": "Bad"
            },
            "Bad": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:double:$LATEST", "Payload": {"n": "x"}},
                "Catch": [{"ErrorEquals": ["Stepops.InvalidInput"], "ResultPath": "$.caught", "Next": "Missing"}],
                "End": true
            },
            "Missing": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "nope"},
                "Catch": [{"ErrorEquals": ["Lambda.ResourceNotFoundException"], "ResultPath": "$.missing", "Next": "Done"}],
                "End": true
            },
            "Done": {"Type": "Succeed"}
        }
    });
    let arn = engine
        .create_state_machine("lambdas", &def.to_string())
        .unwrap();
    let exec = engine
        .start_execution(&arn, &json!({"n": 21}), None)
        .unwrap();
    let out = engine.wait(&exec).await.unwrap();
    assert_eq!(out.status, "SUCCEEDED", "{out:?}");
    let o = out.output.unwrap();
    assert_eq!(o["invoke"]["Payload"], json!({"n": 42}));
    assert_eq!(o["invoke"]["StatusCode"], 200);
    assert_eq!(o["invoke"]["ExecutedVersion"], "$LATEST");
    assert_eq!(o["invoke"]["SdkHttpMetadata"]["HttpStatusCode"], 200);
    assert_eq!(
        o["bare"],
        json!({"n": 84}),
        "a bare function ARN returns the payload"
    );
    assert_eq!(o["caught"]["Error"], "Stepops.InvalidInput");
    let cause: Value = serde_json::from_str(o["caught"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(
        cause,
        json!({"errorType": "Stepops.InvalidInput", "errorMessage": "n must be a number"})
    );
    assert_eq!(o["missing"]["Error"], "Lambda.ResourceNotFoundException");
    assert!(
        o["missing"]["Cause"]
            .as_str()
            .unwrap()
            .contains("function:nope")
    );

    // An unknown resource is a States.Runtime error naming it (not catchable, as in AWS).
    let def = json!({"StartAt": "Unknown", "States": {"Unknown": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}], "End": true},
        "Done": {"Type": "Succeed"}}});
    let arn = engine
        .create_state_machine("unknown", &def.to_string())
        .unwrap();
    let exec = engine.start_execution(&arn, &json!({}), None).unwrap();
    let out = engine.wait(&exec).await.unwrap();
    assert_eq!(out.status, "FAILED");
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert!(
        out.cause
            .as_deref()
            .unwrap()
            .contains("arn:aws:states:::sqs:sendMessage"),
        "{out:?}"
    );
}

#[tokio::test]
async fn activity_worker_succeeds_fails_and_history_pages() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let sfn = client(&engine);
    let activity = sfn
        .create_activity()
        .name("work")
        .send()
        .await
        .unwrap()
        .activity_arn()
        .to_string();
    let machine = sfn
        .create_state_machine()
        .name("activity")
        .role_arn("arn:aws:iam::123456789012:role/r")
        .definition(ACTIVITY_MACHINE)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();

    // Success, with heartbeats spanning more than HeartbeatSeconds.
    let exec = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name("ok")
        .input(r#"{"chunk": 7}"#)
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string();
    let (token, input) = worker_once(&sfn, &activity).await;
    assert_eq!(input, json!({"chunk": 7}));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        sfn.send_task_heartbeat()
            .task_token(&token)
            .send()
            .await
            .unwrap();
    }
    sfn.send_task_success()
        .task_token(&token)
        .output(r#"{"rows": 10}"#)
        .send()
        .await
        .unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    assert_eq!(
        done.output.unwrap(),
        json!({"chunk": 7, "result": {"rows": 10}})
    );
    let d = sfn
        .describe_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status().as_str(), "SUCCEEDED");
    let m = sfn
        .describe_state_machine_for_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    assert_eq!(m.definition(), ACTIVITY_MACHINE);
    assert_eq!(m.name(), "activity");
    assert_eq!(d.output(), Some(r#"{"chunk":7,"result":{"rows":10}}"#));
    assert!(d.stop_date().is_some());

    // History, paged two at a time, is the same as in one page.
    let all = sfn
        .get_execution_history()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let types: Vec<String> = all
        .events()
        .iter()
        .map(|e| e.r#type().as_str().to_string())
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("ExecutionStarted"));
    assert_eq!(types.last().map(String::as_str), Some("ExecutionSucceeded"));
    assert!(types.iter().any(|t| t == "ActivityScheduled"), "{types:?}");
    assert!(types.iter().any(|t| t == "ActivitySucceeded"), "{types:?}");
    // As AWS: ActivityStarted names the worker, by the workerName it polled with.
    let started = all
        .events()
        .iter()
        .find_map(|e| e.activity_started_event_details())
        .expect("an ActivityStarted event with details");
    assert_eq!(started.worker_name(), Some("test-worker"));
    let mut paged = Vec::new();
    let mut next = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(&exec)
            .max_results(2)
            .set_next_token(next.clone())
            .send()
            .await
            .unwrap();
        paged.extend(page.events().iter().map(|e| e.id()));
        next = page.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    let ids: Vec<i64> = all.events().iter().map(|e| e.id()).collect();
    assert_eq!(paged, ids);
    let rev = sfn
        .get_execution_history()
        .execution_arn(&exec)
        .reverse_order(true)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(rev.events()[0].r#type().as_str(), "ExecutionSucceeded");

    // Failure reported by the worker.
    let exec2 = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name("bad")
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string();
    let (token, _) = worker_once(&sfn, &activity).await;
    sfn.send_task_failure()
        .task_token(&token)
        .error("Stepops.SchemaMismatch")
        .cause("table t: column c differs")
        .send()
        .await
        .unwrap();
    let done = engine.wait(&exec2).await.unwrap();
    assert_eq!(done.status, "FAILED");
    assert_eq!(done.error.as_deref(), Some("Stepops.SchemaMismatch"));
    assert_eq!(done.cause.as_deref(), Some("table t: column c differs"));

    let listed = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .status_filter(aws_sdk_sfn::types::ExecutionStatus::Failed)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.executions().len(), 1);
    assert_eq!(listed.executions()[0].name(), "bad");
    let err = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name("bad")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_execution_already_exists(), "{err:?}");
}

#[tokio::test]
async fn silent_worker_times_out_and_its_late_answer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let sfn = client(&engine);
    let activity = engine.create_activity("work").unwrap();
    let machine = engine.create_state_machine("hb", ACTIVITY_MACHINE).unwrap();
    let exec = engine.start_execution(&machine, &json!({}), None).unwrap();
    let (token, _) = worker_once(&sfn, &activity).await;
    let done = engine.wait(&exec).await.unwrap(); // no heartbeat for 2 s
    assert_eq!(done.status, "FAILED");
    assert_eq!(done.error.as_deref(), Some("States.HeartbeatTimeout"));
    let err = sfn
        .send_task_success()
        .task_token(&token)
        .output("{}")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_task_timed_out(), "{err:?}");
    let err = sfn
        .send_task_heartbeat()
        .task_token(&token)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_task_timed_out(), "{err:?}");

    // A worker that starts late (after HeartbeatSeconds) is fine: the heartbeat clock starts
    // when it takes the task, as in AWS.
    let exec = engine.start_execution(&machine, &json!({}), None).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (token, _) = worker_once(&sfn, &activity).await;
    sfn.send_task_success()
        .task_token(&token)
        .output("{}")
        .send()
        .await
        .unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");

    // No worker at all: TimeoutSeconds fails the state, and the task is not handed out later.
    let machine = engine
        .create_state_machine(
            "timeout",
            r#"{"StartAt":"Work","States":{"Work":{"Type":"Task",
                "Resource":"arn:aws:states:us-east-1:123456789012:activity:work",
                "TimeoutSeconds":1,"End":true}}}"#,
        )
        .unwrap();
    let exec = engine.start_execution(&machine, &json!({}), None).unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "FAILED");
    assert_eq!(done.error.as_deref(), Some("States.Timeout"));
    let late = sfn
        .get_activity_task()
        .activity_arn(&activity)
        .send()
        .await
        .unwrap();
    assert!(late.task_token().is_none_or(str::is_empty), "{late:?}");
}

#[tokio::test]
async fn wait_for_task_token_and_nested_executions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let sfn = client(&engine);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    engine.register_lambda(
        "ask",
        handler(move |v: Value| {
            let tx = tx.clone();
            async move {
                tx.send(v["token"].as_str().unwrap_or_default().to_string())
                    .unwrap();
                Ok(json!({}))
            }
        }),
    );
    let child = engine
        .create_state_machine(
            "child",
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"got.$":"$.x"},"Next":"C"},
                "C":{"Type":"Choice","Choices":[{"Variable":"$.got","NumericEquals":0,"Next":"F"}],"Default":"S"},
                "F":{"Type":"Fail","Error":"Child.Failed","Cause":"x was 0"},"S":{"Type":"Succeed"}}}"#,
        )
        .unwrap();
    let parent = json!({
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "ask", "Payload": {"token.$": "$$.Task.Token"}},
                "ResultPath": "$.answer",
                "Next": "Child"
            },
            "Child": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": child, "Input": {"x.$": "$.answer.x"}},
                "ResultSelector": {"out.$": "$.Output", "status.$": "$.Status"},
                "ResultPath": "$.child",
                "Next": "SyncV1"
            },
            "SyncV1": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync",
                "Parameters": {"StateMachineArn": child, "Input": {"x": 9}},
                "ResultSelector": {"out.$": "$.Output"},
                "ResultPath": "$.v1",
                "Next": "Fire"
            },
            "Fire": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {"StateMachineArn": child, "Input": "{\"x\": 5}", "Name": "continued"},
                "ResultSelector": {"arn.$": "$.ExecutionArn"},
                "ResultPath": "$.fired",
                "End": true
            }
        }
    });
    let machine = engine
        .create_state_machine("parent", &parent.to_string())
        .unwrap();

    let exec = engine
        .start_execution(&machine, &json!({}), Some("one"))
        .unwrap();
    let token = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    sfn.send_task_success()
        .task_token(&token)
        .output(r#"{"x": 3}"#)
        .send()
        .await
        .unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let o = done.output.unwrap();
    assert_eq!(
        o["child"],
        json!({"out": {"got": 3}, "status": "SUCCEEDED"})
    );
    assert_eq!(
        o["v1"]["out"],
        json!(r#"{"got":9}"#),
        ".sync gives Output as JSON text"
    );
    let fired = o["fired"]["arn"].as_str().unwrap().to_string();
    assert!(fired.ends_with(":execution:child:continued"), "{fired}");
    assert_eq!(engine.wait(&fired).await.unwrap().status, "SUCCEEDED");

    // A failing child fails the .sync task with States.TaskFailed.
    let exec = engine
        .start_execution(&machine, &json!({}), Some("two"))
        .unwrap();
    let token = rx.recv().await.unwrap();
    sfn.send_task_success()
        .task_token(&token)
        .output(r#"{"x": 0}"#)
        .send()
        .await
        .unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "FAILED");
    assert_eq!(done.error.as_deref(), Some("States.TaskFailed"));
    let cause: Value = serde_json::from_str(done.cause.as_deref().unwrap()).unwrap();
    assert_eq!(cause["Status"], "FAILED");
    assert_eq!(cause["Error"], "Child.Failed");
}

#[tokio::test]
async fn stop_and_redrive_rerun_only_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let sfn = client(&engine);
    let first_calls = Arc::new(AtomicU32::new(0));
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let f = first_calls.clone();
    engine.register_lambda(
        "first",
        handler(move |_v: Value| {
            let f = f.clone();
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                Ok(json!("first done"))
            }
        }),
    );
    let c = flaky_calls.clone();
    engine.register_lambda(
        "flaky",
        handler(move |_v: Value| {
            let c = c.clone();
            async move {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(LambdaError::new("Stepops.Transient", "database restarting"))
                } else {
                    Ok(json!("flaky done"))
                }
            }
        }),
    );
    let def = json!({
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:first", "ResultPath": "$.first", "Next": "Flaky"},
            "Flaky": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:flaky", "ResultPath": "$.flaky", "End": true}
        }
    });
    let machine = engine
        .create_state_machine("redrive", &def.to_string())
        .unwrap();
    let exec = engine.start_execution(&machine, &json!({}), None).unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "FAILED");
    assert_eq!(done.error.as_deref(), Some("Stepops.Transient"));

    sfn.redrive_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    assert_eq!(
        done.output.unwrap(),
        json!({"first": "first done", "flaky": "flaky done"})
    );
    assert_eq!(
        first_calls.load(Ordering::SeqCst),
        1,
        "the state that succeeded is not re-run"
    );
    assert_eq!(flaky_calls.load(Ordering::SeqCst), 2);
    let d = sfn
        .describe_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    assert_eq!(d.redrive_count(), Some(1));
    let err = sfn
        .redrive_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_execution_not_redrivable(), "{err:?}");

    // StopExecution aborts a waiting execution.
    let waiting = engine
        .create_state_machine(
            "waiting",
            r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}"#,
        )
        .unwrap();
    let exec = engine.start_execution(&waiting, &json!({}), None).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    sfn.stop_execution()
        .execution_arn(&exec)
        .error("Operator.Stop")
        .cause("stopped by the test")
        .send()
        .await
        .unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "ABORTED");
    assert_eq!(done.error.as_deref(), Some("Operator.Stop"));
    // As AWS: the stop's error and cause are in the ExecutionAborted event too.
    let history = sfn
        .get_execution_history()
        .execution_arn(&exec)
        .reverse_order(true)
        .max_results(1)
        .send()
        .await
        .unwrap();
    let aborted = history.events()[0]
        .execution_aborted_event_details()
        .expect("executionAbortedEventDetails");
    assert_eq!(aborted.error(), Some("Operator.Stop"));
    assert_eq!(aborted.cause(), Some("stopped by the test"));
}

#[tokio::test]
async fn template_state_machine_runs_with_handlers_by_logical_id() {
    let dir = tempfile::tempdir().unwrap();
    let template = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sam/template.yaml");
    let cfg = stepops_local::EngineConfig {
        template: Some(template),
        ..config(dir.path())
    }
    .with_lambda(
        "ValidateInputFunction",
        handler(|v: Value| async move { Ok(json!({"validated": v})) }),
    )
    .with_lambda(
        "NotifyFunction",
        handler(|v: Value| async move { Ok(json!({"delivered": [v["rows"]]})) }),
    );
    let engine = LocalEngine::start(cfg).await.unwrap();
    let sfn = client(&engine);
    let exec = engine
        .start_execution("MigrateStateMachine", &json!({"environment": "dev"}), None)
        .unwrap();
    let (token, input) = worker_once(&sfn, &engine.activity_arn("CopyActivity")).await;
    assert_eq!(input["chunkRows"], "1000");
    sfn.send_task_success()
        .task_token(&token)
        .output(r#"{"rows": 5}"#)
        .send()
        .await
        .unwrap();
    let done = engine.wait(&exec).await.unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    assert_eq!(done.output.unwrap()["Payload"], json!({"delivered": [5]}));
    let machines = sfn.list_state_machines().send().await.unwrap();
    let names: Vec<&str> = machines.state_machines().iter().map(|m| m.name()).collect();
    assert_eq!(names, vec!["inline", "stepops-local-migrate"]);
}

#[tokio::test]
async fn exec_runs_a_definition_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wait.asl.json");
    std::fs::write(
        &path,
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"Next":"F"},
            "F":{"Type":"Fail","Error":"Custom.Error","Cause":"on purpose"}}}"#,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = stepops_local::exec::exec(stepops_local::exec::ExecOptions {
        definition: path,
        input: json!({}),
        time_scale: 0.0,
        template: None,
        template_options: Default::default(),
        lambdas: Default::default(),
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        out.to_json(),
        json!({"status": "FAILED", "error": "Custom.Error", "cause": "on purpose"})
    );
}
