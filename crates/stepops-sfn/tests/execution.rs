//! Start-and-wait, finding state machines and reading histories with the real `aws-sdk-sfn`
//! client against the local engine's endpoint (`stepops-local`).

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use stepops_error::{ErrorName, Named};
use stepops_local::{EngineConfig, LocalEngine};
use stepops_sfn::{
    SfnError, WaitOptions, execution_history, find_state_machines, local_sfn_client,
    start_execution, wait_for_execution,
};

/// Waits `seconds`, then succeeds with its input and a greeting.
fn waiting_machine(seconds: u32) -> String {
    json!({
        "StartAt": "Pause",
        "States": {
            "Pause": {"Type": "Wait", "Seconds": seconds, "Next": "Greet"},
            "Greet": {"Type": "Pass", "Parameters": {"hello.$": "$.who"}, "End": true}
        }
    })
    .to_string()
}

const FAILING_MACHINE: &str = r#"{"StartAt":"Check","States":{"Check":{"Type":"Fail","Error":"Stepops.InvalidInput","Cause":"no target"}}}"#;

async fn engine(dir: &std::path::Path) -> LocalEngine {
    LocalEngine::start(EngineConfig {
        port: Some(0),
        ..EngineConfig::new(dir)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn start_and_wait_reports_progress_and_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let machine = engine
        .create_state_machine("stepops-dev-migrate", &waiting_machine(1))
        .unwrap();
    let sfn = local_sfn_client(&engine.endpoint().unwrap());

    let arn = start_execution(&sfn, &machine, Some("run-1"), &json!({"who": "dev"}))
        .await
        .unwrap();
    assert!(arn.ends_with(":run-1"), "{arn}");
    let mut polls = Vec::new();
    let finished = wait_for_execution(&sfn, &arn, &WaitOptions::default(), |p| polls.push(p.polls))
        .await
        .unwrap();
    assert!(finished.succeeded(), "{finished:?}");
    assert_eq!(finished.output, Some(json!({"hello": "dev"})));
    assert!(
        polls.len() >= 3,
        "a 1 s wait polled from 100 ms up: {polls:?}"
    );
    assert_eq!(polls, (1..=polls.len() as u32).collect::<Vec<_>>());

    let again = start_execution(&sfn, &machine, Some("run-1"), &json!({"who": "other"}))
        .await
        .unwrap_err();
    assert_eq!(again.error_name(), ErrorName::Conflict, "{again}");
}

#[tokio::test]
async fn a_failed_execution_ends_with_its_error_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let machine = engine
        .create_state_machine("stepops-dev-admin", FAILING_MACHINE)
        .unwrap();
    let sfn = local_sfn_client(&engine.endpoint().unwrap());
    let arn = start_execution(&sfn, &machine, None, &json!({}))
        .await
        .unwrap();
    let finished = wait_for_execution(&sfn, &arn, &WaitOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(finished.status, ExecutionStatus::Failed);
    assert_eq!(finished.error.as_deref(), Some("Stepops.InvalidInput"));
    assert_eq!(finished.cause.as_deref(), Some("no target"));
    assert_eq!(finished.output, None);

    let history = execution_history(&sfn, &arn).await.unwrap();
    let types: Vec<&str> = history.iter().map(|h| h.event_type.as_str()).collect();
    assert_eq!(types.first(), Some(&"ExecutionStarted"), "{types:?}");
    let last = history.last().unwrap();
    assert_eq!(last.event_type, "ExecutionFailed");
    assert_eq!(last.error.as_deref(), Some("Stepops.InvalidInput"));
    assert!(
        history
            .iter()
            .any(|h| h.event_type == "FailStateEntered" && h.state.as_deref() == Some("Check")),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_wait_gives_up_at_its_limit_and_leaves_the_execution_running() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let machine = engine
        .create_state_machine("stepops-dev-migrate", &waiting_machine(60))
        .unwrap();
    let sfn = local_sfn_client(&engine.endpoint().unwrap());
    let arn = start_execution(&sfn, &machine, None, &json!({"who": "x"}))
        .await
        .unwrap();
    let options = WaitOptions {
        limit: Some(Duration::from_millis(300)),
        ..WaitOptions::default()
    };
    let err = wait_for_execution(&sfn, &arn, &options, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SfnError::StillRunning { .. }), "{err:?}");
    assert!(err.to_string().contains("still running"), "{err}");
    let d = sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), &ExecutionStatus::Running);
}

#[tokio::test]
async fn state_machines_are_found_by_name_and_a_missing_execution_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    for name in [
        "stepops-dev-migrate",
        "stepops-dev-admin",
        "stepops-prod-migrate",
    ] {
        engine.create_state_machine(name, FAILING_MACHINE).unwrap();
    }
    let sfn = local_sfn_client(&engine.endpoint().unwrap());
    let found = find_state_machines(&sfn, |n| n.contains("dev") && n.contains("migrate"))
        .await
        .unwrap();
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["stepops-dev-migrate"]);
    assert!(found[0].1.ends_with(":stateMachine:stepops-dev-migrate"));

    let missing = format!(
        "{}:nope",
        found[0].1.replace(":stateMachine:", ":execution:")
    );
    let err = wait_for_execution(&sfn, &missing, &WaitOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotFound, "{err}");
}
