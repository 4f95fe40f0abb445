//! The two forms of a request, `stepops admin TASK ARGS… --env E [--dry-run]` and the state
//! machine's input `{"environment", "task", "args", "dryRun"}`, give the same validated request
//! for every task, every option and both environments; and the input the CLI starts an
//! execution with (`to_input`) validates back to that request.

use serde_json::{Value, json};
use stepops_admin::{AdminRequest, Environment, Feature, TASK_NAMES, Task};

/// (task, CLI arguments, `args` of the input). Every case is run in both environments, with and
/// without a dry run.
fn table() -> Vec<(&'static str, Vec<String>, Value)> {
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let mut t = Vec::new();
    for task in ["remove-user", "decertify-user", "reenable-user"] {
        t.push((task, s(&["3350396"]), json!({"userId": "3350396"})));
        t.push((task, s(&["3350396"]), json!({"userId": 3350396})));
        t.push((
            task,
            s(&["9223372036854775807"]),
            json!({"userId": "9223372036854775807"}),
        ));
    }
    let client = "verify-oauth-client";
    t.push((client, s(&["100001"]), json!({"clientId": "100001"})));
    t.push((
        client,
        s(&["100001"]),
        json!({"clientId": 100001, "status": true}),
    ));
    for status in ["true", "false"] {
        let b: bool = status.parse().unwrap();
        t.push((
            client,
            s(&["100001", "--status", status]),
            json!({"clientId": "100001", "status": b}),
        ));
        t.push((
            client,
            s(&["100001", &format!("--status={status}")]),
            json!({"clientId": "100001", "status": b}),
        ));
        t.push((
            client,
            s(&["--status", status, "100001"]),
            json!({"clientId": "100001", "status": b}),
        ));
    }
    t.push((
        "make-public",
        s(&["syn12345678"]),
        json!({"entityId": "syn12345678"}),
    ));
    t.push((
        "make-public",
        s(&["SYN12345678"]),
        json!({"entityId": "syn12345678"}),
    ));
    t.push((
        "make-public",
        s(&["syn12345678"]),
        json!({"entityId": "Syn12345678"}),
    ));
    for email in [
        "first.last@example.org",
        "a.b+c@sub.example.co.uk",
        "x_y-z@e-x.org",
    ] {
        t.push(("unquarantine-email", s(&[email]), json!({"email": email})));
    }
    for feature in Feature::ALL {
        for enabled in [true, false] {
            let f = feature.as_str();
            t.push((
                "set-feature",
                s(&[f, "--enabled", &enabled.to_string()]),
                json!({"feature": f, "enabled": enabled}),
            ));
            t.push((
                "set-feature",
                s(&[&format!("--enabled={enabled}"), f]),
                json!({"feature": f, "enabled": enabled}),
            ));
        }
    }
    t
}

#[test]
fn the_cli_form_and_the_input_form_give_the_same_request() {
    let table = table();
    let mut tasks_seen = std::collections::BTreeSet::new();
    let mut features_seen = std::collections::BTreeSet::new();
    let mut statuses_seen = std::collections::BTreeSet::new();
    let mut cases = 0;
    for (task, cli_args, args) in &table {
        for env in [Environment::Dev, Environment::Prod] {
            for dry_run in [false, true] {
                let from_cli = AdminRequest::from_cli(env.as_str(), env, task, cli_args, dry_run)
                    .unwrap_or_else(|e| panic!("{task} {cli_args:?} --env {env}: {e}"));
                let mut input = json!({
                    "environment": env.as_str(),
                    "task": task,
                    "args": args,
                    "dryRun": dry_run,
                });
                // prod inputs carry the target typed again; `stepops admin` adds it after the
                // operator typed it (or with --yes).
                let target = from_cli.task.target_id();
                let from_cli = if env == Environment::Prod {
                    input["confirm"] = json!(target);
                    from_cli.with_confirmation(&target).unwrap()
                } else {
                    from_cli
                };
                let from_input = AdminRequest::from_input(&input, env)
                    .unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(from_cli, from_input, "{task} {cli_args:?} vs {input}");
                assert_eq!(from_cli.task.name(), *task);
                assert_eq!(from_cli.environment, env);
                assert_eq!(from_cli.dry_run, dry_run);

                // What `stepops admin` starts the execution with validates to the same request.
                let started = from_cli.to_input();
                assert_eq!(
                    AdminRequest::from_input(&started, env).unwrap(),
                    from_cli,
                    "{started}"
                );
                // A dry run is never lost between the forms.
                assert_eq!(started["dryRun"], dry_run);
                cases += 1;
            }
        }
        tasks_seen.insert(*task);
        match AdminRequest::from_cli("dev", Environment::Dev, task, cli_args, false)
            .unwrap()
            .task
        {
            Task::SetFeature { feature, enabled } => {
                features_seen.insert((feature.as_str(), enabled));
            }
            Task::VerifyOAuthClient { status, .. } => {
                statuses_seen.insert(status);
            }
            _ => {}
        }
    }
    // Every task, every feature with both values, and both statuses are in the table.
    assert_eq!(
        tasks_seen,
        TASK_NAMES.iter().copied().collect(),
        "a task is missing from the table"
    );
    assert_eq!(features_seen.len(), Feature::ALL.len() * 2);
    assert_eq!(statuses_seen, [false, true].into_iter().collect());
    assert_eq!(cases, table.len() * 4);
}

#[test]
fn the_default_status_is_true_in_both_forms() {
    let cli = AdminRequest::from_cli(
        "dev",
        Environment::Dev,
        "verify-oauth-client",
        &["7"],
        false,
    )
    .unwrap();
    let input = AdminRequest::from_input(
        &json!({"environment": "dev", "task": "verify-oauth-client", "args": {"clientId": "7"}}),
        Environment::Dev,
    )
    .unwrap();
    assert_eq!(cli, input);
    assert_eq!(
        cli.task,
        Task::VerifyOAuthClient {
            client_id: stepops_admin::ClientId::new(7).unwrap(),
            status: true
        }
    );
    // And `dryRun` absent is false, like no `--dry-run`.
    assert!(!input.dry_run);
}
