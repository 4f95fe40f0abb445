//! EventBridge rules of the template: which are read (AWS::Events::Rule, a SAM function's
//! EventBridgeRule), which are refused or listed as not run, and the engine delivering
//! Step Functions execution status changes to the target's in-process handler, with the event
//! AWS sends.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, config};
use serde_json::{Value, json};
use stepops_local::events::TargetKind;
use stepops_local::template::{TemplateOptions, load_template};
use stepops_local::{EngineConfig, LambdaError, LocalEngine, handler};

const MACHINE: &str = r#"{
  "StartAt": "Maybe",
  "TimeoutSeconds": 30,
  "States": {
    "Maybe": {
      "Type": "Choice",
      "Choices": [
        {"And": [{"Variable": "$.fail", "IsPresent": true},
                 {"Variable": "$.fail", "BooleanEquals": true}], "Next": "Boom"},
        {"And": [{"Variable": "$.wait", "IsPresent": true},
                 {"Variable": "$.wait", "BooleanEquals": true}], "Next": "Sleep"}
      ],
      "Default": "Done"
    },
    "Sleep": {"Type": "Wait", "Seconds": 60, "Next": "Done"},
    "Boom": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": "${WorkArn}", "Payload.$": "$"},
      "Next": "Done"
    },
    "Done": {"Type": "Succeed"}
  }
}"#;

/// A template: the machine, a Work function, a Notify function with a SAM EventBridgeRule
/// (FAILED, TIMED_OUT, ABORTED of the machine), an Audit function behind an
/// AWS::Events::Rule (every status), and rules that cannot fire locally.
fn template(dir: &Path, extra: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("sm")).unwrap();
    std::fs::write(dir.join("sm/m.asl.json"), MACHINE).unwrap();
    let t = format!(
        r#"AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: events-machine
      DefinitionUri: sm/m.asl.json
      DefinitionSubstitutions:
        WorkArn: !GetAtt WorkFunction.Arn
      Events:
        Nightly:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: cron(0 2 * * ? *)
  WorkFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: events-work
      CodeUri: f/work
  NotifyFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: events-notify
      CodeUri: f/notify
      Events:
        Ended:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.states]
              detail-type: [Step Functions Execution Status Change]
              detail:
                status: [FAILED, TIMED_OUT, ABORTED]
                stateMachineArn: [!Ref Machine]
        Other:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.ec2]
              detail:
                state: [{{"anything-but": "running"}}]
  AuditFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: f/audit
  EveryChange:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        source: [aws.states]
        detail-type: [Step Functions Execution Status Change]
        detail:
          stateMachineArn: [!Ref Machine]
      Targets:
        - Id: audit
          Arn: !GetAtt AuditFunction.Arn
  OtherBus:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: custom
      EventPattern: {{"source": ["aws.states"]}}
      Targets: [{{Id: x, Arn: !GetAtt AuditFunction.Arn}}]
{extra}"#
    );
    let path = dir.join("template.yaml");
    std::fs::write(&path, t).unwrap();
    path
}

#[test]
fn rules_are_read_refused_or_listed_as_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let t = load_template(&template(dir.path(), ""), &TemplateOptions::default()).unwrap();
    let ids: Vec<_> = t.event_rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["NotifyFunction.Ended", "EveryChange"]);
    assert_eq!(t.event_rules[0].targets[0].name, "events-notify");
    assert_eq!(t.event_rules[1].targets[0].logical_id, "AuditFunction");
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:events-machine";
    assert_eq!(
        t.event_rules[0].pattern.values_at("detail.stateMachineArn"),
        Some(vec![json!(machine)]),
        "!Ref of the machine is its ARN"
    );
    let described = t.event_rules[0].describe();
    assert!(
        described.contains("FAILED|TIMED_OUT|ABORTED"),
        "{described}"
    );
    let not_run: Vec<_> = t.unemulated_rules.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(
        not_run,
        ["Machine.Nightly", "NotifyFunction.Other", "OtherBus"]
    );
    assert!(t.unemulated_rules[0].reason.contains("schedule"));
    assert!(t.unemulated_rules[2].reason.contains("default bus"));

    let refuse = |extra: &str, says: &str| {
        let d = tempfile::tempdir().unwrap();
        let e = load_template(&template(d.path(), extra), &TemplateOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{extra}\n=> {e}");
    };
    refuse(
        r#"  Prefixed:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {"source": ["aws.states"], "detail": {"status": [{"prefix": "FAIL"}]}}
      Targets: [{Id: x, Arn: !GetAtt AuditFunction.Arn}]
"#,
        "resource Prefixed: its event pattern may match Step Functions status changes but at `detail.status`: the content filter",
    );
    refuse(
        r#"  ToTopic:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {"source": ["aws.states"]}
      Targets: [{Id: t, Arn: "arn:aws:sns:us-east-1:123456789012:topic"}]
"#,
        "is neither a function nor a state machine of this template",
    );
    refuse(
        r#"  Shaped:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {"source": ["aws.states"]}
      Targets: [{Id: t, Arn: !GetAtt AuditFunction.Arn, InputPath: "$.detail"}]
"#,
        "sets InputPath",
    );
    refuse(
        r#"  Bare:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {"source": "aws.states"}
      Targets: [{Id: t, Arn: !GetAtt AuditFunction.Arn}]
"#,
        "needs a list of values",
    );
    refuse(
        r#"  Either:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {"source": ["aws.states"], "$or": [{"detail": {"status": ["FAILED"]}}]}
      Targets: [{Id: t, Arn: !GetAtt AuditFunction.Arn}]
"#,
        "$or",
    );
}

type Seen = Arc<Mutex<Vec<Value>>>;

fn recorder(seen: &Seen) -> stepops_local::LambdaHandler {
    let seen = seen.clone();
    handler(move |event: Value| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(event);
            Ok(json!({"ok": true}))
        }
    })
}

async fn engine(dir: &Path, notify: &Seen, audit: &Seen) -> LocalEngine {
    let path = template(dir, "");
    let c = EngineConfig {
        template: Some(path),
        time_scale: 0.01,
        ..config(&dir.join("state"))
    }
    .with_lambda("NotifyFunction", recorder(notify))
    .with_lambda("AuditFunction", recorder(audit))
    .with_lambda(
        "WorkFunction",
        handler(|_v: Value| async move { Err(LambdaError::new("Stepops.Internal", "broken")) }),
    );
    LocalEngine::start(c).await.unwrap()
}

fn statuses(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn status_changes_reach_the_rules_targets_with_the_aws_event() {
    let dir = tempfile::tempdir().unwrap();
    let (notify, audit): (Seen, Seen) = Default::default();
    let engine = engine(dir.path(), &notify, &audit).await;

    // Succeeded: the audit rule sees RUNNING and SUCCEEDED, notify nothing.
    let ok = engine
        .start_execution("Machine", &json!({}), Some("ok"))
        .unwrap();
    assert_eq!(engine.wait(&ok).await.unwrap().status, "SUCCEEDED");
    engine.deliveries_settled().await;
    assert_eq!(statuses(&audit), ["RUNNING", "SUCCEEDED"]);
    assert!(notify.lock().unwrap().is_empty());

    // Failed: notify gets the event AWS sends, with the execution's error and cause.
    let bad = engine
        .start_execution("Machine", &json!({"fail": true}), Some("bad"))
        .unwrap();
    let outcome = engine.wait(&bad).await.unwrap();
    assert_eq!(outcome.status, "FAILED");
    engine.deliveries_settled().await;
    let e = notify.lock().unwrap()[0].clone();
    assert_eq!(e["source"], "aws.states");
    assert_eq!(e["detail-type"], "Step Functions Execution Status Change");
    assert_eq!(e["version"], "0");
    assert_eq!(e["account"], "123456789012");
    assert_eq!(e["region"], "us-east-1");
    assert_eq!(e["resources"], json!([bad]));
    let d = &e["detail"];
    assert_eq!(d["executionArn"], bad.as_str());
    assert_eq!(
        d["stateMachineArn"],
        "arn:aws:states:us-east-1:123456789012:stateMachine:events-machine"
    );
    assert_eq!(
        (d["name"].as_str(), d["status"].as_str()),
        (Some("bad"), Some("FAILED"))
    );
    assert_eq!(d["error"], "Stepops.Internal");
    assert!(d["cause"].as_str().unwrap().contains("broken"));
    assert_eq!(d["input"], "{\"fail\":true}");
    assert!(d["startDate"].is_i64() && d["stopDate"].is_i64());
    assert_eq!(d["redriveCount"], 0);
    assert_eq!(d["redriveStatus"], "REDRIVABLE");
    assert!(d["output"].is_null());

    // A redrive changes the status to RUNNING (audit sees it), and it fails again: notify again.
    engine.redrive_execution(&bad).unwrap();
    assert_eq!(engine.wait(&bad).await.unwrap().status, "FAILED");
    engine.deliveries_settled().await;
    assert_eq!(statuses(&notify), ["FAILED", "FAILED"]);
    assert_eq!(notify.lock().unwrap()[1]["detail"]["redriveCount"], 1);
    let audit_bad: Vec<_> = audit
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["name"] == "bad")
        .map(|e| e["detail"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(audit_bad, ["RUNNING", "FAILED", "RUNNING", "FAILED"]);

    // Aborted (StopExecution) and timed out (TimeoutSeconds 30 × 0.01) notify too: no Catch in
    // the machine could.
    let stopped = engine
        .start_execution("Machine", &json!({"wait": true}), Some("stopped"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    engine
        .stop_execution(&stopped, Some("Operator"), Some("stopped by hand"))
        .unwrap();
    assert_eq!(engine.wait(&stopped).await.unwrap().status, "ABORTED");
    let slow = engine
        .start_execution("Machine", &json!({"wait": true}), Some("slow"))
        .unwrap();
    assert_eq!(engine.wait(&slow).await.unwrap().status, "TIMED_OUT");
    engine.deliveries_settled().await;
    assert_eq!(
        statuses(&notify),
        ["FAILED", "FAILED", "ABORTED", "TIMED_OUT"]
    );
    let aborted = notify.lock().unwrap()[2]["detail"].clone();
    assert_eq!(aborted["error"], "Operator");
    let timed_out = notify.lock().unwrap()[3]["detail"].clone();
    assert_eq!(timed_out["error"], "States.Timeout");

    // Every delivery is recorded; the handler's answer is kept.
    let deliveries = engine.deliveries();
    assert_eq!(
        deliveries
            .iter()
            .filter(|d| d.rule == "NotifyFunction.Ended")
            .count(),
        4
    );
    assert!(
        deliveries
            .iter()
            .all(|d| d.result == Ok(json!({"ok": true})))
    );

    // The history the target reads back (GetExecutionHistory through the SDK) is complete when
    // the event arrives.
    let h = client(&engine)
        .get_execution_history()
        .execution_arn(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.events().last().unwrap().r#type().as_str(),
        "ExecutionFailed"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_failing_target_is_retried_then_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = template(dir.path(), "");
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    let engine = LocalEngine::start(
        EngineConfig {
            template: Some(path),
            time_scale: 0.0,
            ..config(&dir.path().join("state"))
        }
        .with_lambda(
            "NotifyFunction",
            handler(move |_v: Value| {
                let c = c.clone();
                async move {
                    *c.lock().unwrap() += 1;
                    Err(LambdaError::new("Stepops.Transient", "SNS is down"))
                }
            }),
        )
        .with_lambda(
            "WorkFunction",
            handler(|_v: Value| async move { Err(LambdaError::new("Stepops.Internal", "x")) }),
        ),
    )
    .await
    .unwrap();
    let arn = engine
        .start_execution("Machine", &json!({"fail": true}), None)
        .unwrap();
    engine.wait(&arn).await.unwrap();
    engine.deliveries_settled().await;
    assert_eq!(
        *calls.lock().unwrap(),
        3,
        "Lambda retries an async invocation twice"
    );
    let d: Vec<_> = engine
        .deliveries()
        .into_iter()
        .filter(|d| d.rule == "NotifyFunction.Ended")
        .collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].attempts, 3);
    assert_eq!(d[0].result.as_ref().unwrap_err().0, "Stepops.Transient");
    // AuditFunction has no handler: recorded as not found, not retried.
    let audit: Vec<_> = engine
        .deliveries()
        .into_iter()
        .filter(|d| d.rule == "EveryChange")
        .collect();
    assert!(audit.iter().all(|d| d.attempts == 1
        && d.result.as_ref().unwrap_err().0 == "Lambda.ResourceNotFoundException"));
    engine.shutdown().await;
}

/// A rule whose target is a state machine (a SAM state machine's `EventBridgeRule`, and an
/// `AWS::Events::Rule` whose target is `!Ref` of one) starts it with the event as input; the
/// delivery lasts until that execution ends.
#[tokio::test]
async fn a_state_machine_target_is_started_with_the_event() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sm")).unwrap();
    std::fs::write(
        dir.path().join("sm/f.asl.json"),
        r#"{"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": true}}}"#,
    )
    .unwrap();
    let extra = r#"  Follower:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: events-follower
      DefinitionUri: sm/f.asl.json
      Events:
        OnFailure:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.states]
              detail-type: [Step Functions Execution Status Change]
              detail:
                status: [FAILED]
                stateMachineArn: [!Ref Machine]
  StartsFollower:
    Type: AWS::Events::Rule
    Properties:
      EventPattern:
        source: [aws.states]
        detail:
          status: [ABORTED]
          stateMachineArn: [!Ref Machine]
      Targets: [{Id: f, Arn: !Ref Follower}]
"#;
    let path = template(dir.path(), extra);
    let t = load_template(&path, &TemplateOptions::default()).unwrap();
    let rule = t
        .event_rules
        .iter()
        .find(|r| r.id == "Follower.OnFailure")
        .unwrap();
    assert_eq!(rule.targets[0].kind, TargetKind::StateMachine);
    let engine = LocalEngine::start(
        EngineConfig {
            template: Some(path),
            time_scale: 0.01,
            ..config(&dir.path().join("state"))
        }
        .with_lambda("NotifyFunction", recorder(&Seen::default()))
        .with_lambda("AuditFunction", recorder(&Seen::default()))
        .with_lambda(
            "WorkFunction",
            handler(|_v: Value| async move { Err(LambdaError::new("Stepops.Internal", "x")) }),
        ),
    )
    .await
    .unwrap();
    let bad = engine
        .start_execution("Machine", &json!({"fail": true}), Some("bad"))
        .unwrap();
    engine.wait(&bad).await.unwrap();
    let stopped = engine
        .start_execution("Machine", &json!({"wait": true}), Some("stopped"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    engine.stop_execution(&stopped, None, None).unwrap();
    engine.wait(&stopped).await.unwrap();
    engine.deliveries_settled().await;
    for (rule, name) in [("Follower.OnFailure", "bad"), ("StartsFollower", "stopped")] {
        let d: Vec<_> = engine
            .deliveries()
            .into_iter()
            .filter(|d| d.rule == rule)
            .collect();
        assert_eq!(d.len(), 1, "{rule}: {d:?}");
        assert_eq!(d[0].target, "Follower");
        let started = d[0].result.as_ref().unwrap();
        assert_eq!(started["status"], "SUCCEEDED", "settled means ended");
        let arn = started["executionArn"].as_str().unwrap();
        assert!(arn.contains(":execution:events-follower:"), "{arn}");
        // Its input (the Pass echoes it) is the status-change event.
        let output = engine.describe(arn).unwrap().output.unwrap();
        assert_eq!(output["detail"]["name"], name);
        assert_eq!(
            output["detail-type"],
            "Step Functions Execution Status Change"
        );
    }
    engine.shutdown().await;
}
