//! `stepops local exec` and `stepops local serve` as a user runs them: the real binary as a child
//! process.
//!
//! * `exec`: one JSON object on stdout (`{"status":"SUCCEEDED","output":…}` exit 0,
//!   `{"status":"FAILED","error":…,"cause":…}` exit 1), and a definition using a feature the
//!   engine does not implement (JSONata) refused when it loads, with a message saying so.
//! * `serve` killed with SIGKILL while one execution sits in a Wait state and another in an
//!   activity task a worker holds; a new `serve` on the same state dir finishes both (status and
//!   output through `aws-sdk-sfn`), the killed engine's task token answering `TaskTimedOut`.
#![allow(unsafe_code)] // libc: signals to the processes under test (kill).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stepops_testkit::process::isolated_command;

/// The `stepops` binary with no AWS or STEPOPS settings from the caller's environment.
fn stepops(home: &Path) -> Command {
    isolated_command(env!("CARGO_BIN_EXE_stepops"), home)
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

fn exec(dir: &Path, definition: &Path, args: &[&str]) -> Output {
    stepops(dir)
        .args(["local", "exec"])
        .arg(definition)
        .args(args)
        .output()
        .expect("run stepops local exec")
}

/// stdout must be exactly one JSON object on one line.
fn one_json_object(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must be one line:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(lines[0]).expect("stdout is JSON");
    assert!(v.is_object(), "{v}");
    v
}

#[test]
fn exec_prints_one_json_object_and_exits_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // SUCCEEDED: the output, exit 0; the input inline or from a file.
    let ok = write(
        dir,
        "ok.asl.json",
        &json!({"StartAt": "Add", "States": {
            "Add": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"},
                    "ResultPath": "$.result", "Next": "Big"},
            "Big": {"Type": "Choice", "Default": "Done", "Choices": [
                {"Variable": "$.result.sum", "NumericGreaterThan": 10, "Next": "Wait"}]},
            "Wait": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
            "Done": {"Type": "Succeed"}}}),
    );
    let out = exec(
        dir,
        &ok,
        &["--input", r#"{"a": 2, "b": 40}"#, "--time-scale", "0"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        one_json_object(&out),
        json!({"status": "SUCCEEDED", "output": {"a": 2, "b": 40, "result": {"sum": 42}}})
    );
    let input = write(dir, "input.json", &json!({"a": 1, "b": 2}));
    let out = exec(
        dir,
        &ok,
        &[
            "--input",
            &format!("@{}", input.display()),
            "--time-scale",
            "0",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(one_json_object(&out)["output"]["result"], json!({"sum": 3}));

    // FAILED by a Fail state: error and cause, exit 1.
    let fail = write(
        dir,
        "fail.asl.json",
        &json!({"StartAt": "Check", "States": {
            "Check": {"Type": "Choice", "Default": "Refuse", "Choices": [
                {"Variable": "$.environment", "StringEquals": "dev", "Next": "Fine"}]},
            "Fine": {"Type": "Succeed"},
            "Refuse": {"Type": "Fail", "Error": "Stepops.WrongEnvironment",
                       "CausePath": "States.Format('environment {} is not dev', $.environment)"}}}),
    );
    let out = exec(dir, &fail, &["--input", r#"{"environment": "prod"}"#]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        one_json_object(&out),
        json!({"status": "FAILED", "error": "Stepops.WrongEnvironment",
               "cause": "environment prod is not dev"})
    );

    // FAILED by a runtime error (a path that matches nothing): States.Runtime with AWS's cause.
    let out = exec(dir, &fail, &["--input", r#"{"other": 1}"#]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = one_json_object(&out);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "States.Runtime", "{v}");
    assert!(
        v["cause"]
            .as_str()
            .unwrap()
            .contains("An error occurred while executing the state 'Check'"),
        "{v}"
    );
}

#[test]
fn exec_refuses_an_unsupported_feature_when_the_definition_loads() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let jsonata = write(
        dir,
        "jsonata.asl.json",
        &json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
            "P": {"Type": "Pass", "Output": "{% $states.input.a %}", "End": true}}}),
    );
    let out = exec(dir, &jsonata, &["--input", r#"{"a": 1}"#]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "invalid input exits 2: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "nothing ran, so no result: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("error: Stepops.InvalidInput: ")
            && stderr.contains("unsupported in the local engine")
            && stderr.contains("JSONata"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("unsupported in the local engine").count(),
        1,
        "said once: {stderr}"
    );
    // A state-level JSONata field is refused naming the state.
    let state_level = write(
        dir,
        "state.asl.json",
        &json!({"StartAt": "P", "States": {
            "P": {"Type": "Pass", "QueryLanguage": "JSONata", "End": true}}}),
    );
    let out = exec(dir, &state_level, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "invalid input exits 2: {out:?}");
    assert!(
        stderr.contains("unsupported in the local engine") && stderr.contains("'P'"),
        "{stderr}"
    );
}

struct Serve {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// `stepops local serve --port 0 --state-dir STATE`; waits for the endpoint line.
async fn serve(dir: &Path, state: &Path, n: usize) -> Serve {
    let out = dir.join(format!("serve-{n}.out"));
    let log = dir.join(format!("serve-{n}.log"));
    let mut child = stepops(dir)
        .args(["local", "serve", "--port", "0"])
        .arg("--state-dir")
        .arg(state)
        .env("STEPOPS_LOG", "debug")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start stepops local serve");
    let started = Instant::now();
    loop {
        if let Some(line) = read(&out).lines().next()
            && line.starts_with("http://127.0.0.1:")
        {
            return Serve {
                child,
                endpoint: line.to_owned(),
                log,
            };
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("serve exited {status:?}\n{}", read(&log));
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve printed no endpoint:\n{}",
            read(&log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn history_types(sfn: &aws_sdk_sfn::Client, execution: &str) -> Vec<String> {
    sfn.get_execution_history()
        .execution_arn(execution)
        .max_results(1000)
        .send()
        .await
        .unwrap()
        .events()
        .iter()
        .map(|e| e.r#type().as_str().to_owned())
        .collect()
}

async fn wait_for_event(sfn: &aws_sdk_sfn::Client, execution: &str, event: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !history_types(sfn, execution)
        .await
        .iter()
        .any(|t| t == event)
    {
        assert!(
            Instant::now() < deadline,
            "{execution} never recorded {event}:\n{}",
            read(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_with_sigkill_resumes_its_executions_when_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let state = dir.join("state");
    let mut first = serve(dir, &state, 1).await;
    let sfn = stepops_runner::local_sfn_client(&first.endpoint);
    let activity = sfn
        .create_activity()
        .name("work")
        .send()
        .await
        .unwrap()
        .activity_arn()
        .to_owned();
    let definition = json!({"StartAt": "Before", "States": {
        "Before": {"Type": "Pass", "Result": "before", "ResultPath": "$.before", "Next": "Which"},
        "Which": {"Type": "Choice", "Default": "Work",
                  "Choices": [{"Variable": "$.wait", "BooleanEquals": true, "Next": "Wait"}]},
        "Wait": {"Type": "Wait", "Seconds": 4, "Next": "Work"},
        "Work": {"Type": "Task", "Resource": activity, "ResultPath": "$.work", "Next": "After"},
        "After": {"Type": "Pass", "Result": "after", "ResultPath": "$.after", "End": true}}});
    let machine = sfn
        .create_state_machine()
        .name("durable")
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/test")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned();
    let start = |name: &'static str, input: Value| {
        let sfn = sfn.clone();
        let machine = machine.clone();
        async move {
            sfn.start_execution()
                .state_machine_arn(machine)
                .name(name)
                .input(input.to_string())
                .send()
                .await
                .unwrap()
                .execution_arn()
                .to_owned()
        }
    };
    // One execution in its Wait state, one in the activity task a worker has taken.
    let in_wait = start("in-wait", json!({"id": 1, "wait": true})).await;
    let in_task = start("in-task", json!({"id": 2, "wait": false})).await;
    let taken = sfn
        .get_activity_task()
        .activity_arn(&activity)
        .send()
        .await
        .unwrap();
    let old_token = taken.task_token().expect("a task").to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(taken.input().unwrap()).unwrap()["id"],
        2
    );
    wait_for_event(&sfn, &in_task, "ActivityStarted", &first.log).await;
    wait_for_event(&sfn, &in_wait, "WaitStateEntered", &first.log).await;

    // kill -9: no shutdown of any kind.
    first.child.kill().unwrap();
    let status = first.child.wait().unwrap();
    assert!(!status.success(), "{status:?}");

    let mut second = serve(dir, &state, 2).await;
    assert!(
        read(&second.log).contains("resum"),
        "the new engine says it resumes executions:\n{}",
        read(&second.log)
    );
    let sfn = stepops_runner::local_sfn_client(&second.endpoint);
    for arn in [&in_wait, &in_task] {
        let d = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .unwrap();
        assert_eq!(d.status().as_str(), "RUNNING", "{arn}");
    }
    // The killed engine's token is refused as timed out, so its worker would stop.
    let err = sfn
        .send_task_success()
        .task_token(&old_token)
        .output("{}")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_task_timed_out(), "{err:?}");
    // The task in flight is handed out again, and the waiting execution's once its Wait ends.
    let mut answered = Vec::new();
    while answered.len() < 2 {
        let t = sfn
            .get_activity_task()
            .activity_arn(&activity)
            .send()
            .await
            .unwrap();
        let Some(token) = t.task_token().filter(|t| !t.is_empty()) else {
            continue;
        };
        let input: Value = serde_json::from_str(t.input().unwrap()).unwrap();
        sfn.send_task_success()
            .task_token(token)
            .output(json!({"worked": input["id"]}).to_string())
            .send()
            .await
            .unwrap();
        answered.push(input["id"].as_i64().unwrap());
    }
    answered.sort();
    assert_eq!(answered, [1, 2]);
    for (arn, id, wait) in [(&in_wait, 1, true), (&in_task, 2, false)] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let d = loop {
            let d = sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .unwrap();
            if d.status().as_str() != "RUNNING" {
                break d;
            }
            assert!(Instant::now() < deadline, "{arn} still running");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            d.status().as_str(),
            "SUCCEEDED",
            "{:?} {:?}\n{}",
            d.error(),
            d.cause(),
            read(&second.log)
        );
        let output: Value = serde_json::from_str(d.output().unwrap()).unwrap();
        assert_eq!(
            output,
            json!({"id": id, "wait": wait, "before": "before", "work": {"worked": id},
                   "after": "after"})
        );
        let types = history_types(&sfn, arn).await;
        assert_eq!(
            types.iter().filter(|t| *t == "ExecutionStarted").count(),
            1,
            "resumed, not started over: {types:?}"
        );
        assert_eq!(
            types.iter().filter(|t| *t == "PassStateEntered").count(),
            2,
            "Before once, After once: {types:?}"
        );
    }

    // SIGTERM stops it cleanly.
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(second.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = second.child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            second.child.kill().ok();
            panic!("serve did not stop on SIGTERM:\n{}", read(&second.log));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}\n{}", read(&second.log));
}
