//! The bad-input corpus: every case is refused in validation and no request of any kind reaches
//! the server.

mod common;

use common::{ListTokens, MockSynapse, Recorded, Reply};
use serde_json::{Value, json};
use stepops_admin::{AdminRequest, AuditContext, Environment, handle};
use stepops_error::{ErrorName, Named};

fn dev(task: &str, args: Value) -> Value {
    json!({"environment": "dev", "task": task, "args": args})
}

/// (description, state machine input, expected error name). The stack is `dev`.
fn corpus() -> Vec<(&'static str, Value, ErrorName)> {
    use ErrorName::{InvalidInput as Bad, WrongEnvironment as Wrong};
    vec![
        (
            "path traversal in a user id",
            dev("remove-user", json!({"userId": "123/../../admin"})),
            Bad,
        ),
        (
            "query injection in a user id",
            dev("remove-user", json!({"userId": "123?x=1"})),
            Bad,
        ),
        (
            "fragment in a user id",
            dev("reenable-user", json!({"userId": "123#x"})),
            Bad,
        ),
        (
            "percent-encoded dots",
            dev("decertify-user", json!({"userId": "%2e%2e"})),
            Bad,
        ),
        (
            "encoded slash",
            dev("remove-user", json!({"userId": "123%2F..%2Fadmin"})),
            Bad,
        ),
        (
            "empty user id",
            dev("remove-user", json!({"userId": ""})),
            Bad,
        ),
        (
            "whitespace user id",
            dev("remove-user", json!({"userId": "   "})),
            Bad,
        ),
        (
            "padded user id",
            dev("remove-user", json!({"userId": " 123 "})),
            Bad,
        ),
        (
            "newline in a user id",
            dev("remove-user", json!({"userId": "123\n"})),
            Bad,
        ),
        (
            "unicode digits",
            dev("remove-user", json!({"userId": "١٢٣"})),
            Bad,
        ),
        (
            "fullwidth digits",
            dev("reenable-user", json!({"userId": "１２３"})),
            Bad,
        ),
        (
            "negative number",
            dev("remove-user", json!({"userId": "-5"})),
            Bad,
        ),
        (
            "negative JSON number",
            dev("remove-user", json!({"userId": -5})),
            Bad,
        ),
        ("zero", dev("remove-user", json!({"userId": "0"})), Bad),
        (
            "leading zero",
            dev("remove-user", json!({"userId": "0123"})),
            Bad,
        ),
        (
            "overflow",
            dev("remove-user", json!({"userId": "99999999999999999999999"})),
            Bad,
        ),
        (
            "above i64::MAX",
            dev("remove-user", json!({"userId": "9223372036854775808"})),
            Bad,
        ),
        ("float id", dev("remove-user", json!({"userId": 12.5})), Bad),
        (
            "exponent id",
            dev("remove-user", json!({"userId": "1e5"})),
            Bad,
        ),
        (
            "boolean id",
            dev("remove-user", json!({"userId": true})),
            Bad,
        ),
        ("missing user id", dev("remove-user", json!({})), Bad),
        (
            "client id with a path",
            dev("verify-oauth-client", json!({"clientId": "1/../2"})),
            Bad,
        ),
        (
            "status as a string",
            dev(
                "verify-oauth-client",
                json!({"clientId": "1", "status": "true"}),
            ),
            Bad,
        ),
        (
            "status as a number",
            dev("verify-oauth-client", json!({"clientId": "1", "status": 1})),
            Bad,
        ),
        (
            "entity id without prefix",
            dev("make-public", json!({"entityId": "123"})),
            Bad,
        ),
        (
            "entity id with traversal",
            dev("make-public", json!({"entityId": "syn123/../../admin"})),
            Bad,
        ),
        (
            "entity id with a version",
            dev("make-public", json!({"entityId": "syn123.4"})),
            Bad,
        ),
        (
            "entity id with a query",
            dev(
                "make-public",
                json!({"entityId": "syn1?type=SENSITIVE_DATA"}),
            ),
            Bad,
        ),
        (
            "empty entity id",
            dev("make-public", json!({"entityId": ""})),
            Bad,
        ),
        (
            "email without @",
            dev("unquarantine-email", json!({"email": "alice.example.org"})),
            Bad,
        ),
        (
            "email with a header injection",
            dev(
                "unquarantine-email",
                json!({"email": "a@example.org\r\nBcc: b@example.org"}),
            ),
            Bad,
        ),
        (
            "email with spaces",
            dev("unquarantine-email", json!({"email": "a b@example.org"})),
            Bad,
        ),
        (
            "unicode email",
            dev("unquarantine-email", json!({"email": "ä@example.org"})),
            Bad,
        ),
        (
            "email as JSON",
            dev("unquarantine-email", json!({"email": {"$ne": ""}})),
            Bad,
        ),
        (
            "unknown feature",
            dev(
                "set-feature",
                json!({"feature": "EVERYTHING", "enabled": true}),
            ),
            Bad,
        ),
        (
            "lower-case feature",
            dev(
                "set-feature",
                json!({"feature": "multipart_auto_cleanup", "enabled": true}),
            ),
            Bad,
        ),
        (
            "feature with a path",
            dev(
                "set-feature",
                json!({"feature": "MULTIPART_AUTO_CLEANUP/../x", "enabled": true}),
            ),
            Bad,
        ),
        (
            "enabled as a string",
            dev(
                "set-feature",
                json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": "yes"}),
            ),
            Bad,
        ),
        (
            "enabled missing",
            dev("set-feature", json!({"feature": "MULTIPART_AUTO_CLEANUP"})),
            Bad,
        ),
        ("unknown task", dev("delete-everything", json!({})), Bad),
        ("empty task", dev("", json!({})), Bad),
        (
            "task in upper case",
            dev("REMOVE-USER", json!({"userId": "1"})),
            Bad,
        ),
        (
            "unknown argument",
            dev("remove-user", json!({"userId": "1", "force": true})),
            Bad,
        ),
        (
            "argument of another task",
            dev("reenable-user", json!({"userId": "1", "status": true})),
            Bad,
        ),
        ("args not an object", dev("remove-user", json!(["1"])), Bad),
        (
            "dryRun as a string",
            json!({"environment": "dev", "task": "remove-user", "args": {"userId": "1"}, "dryRun": "false"}),
            Bad,
        ),
        (
            "dry_run typo",
            json!({"environment": "dev", "task": "remove-user", "args": {"userId": "1"}, "dry_run": true}),
            Bad,
        ),
        (
            "missing environment",
            json!({"task": "remove-user", "args": {"userId": "1"}}),
            Bad,
        ),
        (
            "unknown environment",
            json!({"environment": "staging", "task": "remove-user", "args": {"userId": "1"}}),
            Bad,
        ),
        (
            "environment in capitals",
            json!({"environment": "DEV", "task": "remove-user", "args": {"userId": "1"}}),
            Bad,
        ),
        ("input not an object", json!("remove-user 1"), Bad),
        (
            "wrong environment",
            json!({"environment": "prod", "task": "remove-user", "args": {"userId": "1"}}),
            Wrong,
        ),
        (
            "wrong environment, otherwise valid dry run",
            json!({"environment": "prod", "task": "make-public", "args": {"entityId": "syn1"}, "dryRun": true}),
            Wrong,
        ),
    ]
}

#[tokio::test]
async fn the_bad_input_corpus_is_refused_before_any_request() {
    let server = MockSynapse::start(|_: &Recorded| Reply::empty(200)).await;
    let client = server.client(ListTokens::new(&["t"]));
    let cases = corpus();
    assert!(cases.len() >= 20);
    for (what, input, name) in cases {
        let err = handle(&input, Environment::Dev, &client, &AuditContext::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: {input} was accepted"));
        assert_eq!(err.error_name(), name, "{what}: {err}");
        assert!(!err.to_string().is_empty());
    }
    assert!(
        server.requests().is_empty(),
        "no request may reach the server: {:?}",
        server.requests()
    );
}

#[test]
fn the_cli_form_refuses_the_same_input() {
    let bad: Vec<(&str, &str, Vec<&str>, ErrorName)> = vec![
        (
            "dev",
            "remove-user",
            vec!["123/../../admin"],
            ErrorName::InvalidInput,
        ),
        (
            "dev",
            "remove-user",
            vec!["123?x=1"],
            ErrorName::InvalidInput,
        ),
        (
            "dev",
            "remove-user",
            vec!["%2e%2e"],
            ErrorName::InvalidInput,
        ),
        ("dev", "remove-user", vec![""], ErrorName::InvalidInput),
        ("dev", "remove-user", vec![], ErrorName::InvalidInput),
        (
            "dev",
            "remove-user",
            vec!["1", "2"],
            ErrorName::InvalidInput,
        ),
        (
            "dev",
            "remove-user",
            vec!["1", "--force"],
            ErrorName::InvalidInput,
        ),
        (
            "dev",
            "verify-oauth-client",
            vec!["1", "--status", "yes"],
            ErrorName::InvalidInput,
        ),
        (
            "dev",
            "verify-oauth-client",
            vec!["1", "--status"],
            ErrorName::InvalidInput,
        ),
        (
            "dev",
            "verify-oauth-client",
            vec!["1", "--status=true", "--status=false"],
            ErrorName::InvalidInput,
        ),
        (
            "dev",
            "set-feature",
            vec!["MULTIPART_AUTO_CLEANUP"],
            ErrorName::InvalidInput,
        ),
        (
            "dev",
            "set-feature",
            vec!["MULTIPART_AUTO_CLEANUP", "--enabled", "1"],
            ErrorName::InvalidInput,
        ),
        ("dev", "make-public", vec!["123"], ErrorName::InvalidInput),
        ("dev", "nope", vec!["1"], ErrorName::InvalidInput),
        ("qa", "remove-user", vec!["1"], ErrorName::InvalidInput),
        (
            "prod",
            "remove-user",
            vec!["1"],
            ErrorName::WrongEnvironment,
        ),
    ];
    for (env, task, args, name) in bad {
        let err = AdminRequest::from_cli(env, Environment::Dev, task, &args, false).unwrap_err();
        assert_eq!(err.error_name(), name, "{env} {task} {args:?}: {err}");
    }
    let ok = AdminRequest::from_cli(
        "dev",
        Environment::Dev,
        "verify-oauth-client",
        &["100001", "--status", "false"],
        true,
    )
    .unwrap();
    assert_eq!(ok.task.target_id(), "100001");
    assert!(ok.dry_run);
}

#[test]
fn refusals_say_what_to_do() {
    let err = AdminRequest::from_input(
        &json!({"environment": "prod", "task": "remove-user", "args": {"userId": "1"}}),
        Environment::Dev,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "wrong environment: the request is for `prod` but this stack serves `dev`; start the execution in the `prod` stack"
    );
    let err = AdminRequest::from_input(
        &json!({"environment": "dev", "task": "remove-usr", "args": {}}),
        Environment::Dev,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("remove-user, verify-oauth-client"),
        "{err}"
    );
}
