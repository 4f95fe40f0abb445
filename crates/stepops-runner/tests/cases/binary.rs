//! The real `stepops-runner` binary as a child process: SIGTERM drain, configuration errors,
//! and no secret value in its logs.

use super::ARN;
use super::common::{Answer, FakeSfn};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stepops_testkit::process::isolated_command;

pub(crate) fn runner(dir: &Path, config: &str, envs: &[(&str, &str)]) -> Command {
    let cfg = dir.join("runner.yaml");
    std::fs::write(&cfg, config).unwrap();
    let mut cmd = isolated_command(env!("CARGO_BIN_EXE_stepops-runner"), dir);
    cmd.arg("--config").arg(&cfg);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("stderr.log")).unwrap(),
        ));
    cmd
}

pub(crate) fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

pub(crate) async fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the runner did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_drains_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSfn::start(Duration::from_secs(60)).await;
    let config = format!(
        "activities: [{ARN}]\nendpoint: {}\nconcurrency: 2\nheartbeat_seconds: 1\ndrain_timeout_seconds: 2\n",
        fake.endpoint()
    );
    let mut child = runner(dir.path(), &config, &[("STEPOPS_LOG", "info")])
        .spawn()
        .unwrap();
    let short = fake.push(ARN, json!({"step": "ping", "args": {"sleepMs": 1500}}));
    let long = fake.push(ARN, json!({"step": "ping", "args": {"sleepMs": 600000}}));
    fake.wait_delivered(&short, Duration::from_secs(20)).await;
    fake.wait_delivered(&long, Duration::from_secs(20)).await;
    sigterm(&child);
    let asked = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(15)).await;
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "drain took {:?}",
        asked.elapsed()
    );
    assert!(matches!(fake.answer(&short), Some(Answer::Success(v)) if v["pong"] == json!(true)));
    match fake.answer(&long) {
        Some(Answer::Failure { error, cause }) => {
            assert_eq!(error, "Stepops.Transient");
            assert!(cause.contains("runner shutting down"), "{cause}");
        }
        other => panic!("expected the long task handed back, got {other:?}\n{log}"),
    }
    assert!(!fake.heartbeats(&long).is_empty(), "heartbeats were sent");
    // Not a terminal: JSON lines.
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string());
    }
    assert!(log.contains("SIGTERM"));
    // After the drain no new task is taken.
    let late = fake.push(ARN, json!({"step": "ping"}));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!fake.delivered(&late));
}

#[tokio::test]
async fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // Local mode (an endpoint): no environment nor allow-list needed.
    let good = format!("activities: [{ARN}]\nendpoint: http://127.0.0.1:1\n");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        (
            &good,
            vec![("STEPOPS_RUNNER_CONCURRENCY", "lots")],
            "configuration key `concurrency` (environment STEPOPS_RUNNER_CONCURRENCY): expected a whole number",
        ),
        (
            &good,
            vec![("STEPOPS_RUNNER_CONCURENCY", "4")],
            "configuration key `concurency` (environment STEPOPS_RUNNER_CONCURENCY): unknown key (did you mean STEPOPS_RUNNER_CONCURRENCY?)",
        ),
        (
            "activities: [x]\nconcurrency: 2\n",
            vec![],
            "configuration key `activities` (file ",
        ),
        (
            &format!("{good}heartbeat: 10\n"),
            vec![],
            "configuration key `heartbeat` (file ",
        ),
    ];
    for (config, envs, expected) in cases {
        let out = runner(dir.path(), config, &envs)
            .arg("--check-config")
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let out = runner(
        dir.path(),
        &good,
        &[
            ("STEPOPS_RUNNER_CONCURRENCY", "7"),
            ("STEPOPS_RUNNER_ACTIVITIES", &format!("[{ARN}, {ARN}2]")),
            // Other stepops commands' variables in the same environment are no concern of the
            // runner's; a runner key without the prefix is ignored with a warning.
            ("STEPOPS_ALLOWED_TARGETS", "secret:stepops/dev/*"),
            ("STEPOPS_LOCAL_PORT", "8083"),
            (
                "STEPOPS_STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:1:stateMachine:m",
            ),
            ("STEPOPS_ADMIN_TOKEN_DEV", "tok-Hidden123"),
            ("STEPOPS_ENVIRONMENT", "prod"),
        ],
    )
    .arg("--check-config")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("concurrency: 7"), "{stdout}");
    assert!(stdout.contains(&format!("{ARN}2")), "{stdout}");
    assert!(stdout.contains("environment: None"), "{stdout}");
    assert!(
        stderr.contains("STEPOPS_ENVIRONMENT is not read by stepops-runner")
            && stderr.contains("STEPOPS_RUNNER_ENVIRONMENT"),
        "{stderr}"
    );
    assert!(!stderr.contains("tok-Hidden123") && !stdout.contains("tok-Hidden123"));
}

#[tokio::test]
async fn secret_values_never_reach_the_logs() {
    const PASSWORD: &str = "Sup3rSecretPw";
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSfn::start(Duration::from_secs(60)).await;
    // Nothing listens on port 1: the engine fails to connect with the URL in hand.
    fake.set_secret(
        "stepops/dev/source-db",
        &format!("postgres://app:{PASSWORD}@127.0.0.1:1/src"),
    );
    fake.set_secret(
        "stepops/dev/dest-db",
        &json!({"engine": "postgres", "host": "127.0.0.1", "port": 1, "username": "app",
                "password": PASSWORD, "dbname": "dst", "sslmode": "prefer"})
        .to_string(),
    );
    let config = format!(
        "activities: [{ARN}]\nendpoint: {}\nobject_store_root: {}\n",
        fake.endpoint(),
        dir.path().join("s3").display()
    );
    let mut child = runner(
        dir.path(),
        &config,
        &[
            ("STEPOPS_LOG", "trace"),
            ("AWS_ENDPOINT_URL", &fake.endpoint()),
        ],
    )
    .spawn()
    .unwrap();
    let args = json!({"environment": "dev", "source": {"secret": "stepops/dev/source-db"},
                      "dest": {"secret": "stepops/dev/dest-db"}, "config": {},
                      "round": 1, "maxRounds": 2});
    let t = fake.push(ARN, json!({"step": "verify", "args": args}));
    let answer = fake.wait_answer(&t, Duration::from_secs(60)).await;
    let missing = fake.push(
        ARN,
        json!({"step": "verify", "args": {"environment": "dev", "source": {"secret": "nope"},
               "dest": {"secret": "stepops/dev/dest-db"}, "round": 1, "maxRounds": 2}}),
    );
    let missing = fake.wait_answer(&missing, Duration::from_secs(60)).await;
    sigterm(&child);
    assert!(
        wait_exit(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    let Answer::Failure { error, cause } = &answer else {
        panic!("expected a failure, got {answer:?}");
    };
    assert_eq!(error, "Stepops.Transient", "{cause}");
    assert!(!cause.contains(PASSWORD), "{cause}");
    assert!(
        matches!(&missing, Answer::Failure { error, .. } if error == "Stepops.NotFound"),
        "{missing:?}"
    );
    assert!(
        log.contains("GetSecretValue") || log.contains("secretsmanager"),
        "trace logs were captured"
    );
    assert!(!log.contains(PASSWORD), "a secret value reached the logs");
}
