//! The Step Functions JSON API through the real `aws-sdk-sfn` client: framing, errors,
//! activities and long polls (no execution needed).

mod common;

use std::time::{Duration, Instant};

use aws_sdk_sfn::error::ProvideErrorMetadata;
use common::{client, code, config};
use stepops_local::LocalEngine;

#[tokio::test]
async fn activities_crud_and_empty_long_poll() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let sfn = client(&engine);

    let created = sfn.create_activity().name("copy").send().await.unwrap();
    let arn = created.activity_arn().to_string();
    assert_eq!(arn, "arn:aws:states:us-east-1:123456789012:activity:copy");
    let again = sfn.create_activity().name("copy").send().await.unwrap();
    assert_eq!(again.activity_arn(), arn, "CreateActivity is idempotent");
    sfn.create_activity().name("plan").send().await.unwrap();

    let listed = sfn.list_activities().max_results(1).send().await.unwrap();
    assert_eq!(listed.activities().len(), 1);
    let token = listed.next_token().expect("a second page").to_string();
    let rest = sfn
        .list_activities()
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.activities().len(), 1);
    assert!(rest.next_token().is_none());

    let d = sfn
        .describe_activity()
        .activity_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), "copy");

    let started = Instant::now();
    let polled = sfn
        .get_activity_task()
        .activity_arn(&arn)
        .worker_name("w1")
        .send()
        .await
        .unwrap();
    assert!(polled.task_token().is_none_or(str::is_empty));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the poll is held"
    );

    sfn.delete_activity()
        .activity_arn(&arn)
        .send()
        .await
        .unwrap();
    let err = sfn
        .describe_activity()
        .activity_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_activity_does_not_exist(), "{err:?}");
    let err = sfn
        .get_activity_task()
        .activity_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_activity_does_not_exist(), "{err:?}");
}

/// The names AWS documents for a token that is not pending: a token of the engine's form it
/// never issued `TaskDoesNotExist`, anything else that is not its token `InvalidToken`, a
/// length outside 1 to 2048 `ValidationException` (the API's length constraint). A closed
/// token's `TaskTimedOut` is in tests/engine.rs.
#[tokio::test]
async fn task_token_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let sfn = client(&engine);
    let err = sfn
        .send_task_success()
        .task_token("0123456789abcdef".repeat(4))
        .output("{}")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_task_does_not_exist(), "{err:?}");
    for malformed in ["no-such-token", "bad token with spaces"] {
        let err = sfn
            .send_task_heartbeat()
            .task_token(malformed)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_invalid_token(), "{malformed}: {err:?}");
    }
    for wrong_length in ["".to_owned(), "x".repeat(3000)] {
        let err = sfn
            .send_task_failure()
            .task_token(wrong_length)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(err.meta().code(), Some("ValidationException"), "{err:?}");
    }
}

#[tokio::test]
async fn state_machine_and_execution_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let sfn = client(&engine);
    let missing = "arn:aws:states:us-east-1:123456789012:stateMachine:nope";
    let err = sfn
        .start_execution()
        .state_machine_arn(missing)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_state_machine_does_not_exist(), "{err:?}");
    let err = sfn
        .describe_execution()
        .execution_arn("arn:aws:states:us-east-1:123456789012:execution:nope:x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_execution_does_not_exist(), "{err:?}");
    let err = sfn
        .describe_execution()
        .execution_arn("not-an-arn")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_arn(), "{err:?}");
    let err = sfn
        .create_state_machine()
        .name("broken")
        .role_arn("arn:aws:iam::123456789012:role/r")
        .definition(r#"{"StartAt": "Nowhere", "States": {"P": {"Type": "Pass", "End": true}}}"#)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_definition(), "{err:?}");
    assert!(err.message().unwrap_or("").contains("Nowhere"), "{err:?}");

    let def = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#;
    let created = sfn
        .create_state_machine()
        .name("ok")
        .role_arn("arn:aws:iam::123456789012:role/r")
        .definition(def)
        .send()
        .await
        .unwrap();
    let arn = created.state_machine_arn().to_string();
    let d = sfn
        .describe_state_machine()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.definition(), def);
    let listed = sfn.list_state_machines().send().await.unwrap();
    assert_eq!(listed.state_machines().len(), 1);
    let err = sfn
        .create_state_machine()
        .name("ok")
        .role_arn("arn:aws:iam::123456789012:role/r")
        .definition(r#"{"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": true}}}"#)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_state_machine_already_exists(), "{err:?}");
    let err = sfn
        .start_execution()
        .state_machine_arn(&arn)
        .input("{not json")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_execution_input(), "{err:?}");
    let err = sfn
        .start_execution()
        .state_machine_arn(&arn)
        .name("bad name")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_name(), "{err:?}");
    assert_eq!(code(&err), "InvalidName");
}

/// Sends a `GetActivityTask` for `activity` over a raw connection and closes it while the poll
/// is held (a runner killed while polling).
async fn abandon_a_poll(engine: &LocalEngine, activity: &str) {
    use tokio::io::AsyncWriteExt;
    let addr = engine
        .endpoint()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let body = format!(r#"{{"activityArn":"{activity}","workerName":"killed"}}"#);
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(
        format!(
            "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-amz-json-1.0\r\n\
             x-amz-target: AWSStepFunctions.GetActivityTask\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(raw); // the poller goes away while its poll is held
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// A one-state machine on `activity`; `state` adds to the Task state.
fn activity_machine(
    engine: &LocalEngine,
    name: &str,
    activity: &str,
    state: serde_json::Value,
) -> String {
    let mut task = serde_json::json!({"Type": "Task", "Resource": activity, "End": true});
    for (k, v) in state.as_object().unwrap() {
        task[k] = v.clone();
    }
    let def = serde_json::json!({"StartAt": "W", "States": {"W": task}});
    engine.create_state_machine(name, &def.to_string()).unwrap()
}

/// By default a poller that goes away (client timeout, runner drain) must not swallow the next
/// task.
#[tokio::test]
async fn abandoned_poll_does_not_take_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(common::EngineConfig {
        poll_timeout: Duration::from_secs(5),
        ..config(dir.path())
    })
    .await
    .unwrap();
    let sfn = client(&engine);
    let activity = engine.create_activity("work").unwrap();
    abandon_a_poll(&engine, &activity).await;

    let machine = activity_machine(&engine, "m", &activity, serde_json::json!({}));
    let exec = engine
        .start_execution(&machine, &serde_json::json!({"n": 1}), None)
        .unwrap();
    let t = sfn
        .get_activity_task()
        .activity_arn(&activity)
        .send()
        .await
        .unwrap();
    let token = t
        .task_token()
        .filter(|t| !t.is_empty())
        .expect("the task reaches the live poller");
    sfn.send_task_success()
        .task_token(token)
        .output("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(engine.wait(&exec).await.unwrap().status, "SUCCEEDED");
}

/// Sends `request` as is on a fresh connection and returns what the engine answered.
async fn raw(endpoint: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The engine may answer (and close) before the whole body is sent: that is the point.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The local API is bounded: a body over 1 MiB is refused (413) without being read whole, an
/// execution input or task output over AWS's 256 KiB is a ValidationException, a Host that is
/// not a loopback name (DNS rebinding) is refused (403), and a client that does not finish its
/// headers is disconnected.
#[tokio::test]
async fn requests_are_bounded_loopback_only_and_timed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let endpoint = engine.endpoint().unwrap();
    let sfn = client(&engine);

    let big = format!("\"{}\"", "x".repeat(256 * 1024));
    let e = sfn
        .send_task_success()
        .task_token("any")
        .output(&big)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    assert!(
        e.message()
            .unwrap_or("")
            .contains("less than or equal to 262144"),
        "{e:?}"
    );

    let body_len = 2 * 1024 * 1024;
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: AWSStepFunctions.ListActivities\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .into_bytes();
    req.extend(std::iter::repeat_n(b' ', body_len));
    let answer = raw(&endpoint, &req).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert!(
        answer.contains("RequestEntityTooLargeException"),
        "{answer:.400}"
    );

    let list_for = |host: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: AWSStepFunctions.ListActivities\r\n\
             Content-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
    };
    for (host, status) in [
        ("localhost", "200"),
        ("127.0.0.1:9", "200"),
        ("[::1]:8083", "200"),
        ("api.localhost", "200"),
        ("evil.example", "403"),
        ("127.0.0.1.evil.example:8083", "403"),
        ("10.0.0.1", "403"),
    ] {
        let answer = raw(&endpoint, list_for(host).as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{host}: {answer:.300}"
        );
        if status == "403" {
            assert!(answer.contains("loopback host names only"), "{answer:.400}");
        }
    }

    // Headers never finished: the connection is closed after the header timeout.
    let started = Instant::now();
    let answer = raw(&endpoint, b"POST / HTTP/1.1\r\nHost: localhost\r\n").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(19),
        "closed after {waited:?}: {answer:.200}"
    );
    assert!(!answer.contains(" 200 "), "{answer:.200}");
    engine.shutdown().await;
}

/// With `abandoned_polls_take_tasks` (what AWS may do): the poll of a client that has gone
/// takes the next task, which nobody works on; it times out on heartbeat, the state's Retry
/// schedules it again and a live poller gets the new attempt. The history records the
/// abandoned poll's workerName on the lost attempt.
#[tokio::test]
async fn with_the_aws_behaviour_an_abandoned_poll_loses_the_task_until_its_heartbeat_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(common::EngineConfig {
        poll_timeout: Duration::from_secs(5),
        time_scale: 0.2,
        abandoned_polls_take_tasks: true,
        ..config(dir.path())
    })
    .await
    .unwrap();
    let sfn = client(&engine);
    let activity = engine.create_activity("work").unwrap();
    abandon_a_poll(&engine, &activity).await;

    // HeartbeatSeconds 5 at time scale 0.2: 1 s.
    let machine = activity_machine(
        &engine,
        "m",
        &activity,
        serde_json::json!({"HeartbeatSeconds": 5, "Retry": [{"ErrorEquals": ["States.HeartbeatTimeout"],
            "IntervalSeconds": 1, "MaxAttempts": 2}]}),
    );
    let started = std::time::Instant::now();
    let exec = engine
        .start_execution(&machine, &serde_json::json!({"n": 1}), None)
        .unwrap();
    let t = sfn
        .get_activity_task()
        .activity_arn(&activity)
        .worker_name("live")
        .send()
        .await
        .unwrap();
    let token = t
        .task_token()
        .filter(|t| !t.is_empty())
        .expect("the retried task reaches the live poller");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the live poller got the task after {:?}: the abandoned poll did not take the first attempt",
        started.elapsed()
    );
    sfn.send_task_success()
        .task_token(token)
        .output("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(engine.wait(&exec).await.unwrap().status, "SUCCEEDED");
    let history = sfn
        .get_execution_history()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let types: Vec<&str> = history
        .events()
        .iter()
        .map(|e| e.r#type().as_str())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "ActivityTimedOut").count(),
        1,
        "{types:?}"
    );
    let workers: Vec<Option<&str>> = history
        .events()
        .iter()
        .filter_map(|e| e.activity_started_event_details())
        .map(|d| d.worker_name())
        .collect();
    assert_eq!(workers, vec![Some("killed"), Some("live")]);
}
