//! Unit tests of `config.rs`.

use super::*;

const ARN: &str = "arn:aws:states:eu-west-1:123456789012:activity:stepops-dev-migrate";
/// Local mode: no environment nor allow-list required.
const LOCAL: &str = "endpoint: http://127.0.0.1:8083\n";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<RunnerConfig, ConfigError> {
    let mut raw = RawConfig::from_yaml(yaml, "file runner.yaml")?;
    raw.apply_env(env(vars))?;
    raw.build()
}

#[test]
fn other_commands_variables_are_ignored_and_old_spellings_warned() {
    let base = format!("activities: [{ARN}]\nconcurrency: 8\n{LOCAL}");
    // Variables of validate-input, stepops local/start/admin, the notify function, tests…
    let others = [
        ("STEPOPS_LOCAL_PORT", "8083"),
        ("STEPOPS_LOCAL_STATE_DIR", "/tmp/x"),
        (
            "STEPOPS_STATE_MACHINE_ARN",
            "arn:aws:states:eu-west-1:1:stateMachine:m",
        ),
        ("STEPOPS_ADMIN_TOKEN_DEV", "not-a-key-and-secret"),
        ("STEPOPS_ADMIN_TOKEN_FILE", "/run/token"),
        ("STEPOPS_SYNAPSE_ENDPOINT", "https://repo"),
        ("STEPOPS_TOPIC_ARN", "arn:aws:sns:x"),
        ("STEPOPS_SOURCE", "sqlite:a.db"),
        ("STEPOPS_TEST_RUNNER_BIN", "/bin/x"),
        ("STEPOPS_LOG", "debug"),
    ];
    let mut raw = RawConfig::from_yaml(&base, "file runner.yaml").unwrap();
    let warnings = raw.apply_env(env(&others)).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(raw.build().unwrap().concurrency, 8);

    // A runner key without the prefix is not applied, and said so (without its value).
    let mut raw = RawConfig::from_yaml(&base, "file runner.yaml").unwrap();
    let warnings = raw
        .apply_env(env(&[
            ("STEPOPS_CONCURRENCY", "2"),
            ("STEPOPS_ENVIRONMENT", "prod"),
            // validate-input's allow-list: the runner has its own key of that name.
            ("STEPOPS_ALLOWED_TARGETS", "secret:stepops/prod/*"),
        ]))
        .unwrap();
    let c = raw.build().unwrap();
    assert_eq!((c.concurrency, c.environment), (8, None));
    assert!(c.allowed_targets.is_none());
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[1].starts_with("STEPOPS_CONCURRENCY is not read by stepops-runner")
            && warnings[1].ends_with("set STEPOPS_RUNNER_CONCURRENCY"),
        "{}",
        warnings[1]
    );
    assert!(warnings.iter().all(|w| !w.contains("prod")));
}

#[test]
fn a_misspelt_runner_key_fails_naming_the_nearest() {
    let base = format!("activities: [{ARN}]");
    for (var, says) in [
        (
            "STEPOPS_RUNNER_CONCURENCY",
            "did you mean STEPOPS_RUNNER_CONCURRENCY?",
        ),
        (
            "STEPOPS_RUNNER_HEARTBEAT",
            "did you mean STEPOPS_RUNNER_HEARTBEAT_SECONDS?",
        ),
        (
            "STEPOPS_RUNNER_DRAIN_TIMEOUT",
            "did you mean STEPOPS_RUNNER_DRAIN_TIMEOUT_SECONDS?",
        ),
        (
            "STEPOPS_RUNNER_ACTIVITY",
            "did you mean STEPOPS_RUNNER_ACTIVITIES?",
        ),
        ("STEPOPS_RUNNER_CONFIG", "STEPOPS_CONFIG or --config"),
        (
            "STEPOPS_RUNNER_WHATEVER",
            "must name one of: activities, concurrency",
        ),
    ] {
        let e = load(&base, &[(var, "1")]).unwrap_err().to_string();
        let key = var.strip_prefix("STEPOPS_RUNNER_").unwrap().to_lowercase();
        assert!(
            e.starts_with(&format!(
                "configuration key `{key}` (environment {var}): unknown key"
            )),
            "{e}"
        );
        assert!(e.contains(says), "{var}: {e}");
    }
}

#[test]
fn the_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("runner.example.yaml");
    let c = RawConfig::from_file(&path).unwrap().build().unwrap();
    assert_eq!(c.environment, Some(Environment::Dev));
    assert_eq!(c.endpoint, None, "the example is an AWS runner");
    assert!(c.allowed_targets.is_some());
    assert_eq!(c.concurrency, 4);
}

#[test]
fn defaults_and_file_values() {
    let c = load(
        &format!("activities: [{ARN}]\nconcurrency: 8\n{LOCAL}"),
        &[],
    )
    .unwrap();
    assert_eq!(c.activities, vec![ARN.to_string()]);
    assert_eq!(c.concurrency, 8);
    assert_eq!(c.heartbeat_interval, Duration::from_secs(20));
    assert_eq!(c.drain_timeout, Duration::from_secs(120));
    assert_eq!(c.poll_read_timeout, Duration::from_secs(70));
    assert_eq!(c.answer_timeout, Duration::from_secs(10));
    assert_eq!((c.environment, &c.allowed_targets), (None, &None));
    assert!(!c.worker_name.is_empty());
    assert_eq!(
        c.job_log_group, None,
        "job output is not shipped unless asked"
    );
}

#[test]
fn a_job_log_group_must_be_a_cloudwatch_group_name() {
    let c = load(
        &format!(
            "activities: [{ARN}]
job_log_group: /stepops/dev/jobs
{LOCAL}"
        ),
        &[],
    )
    .unwrap();
    assert_eq!(c.job_log_group.as_deref(), Some("/stepops/dev/jobs"));
    let e = load(
        &format!(
            "activities: [{ARN}]
{LOCAL}"
        ),
        &[("STEPOPS_RUNNER_JOB_LOG_GROUP", "jobs:dev")],
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "configuration key `job_log_group` (environment STEPOPS_RUNNER_JOB_LOG_GROUP): \
             `jobs:dev` is not a CloudWatch Logs group name"
        ),
        "{e}"
    );
}

#[test]
fn environment_overrides_are_parsed_as_yaml() {
    let other = ARN.replace("migrate", "other");
    let c = load(
        &format!("activities: [{ARN}]\nconcurrency: 8\n"),
        &[
            ("STEPOPS_RUNNER_CONCURRENCY", "4"),
            ("STEPOPS_RUNNER_ACTIVITIES", &format!("[{ARN}, {other}]")),
            ("STEPOPS_RUNNER_ENDPOINT", "http://127.0.0.1:8083"),
            ("STEPOPS_LOG", "debug"),
            ("HOME", "/root"),
        ],
    )
    .unwrap();
    assert_eq!(c.concurrency, 4);
    assert_eq!(c.activities, vec![ARN.to_string(), other]);
    assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8083"));
}

#[test]
fn an_aws_runner_needs_its_environment_and_allow_list() {
    let aws = format!("activities: [{ARN}]\n");
    let ok = load(
        &format!("{aws}environment: dev\nallowed_targets: [secret:stepops/dev/*, parameter:/stepops/dev/db]\n"),
        &[],
    )
    .unwrap();
    let stack = ok.allowed_targets.unwrap();
    assert_eq!(stack.environment, Environment::Dev);
    assert_eq!(stack.allowed_targets.len(), 2);
    // The template's user data writes one string; the environment variable is YAML too.
    let env = load(
        &format!("{aws}environment: prod\n"),
        &[(
            "STEPOPS_RUNNER_ALLOWED_TARGETS",
            "secret:stepops/prod/source-db,secret:stepops/prod/dest-db",
        )],
    )
    .unwrap();
    assert_eq!(env.allowed_targets.unwrap().allowed_targets.len(), 2);
    for (yaml, says) in [
        (
            aws.clone(),
            "`environment` (missing): required when the runner talks to AWS",
        ),
        (
            format!("{aws}environment: dev\n"),
            "`allowed_targets` (missing): required when the runner talks to AWS",
        ),
        (
            format!("{aws}environment: dev\nallowed_targets: [url:sqlite:*]\n"),
            "url targets are refused when the runner talks to AWS",
        ),
        (
            format!("{aws}environment: dev\nallowed_targets: [vault:x]\n"),
            "the list entry `vault:x` is not KIND:NAME",
        ),
        (
            format!("{aws}environment: dev\nallowed_targets: []\n"),
            "the list is empty",
        ),
        (
            format!("{aws}environment: staging\nallowed_targets: [secret:a]\n"),
            "`staging` is not an environment",
        ),
        (
            format!("{aws}{LOCAL}allowed_targets: [url:sqlite:*]\n"),
            "needs `environment`",
        ),
        (
            format!("{aws}{LOCAL}answer_timeout_seconds: 0\n"),
            "expected 1 to 60 seconds",
        ),
    ] {
        let e = load(&yaml, &[]).unwrap_err().to_string();
        assert!(e.contains(says), "{yaml}: {e}");
    }
    // Locally, url entries are what a run names.
    let local = load(
        &format!("{aws}{LOCAL}environment: dev\nallowed_targets: url:sqlite:*\n"),
        &[],
    )
    .unwrap();
    assert!(local.allowed_targets.is_some());
}

#[test]
fn errors_name_the_key_and_origin() {
    let e = load(&format!("activities: [{ARN}]\nconcurency: 3\n{LOCAL}"), &[]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("configuration key `concurency` (file runner.yaml): unknown key"),
        "{e}"
    );
    let e = load(
        &format!("activities: [{ARN}]"),
        &[("STEPOPS_RUNNER_CONCURRENCY", "many")],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("configuration key `concurrency` (environment STEPOPS_RUNNER_CONCURRENCY): expected a whole number"),
        "{e}"
    );
    let e = load(
        &format!("activities: [{ARN}]"),
        &[("STEPOPS_RUNNER_CONCURRENCY", "0")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    let e = load("concurrency: 2", &[]).unwrap_err();
    assert!(
        e.to_string().contains("`activities` (missing): required"),
        "{e}"
    );
    let e = load("activities: [nope]", &[]).unwrap_err();
    assert!(e.to_string().contains("not an activity ARN"), "{e}");
    let e = load(
        &format!("activities: [{ARN}]"),
        &[("STEPOPS_RUNNER_FOO", "1")],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("configuration key `foo` (environment STEPOPS_RUNNER_FOO): unknown key"),
        "{e}"
    );
    let e = load(
        &format!("activities: [{ARN}]\npoll_read_timeout_seconds: 30"),
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("expected 65 to 600"), "{e}");
    let e = load("- a\n- b\n", &[]).unwrap_err();
    assert!(e.to_string().contains("expected a mapping"), "{e}");
    let e = load(&format!("activities: [{ARN}]\nendpoint: localhost:1"), &[]).unwrap_err();
    assert!(e.to_string().contains("`endpoint`"), "{e}");
    assert_eq!(e.error_name(), ErrorName::InvalidInput);
}
