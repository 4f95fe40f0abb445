//! The runner's user data lives twice: in template.yaml (what CloudFormation deploys) and in
//! deploy/ (what people read and edit). They must not drift apart. Also: systemd waits longer
//! than the runner drains, the template's permissions the pipeline relies on, and the rule that
//! notifies failures as the local engine reads it.

use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The literal block of `RunnerLaunchTemplate`'s `UserData`, de-indented (it ends where its
/// `!Sub` variables, `AllowedTargets`, begin).
fn template_user_data() -> String {
    let t = read("template.yaml");
    let start = t
        .find("              #!/bin/bash\n")
        .expect("template.yaml has the runner user data");
    let end = start
        + t[start..]
            .find("\n            - AllowedTargets: ")
            .expect("user data ends where its substitutions begin");
    t[start..end]
        .lines()
        .map(|l| l.strip_prefix("              ").unwrap_or(l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn without_comments(text: &str, drop: &[&str]) -> String {
    text.lines()
        .filter(|l| !drop.iter().any(|d| l.starts_with(d)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn deploy_user_data_is_the_templates_verbatim() {
    let in_template = template_user_data();
    let in_deploy = read("deploy/user-data.sh");
    let extra = ["# This is the user data", "# the ${...} placeholders"];
    assert_eq!(
        without_comments(&in_deploy, &extra),
        without_comments(&in_template, &[])
    );
}

#[test]
fn the_systemd_unit_is_the_one_user_data_installs() {
    let ud = template_user_data();
    let start = ud.find("<<'UNIT'\n").unwrap() + "<<'UNIT'\n".len();
    let end = start + ud[start..].find("\nUNIT\n").unwrap();
    let unit = &ud[start..end];
    let file = read("deploy/stepops-runner.service");
    assert_eq!(without_comments(&file, &["#"]), unit);
    for needed in [
        "Restart=always",
        "KillSignal=SIGTERM",
        "User=stepops",
        "ExecStart=/opt/stepops/bin/stepops-runner",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
}

#[test]
fn user_data_configures_the_runner_for_its_own_activity_and_environment() {
    let ud = template_user_data();
    for needed in [
        "activities: [\"${MigrateActivity}\"]",
        "environment: ${Environment}",
        // The runner checks every task's targets against the same list as validate-input.
        "allowed_targets: \"${AllowedTargets}\"",
        "aws s3 cp --region ${AWS::Region} \"s3://${ArtifactBucket}/${ArtifactKey}\"",
        "systemctl enable --now stepops-runner.service",
    ] {
        assert!(ud.contains(needed), "user data lacks {needed}");
    }
}

/// The local engine (`stepops-local`) reads template.yaml as `stepops demo` does: it must find
/// the migration machine, its activity and both functions, with every placeholder substituted.
#[test]
fn the_local_engine_loads_the_template_with_defaults_only() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let t = stepops_local::template::load_template(&path, &Default::default())
        .unwrap_or_else(|e| panic!("stepops-local cannot load template.yaml: {e}"));
    let sm = t
        .state_machines
        .iter()
        .find(|m| m.logical_id == "MigrateStateMachine")
        .expect("MigrateStateMachine");
    assert_eq!(sm.name, "stepops-dev-migrate");
    assert!(!sm.definition.contains("${"), "unsubstituted placeholder");
    let act = &t
        .activities
        .iter()
        .find(|a| a.logical_id == "MigrateActivity")
        .unwrap();
    assert_eq!(act.name, "stepops-dev-migrate");
    assert!(sm.definition.contains(&act.arn));
    // Failures are notified by the EventBridge rule on the machine's status changes, which the
    // local engine runs too.
    let rule = t
        .event_rules
        .iter()
        .find(|r| r.id == "NotifyFunction.MigrationEnded")
        .expect("the MigrationEnded rule");
    assert_eq!(rule.targets[0].logical_id, "NotifyFunction");
    assert_eq!(
        rule.pattern.values_at("detail.stateMachineArn"),
        Some(vec![serde_json::json!(sm.arn)])
    );
    assert_eq!(
        rule.pattern.values_at("detail.status"),
        Some(vec![
            serde_json::json!("FAILED"),
            serde_json::json!("TIMED_OUT"),
            serde_json::json!("ABORTED")
        ])
    );
    assert!(
        t.unemulated_rules
            .iter()
            .any(|u| u.id == "MigrateStateMachine.Weekly"),
        "{:?}",
        t.unemulated_rules
    );
    for (id, name) in [
        ("ValidateInputFunction", "stepops-dev-validate-input"),
        ("NotifyFunction", "stepops-dev-notify"),
    ] {
        let f = t.functions.iter().find(|f| f.logical_id == id).unwrap();
        assert_eq!(f.name, name);
        assert!(
            sm.definition.contains(&f.arn),
            "{id} is wired into the definition"
        );
    }
}

/// Between `start` and `end` (both excluded) in `text`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let a = text.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
    let b = a + text[a..].find(end).unwrap_or_else(|| panic!("no {end:?}"));
    &text[a..b]
}

/// systemd SIGKILLs a service still running TimeoutStopSec after SIGTERM: the runner's drain
/// (running tasks finish) plus handing back the rest (answers retried for up to about a minute)
/// must fit well inside it.
#[test]
fn systemd_waits_longer_than_the_runner_drains() {
    let ud = template_user_data();
    let unit = between(&ud, "<<'UNIT'\n", "\nUNIT\n");
    let stop: u64 = between(unit, "TimeoutStopSec=", "\n").parse().unwrap();
    let yaml = between(&ud, "<<'YAML'\n", "\nYAML\n")
        .replace(
            "${MigrateActivity}",
            "arn:aws:states:eu-west-1:123456789012:activity:a",
        )
        .replace("${RunnerConcurrency}", "8")
        .replace("${Environment}", "dev")
        .replace(
            "${AllowedTargets}",
            "secret:stepops/dev/source-db,secret:stepops/dev/dest-db",
        )
        .replace("${AWS::Region}", "eu-west-1");
    // A valid AWS-mode configuration: environment and allow-list given, no endpoint.
    let config = stepops_runner::RawConfig::from_yaml(&yaml, "user data")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(config.endpoint, None);
    assert_eq!(config.allowed_targets.unwrap().allowed_targets.len(), 2);
    let drain = config.drain_timeout.as_secs();
    assert!(
        drain + 60 <= stop,
        "TimeoutStopSec={stop} must be at least 60 s above drain_timeout_seconds={drain}"
    );
    // The unit in deploy/ says the same (checked verbatim above) and documents the relation.
    assert!(read("deploy/stepops-runner.service").contains("TimeoutStopSec (180)"));
}

/// template.yaml as a YAML tree (short-form tags kept as tagged values).
fn template() -> serde_norway::Value {
    serde_norway::from_str(&read("template.yaml")).expect("template.yaml is YAML")
}

/// A scalar or tagged scalar (`!Sub "…"`, `!Ref X`) as text; lists as their items' texts.
fn text(v: &serde_norway::Value) -> String {
    use serde_norway::Value as Y;
    match v {
        Y::String(s) => s.clone(),
        Y::Tagged(t) => text(&t.value),
        Y::Sequence(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        other => serde_norway::to_string(other).unwrap_or_default(),
    }
}

fn statements(policies: &serde_norway::Value) -> Vec<&serde_norway::Value> {
    let mut out = Vec::new();
    for p in policies.as_sequence().into_iter().flatten() {
        let list = p
            .get("Statement")
            .or_else(|| p.get("PolicyDocument").and_then(|d| d.get("Statement")));
        for s in list.and_then(|l| l.as_sequence()).into_iter().flatten() {
            out.push(s);
        }
    }
    out
}

fn statement<'a>(all: &[&'a serde_norway::Value], sid: &str) -> &'a serde_norway::Value {
    all.iter()
        .find(|s| s.get("Sid").map(text).as_deref() == Some(sid))
        .unwrap_or_else(|| panic!("no statement {sid}"))
}

#[test]
fn the_runner_may_read_copy_results_and_notify_may_read_the_migrations_history_only() {
    let t = template();
    let res = &t["Resources"];
    // verify reads the copy Map's ResultWriter files (results/EXECUTION/round-N/…).
    let runner = statements(&res["RunnerRole"]["Properties"]["Policies"]);
    let results = statement(&runner, "ReadCopyResults");
    assert_eq!(text(&results["Action"]), "s3:GetObject");
    assert_eq!(
        text(&results["Resource"]),
        "${ManifestBucket.Arn}/results/*"
    );
    let manifests = statement(&runner, "WriteAndReadManifests");
    assert_eq!(
        text(&manifests["Resource"]),
        "${ManifestBucket.Arn}/manifests/*"
    );
    for s in &runner {
        assert!(
            !text(&s["Action"]).contains("s3:PutObject")
                || text(&s["Resource"]).contains("/manifests/"),
            "the runner writes manifests only: {s:?}"
        );
    }

    // notify reads the failed execution's history: that machine's executions, nothing else.
    let notify = &res["NotifyFunction"]["Properties"];
    let history = statement(&statements(&notify["Policies"]), "ReadTheMigrationsHistory");
    assert_eq!(text(&history["Action"]), "states:GetExecutionHistory");
    let resource = text(&history["Resource"]);
    assert!(
        resource.contains(":execution:stepops-${Environment}${Suffix}-migrate:*"),
        "{resource}"
    );
    assert_eq!(
        text(&notify["Environment"]["Variables"]["STEPOPS_ENVIRONMENT"]),
        "Environment"
    );
    let rule = &notify["Events"]["MigrationEnded"];
    assert_eq!(text(&rule["Type"]), "EventBridgeRule");
    assert_eq!(
        text(&rule["Properties"]["Pattern"]["detail"]["stateMachineArn"]),
        "MigrateStateMachine"
    );
}

/// The "runner stopped polling" alarm fires when tasks were scheduled and none started, not
/// when busy runners start fewer than were scheduled.
#[test]
fn the_not_polling_alarm_means_no_task_started_while_work_was_scheduled() {
    let t = template();
    let metrics = &t["Resources"]["RunnerNotPollingAlarm"]["Properties"]["Metrics"];
    let returned: Vec<_> = metrics
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|m| m.get("ReturnData").and_then(|r| r.as_bool()) == Some(true))
        .collect();
    assert_eq!(returned.len(), 1);
    assert_eq!(
        text(&returned[0]["Expression"]),
        "IF(FILL(scheduled, 0) > 0 AND FILL(started, 0) == 0, 1, 0)"
    );
}

/// `sam deploy --parameter-overrides` replaces samconfig.toml's whole list, so the deploy docs
/// use deploy/sam-overrides.py: it prints samconfig's list with the given keys set, or writes
/// them into samconfig.toml (what upload-runner.sh ENV does with the artifact key).
#[test]
fn sam_overrides_keeps_samconfigs_parameters() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sam-overrides.py");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .output()
            .expect("python3 runs deploy/sam-overrides.py");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let merged = run(&[
        "dev",
        "ArtifactKey=stepops-runner/abc/stepops-runner",
        "Namespace=feature-x",
    ]);
    let pairs: Vec<&str> = merged.split_whitespace().collect();
    for needed in [
        "Environment=dev",
        "VpcId=vpc-REPLACE",
        "PrivateSubnetIds=subnet-REPLACE1,subnet-REPLACE2",
        "SourceSecretName=stepops/dev/source-db",
        "DestSecretName=stepops/dev/dest-db",
        "AdminSecretName=/synapse/dev/admin-pat",
        "ArtifactKey=stepops-runner/abc/stepops-runner",
        "Namespace=feature-x",
    ] {
        assert!(pairs.contains(&needed), "{needed} missing from {merged}");
    }
    assert_eq!(
        pairs
            .iter()
            .filter(|p| p.starts_with("ArtifactKey="))
            .count(),
        1
    );

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("samconfig.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samconfig.toml"),
        &copy,
    )
    .unwrap();
    let file = copy.to_str().unwrap();
    run(&[
        "--file",
        file,
        "--write",
        "prod",
        "ArtifactKey=k-1",
        "NotificationEmail=ops@example.org",
    ]);
    let prod = run(&["--file", file, "prod"]);
    assert!(prod.contains("ArtifactKey=k-1") && prod.contains("NotificationEmail=ops@example.org"));
    assert!(
        prod.contains("SourceSecretName=stepops/prod/source-db"),
        "{prod}"
    );
    let dev = run(&["--file", file, "dev"]);
    assert!(
        dev.contains("ArtifactKey=stepops-runner/latest/stepops-runner"),
        "dev untouched: {dev}"
    );
    // The written file still passes the dev/prod separation check.
    let check = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check-samconfig.py"))
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
