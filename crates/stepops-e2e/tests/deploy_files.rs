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
        "activities: [\"${MigrateActivity}\", \"${JobActivity}\"]",
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
    // Failures start the release machine (which notifies) through the EventBridge rule on the
    // machine's status changes, which the local engine runs too.
    let rule = t
        .event_rules
        .iter()
        .find(|r| r.id == "ReleaseStateMachine.MigrationEnded")
        .expect("the MigrationEnded rule");
    assert_eq!(rule.targets[0].logical_id, "ReleaseStateMachine");
    let release = t
        .state_machines
        .iter()
        .find(|m| m.logical_id == "ReleaseStateMachine")
        .unwrap();
    assert!(release.definition.contains(&act.arn));
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
        .replace(
            "${JobActivity}",
            "arn:aws:states:eu-west-1:123456789012:activity:j",
        )
        .replace("${RunnerConcurrency}", "8")
        .replace("${Environment}", "dev")
        .replace(
            "${AllowedTargets}",
            "secret:stepops/dev/source-db,secret:stepops/dev/dest-db",
        )
        .replace("${AWS::Region}", "eu-west-1")
        .replace("${JobLogGroup}", "/stepops/dev/jobs");
    // A valid AWS-mode configuration: environment and allow-list given, no endpoint.
    let config = stepops_runner::RawConfig::from_yaml(&yaml, "user data")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(config.endpoint, None);
    assert_eq!(config.allowed_targets.unwrap().allowed_targets.len(), 2);
    assert_eq!(config.job_log_group.as_deref(), Some("/stepops/dev/jobs"));
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
    // It writes manifests, ops jobs' start and result records, resumable chunks' journals (a
    // Synapse stack's job ids and backup keys) and runs' status records (what set-status put
    // read-only, for the release after a failure), each under its own prefix.
    for s in &runner {
        let resource = text(&s["Resource"]);
        assert!(
            !text(&s["Action"]).contains("s3:PutObject")
                || ["/manifests/*", "/jobs/*", "/chunks/*", "/status/*"]
                    .iter()
                    .any(|p| resource.ends_with(p)),
            "the runner writes manifests, job records, chunk journals and status records \
             only: {s:?}"
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
    // The migration's failures start the release machine, which invokes notify.
    let release = &res["ReleaseStateMachine"]["Properties"];
    let rule = &release["Events"]["MigrationEnded"];
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
        "AdminSecretName=stepops/dev/synapse-admin-pat",
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

// ------------------------------------------------------------------ what the stack grants
// The checks below read template.yaml through stepops-local's resolver (parameters, conditions,
// mappings and intrinsic functions evaluated as CloudFormation would) for each environment.

/// The template's resources resolved for `env` with the required parameters set (plus `extra`).
fn resolved(env: &str, extra: &[(&str, &str)]) -> std::collections::BTreeMap<String, Value> {
    let mut options = stepops_local::TemplateOptions::default();
    for (k, v) in [
        ("Environment", env.to_owned()),
        ("VpcId", "vpc-0123456789abcdef0".to_owned()),
        ("PrivateSubnetIds", "subnet-0a,subnet-0b".to_owned()),
        ("ArtifactBucket", "acme-stepops-artifacts".to_owned()),
        ("RunnerSha256", "ab".repeat(32)),
        ("SourceSecretName", format!("stepops/{env}/source-db")),
        ("DestSecretName", format!("stepops/{env}/dest-db")),
    ] {
        options.parameter_overrides.insert(k.into(), v);
    }
    for (k, v) in extra {
        options.parameter_overrides.insert((*k).into(), (*v).into());
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    stepops_local::resolve_resources(&path, &options)
        .unwrap_or_else(|e| panic!("template.yaml does not resolve for {env}: {e}"))
}

use serde_json::Value;

/// A JSON string or list of strings as a list.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// IAM's wildcard match: `*` any run of characters (`/` included), `?` one character.
fn iam_match(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('*') => (0..=v.len()).any(|i| go(&p[1..], &v[i..])),
            Some('?') => !v.is_empty() && go(&p[1..], &v[1..]),
            Some(c) => v.first() == Some(c) && go(&p[1..], &v[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

/// Every IAM role the stack creates, with all its policy statements: `AWS::IAM::Role`s
/// (inline policies and the stack's managed policies they attach) and the roles SAM generates
/// for functions and state machines (their `Policies`: statements, or the stack's managed
/// policies by Ref). SAM's own managed policies (logs, VPC access) grant no secret or
/// parameter read.
fn roles(res: &std::collections::BTreeMap<String, Value>) -> Vec<(String, Vec<Value>)> {
    let managed = |name: &str| -> Option<Vec<Value>> {
        let r = res.get(name)?;
        (r["Type"] == "AWS::IAM::ManagedPolicy")
            .then(|| {
                r["Properties"]["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
            })
            .flatten()
    };
    let mut out = Vec::new();
    for (id, r) in res {
        let props = &r["Properties"];
        let mut all = Vec::new();
        match r["Type"].as_str().unwrap_or("") {
            "AWS::IAM::Role" => {
                for p in props["Policies"].as_array().into_iter().flatten() {
                    all.extend(
                        p["PolicyDocument"]["Statement"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
                for arn in strings(&props["ManagedPolicyArns"]) {
                    all.extend(managed(&arn).unwrap_or_else(|| {
                        panic!("{id} attaches {arn}, not one of the stack's managed policies")
                    }));
                }
            }
            "AWS::Serverless::Function" | "AWS::Serverless::StateMachine" => {
                for p in props["Policies"].as_array().into_iter().flatten() {
                    match p {
                        Value::String(name) => all.extend(managed(name).unwrap_or_else(|| {
                            panic!("{id} attaches {name}, not one of the stack's managed policies")
                        })),
                        Value::Object(o) if o.contains_key("Statement") => {
                            all.extend(o["Statement"].as_array().cloned().unwrap_or_default())
                        }
                        // SAM policy templates (LambdaInvokePolicy): invoke one function.
                        Value::Object(o) => assert!(
                            o.keys().all(|k| k == "LambdaInvokePolicy"),
                            "{id}: unexpected policy {p}"
                        ),
                        other => panic!("{id}: unexpected policy {other}"),
                    }
                }
            }
            _ => continue,
        }
        out.push((id.clone(), all));
    }
    out
}

/// Whether `statement` (its effect `effect`) covers `action` on `resource` whatever the
/// request and the resource's tags (no `Condition`).
fn covers(statement: &Value, effect: &str, action: &str, resource: &str) -> bool {
    statement.get("Condition").is_none() && covers_when(statement, effect, action, resource)
}

/// Whether `statement` covers `action` on `resource` when its `Condition` (if any) holds.
fn covers_when(statement: &Value, effect: &str, action: &str, resource: &str) -> bool {
    statement["Effect"] == effect
        && strings(&statement["Action"])
            .iter()
            .any(|a| iam_match(a, action))
        && strings(&statement["Resource"])
            .iter()
            .any(|r| iam_match(r, resource))
}

fn other(env: &str) -> &'static str {
    if env == "dev" { "prod" } else { "dev" }
}

/// Names of the other environment's secrets and parameters, in the documented scheme and the
/// older one (`/synapse/ENV/admin-pat`), as the ARNs IAM evaluates.
fn foreign_arns(env: &str) -> Vec<String> {
    let o = other(env);
    vec![
        format!(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stepops/{o}/source-db-AbCdEf"
        ),
        format!(
            "arn:aws:secretsmanager:us-east-1:210987654321:secret:stepops/{o}/synapse-admin-pat-AbCdEf"
        ),
        format!(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:/synapse/{o}/admin-pat-AbCdEf"
        ),
        format!("arn:aws:ssm:eu-west-1:123456789012:parameter/stepops/{o}/source-url"),
    ]
}

/// A wrong parameter cannot open the other environment: every role the stack creates carries
/// an explicit Deny on the other environment's secrets (by name and by tag) and parameters.
#[test]
fn every_role_denies_the_other_environments_secrets_and_parameters() {
    for env in ["dev", "prod"] {
        // Even when the stack is handed the other environment's secret names.
        let o = other(env);
        let res = resolved(
            env,
            &[
                ("SourceSecretName", &format!("stepops/{o}/source-db")),
                ("AdminSecretName", &format!("stepops/{o}/synapse-admin-pat")),
                (
                    "ChatWebhookSecretName",
                    &format!("stepops/{o}/chat-webhook"),
                ),
            ],
        );
        let all = roles(&res);
        let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
        for needed in [
            "RunnerRole",
            "ValidateInputFunction",
            "NotifyFunction",
            "AdminFunction",
            "MigrateStateMachine",
            "AdminStateMachine",
        ] {
            assert!(ids.contains(&needed), "{needed} missing from {ids:?}");
        }
        for (id, statements) in &all {
            for arn in foreign_arns(env) {
                let action = if arn.contains(":ssm:") {
                    "ssm:GetParameter"
                } else {
                    "secretsmanager:GetSecretValue"
                };
                assert!(
                    statements.iter().any(|s| covers(s, "Deny", action, &arn)),
                    "{env}: {id} has no Deny of {action} on {arn}"
                );
            }
            // Its own environment's names are not denied.
            let own = format!(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:stepops/{env}/source-db-AbCdEf"
            );
            assert!(
                !statements.iter().any(|s| covers(
                    s,
                    "Deny",
                    "secretsmanager:GetSecretValue",
                    &own
                )),
                "{env}: {id} denies its own {own}"
            );
            // Secrets named outside the scheme but tagged as the other environment's.
            let by_tag = statements.iter().find(|s| {
                s["Effect"] == "Deny"
                    && s["Condition"]["StringEquals"]["secretsmanager:ResourceTag/stepops:environment"] == o
            });
            let by_tag = by_tag.unwrap_or_else(|| panic!("{env}: {id} has no Deny by tag"));
            assert_eq!(strings(&by_tag["Resource"]), ["*"]);
            let actions = strings(&by_tag["Action"]);
            assert!(
                actions
                    .iter()
                    .any(|a| iam_match(a, "secretsmanager:GetSecretValue"))
            );
        }
    }
}

/// Allows on secrets and parameters are scoped: never `*`, never a wildcard outside the stack's
/// own `stepops/ENV/` names; a named secret outside that scheme needs this environment's tag.
#[test]
fn no_role_reads_secrets_or_parameters_by_wildcard() {
    let reads = [
        "secretsmanager:GetSecretValue",
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
    ];
    for env in ["dev", "prod"] {
        let res = resolved(
            env,
            &[(
                "ChatWebhookSecretName",
                &format!("stepops/{env}/chat-webhook"),
            )],
        );
        let mut seen = 0;
        for (id, statements) in roles(&res) {
            for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
                let actions = strings(&s["Action"]);
                if !reads
                    .iter()
                    .any(|r| actions.iter().any(|a| iam_match(a, r)))
                {
                    continue;
                }
                seen += 1;
                for r in strings(&s["Resource"]) {
                    let name = r
                        .split_once(":secret:")
                        .or_else(|| r.split_once(":parameter/"))
                        .map(|(_, n)| n)
                        .unwrap_or_else(|| {
                            panic!("{env}: {id} reads {r}: not a secret or parameter ARN")
                        });
                    let scoped = format!("stepops/{env}/");
                    let own_prefix = name.starts_with(&scoped)
                        && !name[scoped.len()..].starts_with('*')
                        || name == format!("{scoped}*");
                    let one_secret = name.ends_with("-??????")
                        && !name.trim_end_matches("-??????").contains(['*', '?']);
                    assert!(
                        own_prefix || one_secret,
                        "{env}: {id} reads {r}: a wildcard beyond stepops/{env}/"
                    );
                    if one_secret && !name.starts_with(&scoped) {
                        assert_eq!(
                            s["Condition"]["StringEquals"]["secretsmanager:ResourceTag/stepops:environment"],
                            env,
                            "{env}: {id} reads {r} outside stepops/{env}/ without requiring the environment's tag"
                        );
                    }
                }
            }
        }
        assert!(
            seen >= 4,
            "{env}: expected the runner's, notify's and admin's reads, saw {seen}"
        );
    }
    // A secret named outside the scheme (an RDS-managed one) is read only when tagged.
    let res = resolved("dev", &[("SourceSecretName", "rds!db-0a1b")]);
    let runner = &roles(&res)
        .into_iter()
        .find(|(id, _)| id == "RunnerRole")
        .unwrap()
        .1;
    let rds = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-0a1b-AbCdEf";
    let allows: Vec<_> = runner
        .iter()
        .filter(|s| covers_when(s, "Allow", "secretsmanager:GetSecretValue", rds))
        .collect();
    assert_eq!(allows.len(), 1);
    assert_eq!(
        allows[0]["Condition"]["StringEquals"]["secretsmanager:ResourceTag/stepops:environment"],
        "dev"
    );
}

/// AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on every parameter: the runner has no
/// AWS managed policy, only what Session Manager needs, and reads its own parameters only.
#[test]
fn the_runner_role_has_no_managed_policy_granting_parameter_reads() {
    let res = resolved("prod", &[]);
    let role = &res["RunnerRole"]["Properties"];
    for arn in strings(&role["ManagedPolicyArns"]) {
        assert!(
            !arn.contains(":iam::aws:policy/"),
            "AWS managed policy {arn}"
        );
        let doc = &res[&arn]["Properties"]["PolicyDocument"];
        for s in doc["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Deny", "{arn} allows {s}");
        }
    }
    let inline: Vec<Value> = role["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap()
        })
        .collect();
    let ssm = inline
        .iter()
        .find(|s| s["Sid"] == "SessionManager")
        .expect("SessionManager");
    let mut actions = strings(&ssm["Action"]);
    actions.sort();
    assert_eq!(
        actions,
        [
            "ec2messages:AcknowledgeMessage",
            "ec2messages:DeleteMessage",
            "ec2messages:FailMessage",
            "ec2messages:GetEndpoint",
            "ec2messages:GetMessages",
            "ec2messages:SendReply",
            "ssm:UpdateInstanceInformation",
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
        ]
    );
    let any_param = "arn:aws:ssm:eu-west-1:123456789012:parameter/anything";
    let own_param = "arn:aws:ssm:us-east-1:123456789012:parameter/stepops/prod/source-url";
    assert!(
        !inline
            .iter()
            .any(|s| covers(s, "Allow", "ssm:GetParameter", any_param))
    );
    assert!(
        inline
            .iter()
            .any(|s| covers(s, "Allow", "ssm:GetParameters", own_param))
    );
}

/// The admin token's secret defaults to a name inside the stack's environment, which the admin
/// function may read; the older shared `/synapse/admin-pat` is gone.
#[test]
fn the_admin_secret_defaults_to_a_name_inside_the_environment() {
    for env in ["dev", "prod"] {
        let res = resolved(env, &[]);
        let f = &res["AdminFunction"]["Properties"];
        let name = f["Environment"]["Variables"]["STEPOPS_ADMIN_SECRET"]
            .as_str()
            .unwrap();
        assert_eq!(name, format!("stepops/{env}/synapse-admin-pat"));
        let (_, statements) = roles(&res)
            .into_iter()
            .find(|(id, _)| id == "AdminFunction")
            .unwrap();
        let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf");
        assert!(statements.iter().any(|s| covers(
            s,
            "Allow",
            "secretsmanager:GetSecretValue",
            &arn
        )));
        assert!(!statements.iter().any(|s| covers(
            s,
            "Deny",
            "secretsmanager:GetSecretValue",
            &arn
        )));
    }
    let t = template();
    assert_eq!(text(&t["Parameters"]["AdminSecretName"]["Default"]), "");
}

/// Alarms publish to a topic encrypted with a customer-managed key whose policy lets CloudWatch,
/// EventBridge and the notify function use it; the topic refuses publishing without TLS.
#[test]
fn alarms_can_publish_to_the_encrypted_topic_and_only_over_tls() {
    let res = resolved("prod", &[]);
    let topic = &res["NotificationTopic"]["Properties"];
    assert_eq!(
        topic["KmsMasterKeyId"],
        "arn:aws:local:us-east-1:123456789012:NotificationKey"
    );
    let key = &res["NotificationKey"]["Properties"];
    assert_eq!(key["EnableKeyRotation"], true);
    let statements = key["KeyPolicy"]["Statement"].as_array().unwrap();
    let principal_may = |p: &str, action: &str| {
        statements.iter().any(|s| {
            s["Effect"] == "Allow"
                && (strings(&s["Principal"]["Service"]).iter().any(|x| x == p)
                    || strings(&s["Principal"]["AWS"]).iter().any(|x| x == p))
                && strings(&s["Action"]).iter().any(|a| iam_match(a, action))
        })
    };
    for p in [
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "arn:aws:iam::123456789012:role/NotifyFunctionRole",
    ] {
        for action in ["kms:Decrypt", "kms:GenerateDataKey"] {
            assert!(
                principal_may(p, action),
                "the key policy does not let {p} {action}"
            );
        }
        assert!(
            !principal_may(p, "kms:ScheduleKeyDeletion"),
            "{p} may administer the key"
        );
    }
    assert!(
        principal_may("arn:aws:iam::123456789012:root", "kms:PutKeyPolicy"),
        "the account administers the key"
    );
    // The notify role's publish permission names the topic the stack creates.
    let (_, notify) = roles(&res)
        .into_iter()
        .find(|(id, _)| id == "NotifyFunction")
        .unwrap();
    let topic_arn = "arn:aws:sns:us-east-1:123456789012:stepops-prod-notifications";
    assert!(
        notify
            .iter()
            .any(|s| covers(s, "Allow", "sns:Publish", topic_arn))
    );
    assert_eq!(
        res["NotifyFunction"]["Properties"]["Environment"]["Variables"]["STEPOPS_TOPIC_ARN"],
        topic_arn
    );

    let policy = &res["NotificationTopicPolicy"]["Properties"];
    assert_eq!(strings(&policy["Topics"]), [topic_arn]);
    let ps = policy["PolicyDocument"]["Statement"].as_array().unwrap();
    let deny = ps
        .iter()
        .find(|s| s["Effect"] == "Deny")
        .expect("a Deny statement");
    assert_eq!(deny["Principal"], "*");
    assert!(covers_when(deny, "Deny", "sns:Publish", topic_arn));
    assert_eq!(deny["Condition"]["Bool"]["aws:SecureTransport"], "false");
    let alarms = ps
        .iter()
        .find(|s| {
            strings(&s["Principal"]["Service"]).contains(&"cloudwatch.amazonaws.com".to_owned())
        })
        .expect("CloudWatch may publish");
    assert!(covers_when(alarms, "Allow", "sns:Publish", topic_arn));
    assert_eq!(
        alarms["Condition"]["StringEquals"]["aws:SourceAccount"],
        "123456789012"
    );
    // Every alarm notifies that topic.
    let mut n = 0;
    for (id, r) in &res {
        if r["Type"] == "AWS::CloudWatch::Alarm" {
            n += 1;
            assert_eq!(
                strings(&r["Properties"]["AlarmActions"]),
                [topic_arn],
                "{id}"
            );
        }
    }
    assert!(n >= 7, "{n} alarms");
    // An existing topic: no key, no policy created (its own key must allow CloudWatch: docs).
    let external = "arn:aws:sns:us-east-1:123456789012:ops-alarms";
    let res = resolved("prod", &[("NotificationTopicArn", external)]);
    for gone in [
        "NotificationKey",
        "NotificationTopic",
        "NotificationTopicPolicy",
    ] {
        assert!(
            !res.contains_key(gone),
            "{gone} created for an existing topic"
        );
    }
    assert_eq!(
        res["NotifyFunction"]["Properties"]["Environment"]["Variables"]["STEPOPS_TOPIC_ARN"],
        external
    );
}

/// The runners' egress: any address by default; with destinations given, a placeholder rule
/// that matches nothing (it removes EC2's default allow-all) plus TCP to exactly those.
#[test]
fn runner_egress_is_open_by_default_and_narrows_to_the_listed_destinations() {
    let egress_rules = |res: &std::collections::BTreeMap<String, Value>| -> Vec<Value> {
        res.values()
            .filter(|r| r["Type"] == "AWS::EC2::SecurityGroupEgress")
            .map(|r| r["Properties"].clone())
            .collect()
    };
    let res = resolved("dev", &[]);
    let inline = &res["RunnerSecurityGroup"]["Properties"]["SecurityGroupEgress"];
    assert_eq!(inline[0]["CidrIp"], "0.0.0.0/0");
    assert_eq!(inline[0]["IpProtocol"], "-1");
    assert!(egress_rules(&res).is_empty());

    let groups = [
        "sg-0aaaaaaaaaaaaaaa1",
        "sg-0aaaaaaaaaaaaaaa2",
        "sg-0aaaaaaaaaaaaaaa3",
        "sg-0aaaaaaaaaaaaaaa4",
        "sg-0aaaaaaaaaaaaaaa5",
    ];
    let lists = [
        "pl-0bbbbbbbbbbbbbbb1",
        "pl-0bbbbbbbbbbbbbbb2",
        "pl-0bbbbbbbbbbbbbbb3",
    ];
    for (ng, np) in [(1, 0), (0, 1), (2, 1), (5, 3)] {
        let g = groups[..ng].join(",");
        let p = lists[..np].join(",");
        let res = resolved(
            "dev",
            &[
                ("RunnerEgressSecurityGroupIds", &g),
                ("RunnerEgressPrefixListIds", &p),
            ],
        );
        let inline = res["RunnerSecurityGroup"]["Properties"]["SecurityGroupEgress"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(inline.len(), 1);
        assert_eq!(
            inline[0]["CidrIp"], "255.255.255.255/32",
            "{g} {p}: the placeholder"
        );
        let rules = egress_rules(&res);
        let mut to_groups: Vec<String> = rules
            .iter()
            .filter_map(|r| r["DestinationSecurityGroupId"].as_str().map(str::to_owned))
            .collect();
        let mut to_lists: Vec<String> = rules
            .iter()
            .filter_map(|r| r["DestinationPrefixListId"].as_str().map(str::to_owned))
            .collect();
        to_groups.sort();
        to_lists.sort();
        assert_eq!(to_groups, groups[..ng], "{g} {p}");
        assert_eq!(to_lists, lists[..np], "{g} {p}");
        for r in &rules {
            assert_eq!(r["GroupId"], "sg-RunnerSecurityGroup");
            assert_eq!(r["IpProtocol"], "tcp");
            assert!(r.get("CidrIp").is_none());
        }
    }
    // The parameters' patterns allow exactly as many entries as there are rule slots.
    let t = template();
    for (param, slots) in [
        ("RunnerEgressSecurityGroupIds", 5),
        ("RunnerEgressPrefixListIds", 3),
    ] {
        let pattern = text(&t["Parameters"][param]["AllowedPattern"]);
        assert!(
            pattern.ends_with(&format!("{{0,{}}}$", slots - 1)),
            "{param}: {pattern}"
        );
    }
}

/// The user data's `verify_sha256` function, as bash text.
fn verify_sha256_function() -> String {
    let ud = template_user_data();
    let start = ud
        .find("verify_sha256() {\n")
        .expect("user data defines verify_sha256");
    let end = start + ud[start..].find("\n}\n").expect("verify_sha256 ends") + 3;
    ud[start..end].to_owned()
}

/// Runs the user data's `verify_sha256 FILE DIGEST NAME` in bash: (exit status, stderr).
fn run_verify(file: &Path, digest: &str) -> (bool, String) {
    let script = format!(
        "set -euo pipefail\n{}\nverify_sha256 \"$1\" \"$2\" s3://bucket/key",
        verify_sha256_function()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script, "verify"])
        .arg(file)
        .arg(digest)
        .output()
        .expect("bash runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The runner binary runs only when its SHA-256 is the stack's RunnerSha256: the user data's
/// check, run for real on a file, refuses a changed binary with a clear line and stops the boot
/// before the binary is installed or the service enabled.
#[test]
fn user_data_refuses_a_runner_binary_whose_sha256_differs() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("stepops-runner.download");
    std::fs::write(&binary, b"\x7fELF the runner").unwrap();
    let digest = format!("{:x}", sha2::Sha256::digest(b"\x7fELF the runner"));

    let (ok, stderr) = run_verify(&binary, &digest);
    assert!(ok, "the right digest is refused: {stderr}");
    assert!(stderr.contains("has the expected SHA-256"), "{stderr}");

    std::fs::write(&binary, b"\x7fELF another runner").unwrap();
    let (ok, stderr) = run_verify(&binary, &digest);
    assert!(!ok, "a changed binary passes");
    let changed = format!("{:x}", sha2::Sha256::digest(b"\x7fELF another runner"));
    assert!(
        stderr.contains("stepops-boot: NOT starting the runner: s3://bucket/key has SHA-256")
            && stderr.contains(&changed)
            && stderr.contains(&format!("RunnerSha256 is {digest}"))
            && stderr.contains("deploy/upload-runner.sh"),
        "{stderr}"
    );
    // A missing download is refused too.
    let (ok, _) = run_verify(&dir.path().join("missing"), &digest);
    assert!(!ok);

    // In the user data: download, check (exit on mismatch), only then install and start.
    let ud = template_user_data();
    let at = |needle: &str| {
        ud.find(needle)
            .unwrap_or_else(|| panic!("user data lacks {needle}"))
    };
    let check = at(
        "verify_sha256 /opt/stepops/bin/stepops-runner.download \"${RunnerSha256}\" \"s3://${ArtifactBucket}/${ArtifactKey}\" || exit 1\n",
    );
    assert!(at("/opt/stepops/bin/stepops-runner.download\n") < check);
    assert!(
        check
            < at(
                "install -m 0755 /opt/stepops/bin/stepops-runner.download /opt/stepops/bin/stepops-runner\n"
            )
    );
    assert!(check < at("systemctl enable --now stepops-runner.service"));
    // RunnerSha256 is a full SHA-256, as upload-runner.sh prints it.
    let t = template();
    assert_eq!(
        text(&t["Parameters"]["RunnerSha256"]["AllowedPattern"]),
        "^[0-9a-f]{64}$"
    );
    let upload = read("deploy/upload-runner.sh");
    assert!(upload.contains("sha256=$(sha256sum \"$binary\" | cut -d' ' -f1)"));
    assert!(upload.contains("\"RunnerSha256=${sha256}\""));
}

/// The whole user data is valid bash (placeholders filled as CloudFormation would).
#[test]
fn user_data_is_valid_bash() {
    let ud = template_user_data()
        .replace("${AWS::Region}", "eu-west-1")
        .replace("${", "$X{");
    let out = std::process::Command::new("bash")
        .args(["-n", "-c", &ud])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runner logs outlive the instance: the unit appends them to a file the CloudWatch agent sends
/// to the stack's log group (per environment, with the stack's retention), and the runner role
/// may write to that group only.
#[test]
fn runner_logs_reach_the_stacks_log_group() {
    let ud = template_user_data();
    let unit = between(&ud, "<<'UNIT'\n", "\nUNIT\n");
    let file = between(unit, "StandardOutput=append:", "\n");
    assert_eq!(between(unit, "StandardError=append:", "\n"), file);
    let agent: Value = serde_json::from_str(between(&ud, "<<'JSON'\n", "\nJSON\n"))
        .expect("the CloudWatch agent's configuration is JSON");
    let collected = agent["logs"]["logs_collected"]["files"]["collect_list"]
        .as_array()
        .unwrap();
    let runner = collected
        .iter()
        .find(|c| c["file_path"] == file)
        .unwrap_or_else(|| panic!("the agent does not collect {file}: {agent}"));
    assert_eq!(runner["log_group_name"], "${RunnerLogGroup}");
    assert!(
        collected
            .iter()
            .any(|c| c["file_path"] == "/var/log/cloud-init-output.log"),
        "the boot log (and a refused binary's line)"
    );
    assert!(ud.find("amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/etc/stepops/cloudwatch-agent.json").unwrap() < ud.find("verify_sha256 /opt").unwrap());
    assert!(between(&ud, "<<'ROTATE'\n", "\nROTATE\n").starts_with(&format!("{file} {{")));

    for env in ["dev", "prod"] {
        let res = resolved(env, &[("LogRetentionDays", "30")]);
        let group = &res["RunnerLogGroup"]["Properties"];
        assert_eq!(group["LogGroupName"], format!("/stepops/{env}/runner"));
        assert_eq!(
            group["RetentionInDays"]
                .as_str()
                .or(group["RetentionInDays"].as_i64().map(|_| "30")),
            Some("30")
        );
        let (_, statements) = roles(&res)
            .into_iter()
            .find(|(id, _)| id == "RunnerRole")
            .unwrap();
        let jobs = &res["JobLogGroup"]["Properties"];
        assert_eq!(jobs["LogGroupName"], format!("/stepops/{env}/jobs"));
        // The runner writes its own log group and the job steps' one, nothing else.
        let mut logs: Vec<&Value> = statements
            .iter()
            .filter(|s| {
                s["Effect"] == "Allow"
                    && strings(&s["Action"])
                        .iter()
                        .any(|a| a.starts_with("logs:") || a == "*")
            })
            .collect();
        assert_eq!(logs.len(), 2, "{logs:?}");
        logs.sort_by_key(|s| strings(&s["Resource"]));
        for (statement, group) in logs.iter().zip(["JobLogGroup", "RunnerLogGroup"]) {
            let mut actions = strings(&statement["Action"]);
            actions.sort();
            assert_eq!(actions, ["logs:CreateLogStream", "logs:PutLogEvents"]);
            assert_eq!(
                strings(&statement["Resource"]),
                [format!("arn:aws:local:us-east-1:123456789012:{group}")]
            );
        }
    }
}
