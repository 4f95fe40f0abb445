//! Unit tests of `request.rs`.

use super::*;

#[test]
fn input_round_trips_through_the_cli_form() {
    let cli = AdminRequest::from_cli(
        "dev",
        Environment::Dev,
        "verify-oauth-client",
        &["100001", "--status=false"],
        true,
    )
    .unwrap();
    let input = cli.to_input();
    assert_eq!(
        input,
        json!({"environment": "dev", "task": "verify-oauth-client",
               "args": {"clientId": "100001", "status": false}, "dryRun": true})
    );
    assert_eq!(
        AdminRequest::from_input(&input, Environment::Dev).unwrap(),
        cli
    );

    let who = "arn:aws:sts::123456789012:assumed-role/ops/alice";
    let signed = cli.with_started_by(who).unwrap();
    let input = signed.to_input();
    assert_eq!(input["startedBy"], who);
    assert_eq!(
        AdminRequest::from_input(&input, Environment::Dev).unwrap(),
        signed
    );
    for bad in [
        json!(""),
        json!(" a"),
        json!("a\nb"),
        json!(5),
        json!("x".repeat(257)),
    ] {
        let mut i = input.clone();
        i["startedBy"] = bad.clone();
        assert!(
            AdminRequest::from_input(&i, Environment::Dev).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn prod_confirmation_and_execution_names() {
    let req = |task: &str, args: &[&str]| {
        AdminRequest::from_cli("prod", Environment::Prod, task, args, false).unwrap()
    };
    let r = req("remove-user", &["3350396"]);
    assert!(r.confirms(" 3350396\n"));
    assert!(!r.confirms("335039"));
    assert!(!r.confirms(""));
    let p = req("make-public", &["syn123"]);
    assert!(p.confirms("SYN123"));
    assert!(!p.confirms("123"));
    let e = req("unquarantine-email", &["a.b+c@example.org"]);
    assert!(e.confirms("a.b+c@example.org"));
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T04:40:05Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        e.execution_name(now),
        "admin-unquarantine-email-a-b-c-example-org-20261122T044005Z"
    );
    let long = format!("{}@{}.org", "a".repeat(64), "b".repeat(60));
    let l = AdminRequest::from_cli(
        "prod",
        Environment::Prod,
        "unquarantine-email",
        &[long.as_str()],
        true,
    )
    .unwrap();
    let name = l.execution_name(now);
    assert!(name.len() <= 80, "{name}");
    assert!(name.ends_with("20261122T044005Z-dry"));
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
}

#[test]
fn numbers_are_accepted_for_ids_in_json() {
    let r = AdminRequest::from_input(
        &json!({"environment": "prod", "task": "remove-user", "args": {"userId": 42}, "confirm": "42"}),
        Environment::Prod,
    )
    .unwrap();
    assert_eq!(r.task.target(), "user:42");
    assert!(!r.dry_run);
}

#[test]
fn prod_inputs_must_name_their_target_in_confirm() {
    use stepops_error::{ErrorName, Named};
    let input = |confirm: Option<Value>| {
        let mut i = json!({"environment": "prod", "task": "make-public",
                           "args": {"entityId": "syn123"}, "dryRun": true});
        if let Some(c) = confirm {
            i["confirm"] = c;
        }
        i
    };
    let ok = AdminRequest::from_input(&input(Some(json!("SYN123"))), Environment::Prod).unwrap();
    assert_eq!(ok.confirm.as_deref(), Some("syn123"));
    assert_eq!(ok.to_input()["confirm"], "syn123");
    assert_eq!(
        AdminRequest::from_input(&ok.to_input(), Environment::Prod).unwrap(),
        ok
    );
    for (confirm, name) in [
        (None, ErrorName::NotConfirmed),
        (Some(Value::Null), ErrorName::NotConfirmed),
        (Some(json!("")), ErrorName::NotConfirmed),
        (Some(json!("syn124")), ErrorName::NotConfirmed),
        (Some(json!("123")), ErrorName::NotConfirmed),
        (Some(json!(123)), ErrorName::InvalidInput),
    ] {
        let err = AdminRequest::from_input(&input(confirm.clone()), Environment::Prod).unwrap_err();
        assert_eq!(err.error_name(), name, "{confirm:?}: {err}");
    }
    let missing = AdminRequest::from_input(&input(None), Environment::Prod).unwrap_err();
    assert!(
        missing.to_string().contains("\"confirm\": \"syn123\""),
        "{missing}"
    );
    // dev needs none, but a confirmation that names another target is refused there too.
    let dev = |confirm: Value| {
        json!({"environment": "dev", "task": "remove-user", "args": {"userId": "7"},
               "confirm": confirm})
    };
    assert!(AdminRequest::from_input(&dev(Value::Null), Environment::Dev).is_ok());
    assert!(AdminRequest::from_input(&dev(json!("7")), Environment::Dev).is_ok());
    assert_eq!(
        AdminRequest::from_input(&dev(json!("8")), Environment::Dev)
            .unwrap_err()
            .error_name(),
        ErrorName::NotConfirmed
    );
}
