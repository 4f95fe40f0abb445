//! The runner's user data lives twice: in template.yaml (what CloudFormation deploys) and in
//! deploy/ (what people read and edit). They must not drift apart.

use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The literal block of `RunnerLaunchTemplate`'s `UserData`, de-indented.
fn template_user_data() -> String {
    let t = read("template.yaml");
    let start = t
        .find("              #!/bin/bash\n")
        .expect("template.yaml has the runner user data");
    let end = start
        + t[start..]
            .find("\n            - {}")
            .expect("user data ends");
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
