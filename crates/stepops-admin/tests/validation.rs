//! The bad-input corpus: every case is refused in validation, with a message naming the
//! offending field; no request of any kind reaches the server and the token source is never
//! asked for the token.

mod common;

use std::sync::Arc;

use common::{ListTokens, MockSynapse, Recorded, Reply};
use serde_json::{Value, json};
use stepops_admin::{
    AdminError, AdminRequest, AuditContext, AuditRecord, Environment, SynapseClient, handle, run,
};
use stepops_error::{ErrorName, Named};

fn dev(task: &str, args: Value) -> Value {
    json!({"environment": "dev", "task": task, "args": args})
}

/// (description, state machine input, expected error name, what the message must name: the
/// offending field). The stack is `dev`.
fn corpus() -> Vec<(&'static str, Value, ErrorName, &'static str)> {
    use ErrorName::{InvalidInput as Bad, WrongEnvironment as Wrong};
    vec![
        (
            "path traversal in a user id",
            dev("remove-user", json!({"userId": "123/../../admin"})),
            Bad,
            "user id",
        ),
        (
            "query injection in a user id",
            dev("remove-user", json!({"userId": "123?x=1"})),
            Bad,
            "user id",
        ),
        (
            "fragment in a user id",
            dev("reenable-user", json!({"userId": "123#x"})),
            Bad,
            "user id",
        ),
        (
            "percent-encoded dots",
            dev("decertify-user", json!({"userId": "%2e%2e"})),
            Bad,
            "user id",
        ),
        (
            "encoded slash",
            dev("remove-user", json!({"userId": "123%2F..%2Fadmin"})),
            Bad,
            "user id",
        ),
        (
            "empty user id",
            dev("remove-user", json!({"userId": ""})),
            Bad,
            "user id",
        ),
        (
            "whitespace user id",
            dev("remove-user", json!({"userId": "   "})),
            Bad,
            "user id",
        ),
        (
            "padded user id",
            dev("remove-user", json!({"userId": " 123 "})),
            Bad,
            "user id",
        ),
        (
            "newline in a user id",
            dev("remove-user", json!({"userId": "123\n"})),
            Bad,
            "user id",
        ),
        (
            "unicode digits",
            dev("remove-user", json!({"userId": "١٢٣"})),
            Bad,
            "user id",
        ),
        (
            "fullwidth digits",
            dev("reenable-user", json!({"userId": "１２３"})),
            Bad,
            "user id",
        ),
        (
            "negative number",
            dev("remove-user", json!({"userId": "-5"})),
            Bad,
            "user id",
        ),
        (
            "negative JSON number",
            dev("remove-user", json!({"userId": -5})),
            Bad,
            "`args.userId`",
        ),
        (
            "zero",
            dev("remove-user", json!({"userId": "0"})),
            Bad,
            "user id",
        ),
        (
            "leading zero",
            dev("remove-user", json!({"userId": "0123"})),
            Bad,
            "user id",
        ),
        (
            "overflow",
            dev("remove-user", json!({"userId": "99999999999999999999999"})),
            Bad,
            "user id",
        ),
        (
            "above i64::MAX",
            dev("remove-user", json!({"userId": "9223372036854775808"})),
            Bad,
            "user id",
        ),
        (
            "float id",
            dev("remove-user", json!({"userId": 12.5})),
            Bad,
            "`args.userId`",
        ),
        (
            "exponent id",
            dev("remove-user", json!({"userId": "1e5"})),
            Bad,
            "user id",
        ),
        (
            "boolean id",
            dev("remove-user", json!({"userId": true})),
            Bad,
            "`args.userId`",
        ),
        (
            "missing user id",
            dev("remove-user", json!({})),
            Bad,
            "`userId`",
        ),
        (
            "client id with a path",
            dev("verify-oauth-client", json!({"clientId": "1/../2"})),
            Bad,
            "OAuth client id",
        ),
        (
            "status as a string",
            dev(
                "verify-oauth-client",
                json!({"clientId": "1", "status": "true"}),
            ),
            Bad,
            "`args.status`",
        ),
        (
            "status as a number",
            dev("verify-oauth-client", json!({"clientId": "1", "status": 1})),
            Bad,
            "`args.status`",
        ),
        (
            "entity id without prefix",
            dev("make-public", json!({"entityId": "123"})),
            Bad,
            "entity id",
        ),
        (
            "entity id with traversal",
            dev("make-public", json!({"entityId": "syn123/../../admin"})),
            Bad,
            "entity id",
        ),
        (
            "entity id with a version",
            dev("make-public", json!({"entityId": "syn123.4"})),
            Bad,
            "entity id",
        ),
        (
            "entity id with a query",
            dev(
                "make-public",
                json!({"entityId": "syn1?type=SENSITIVE_DATA"}),
            ),
            Bad,
            "entity id",
        ),
        (
            "empty entity id",
            dev("make-public", json!({"entityId": ""})),
            Bad,
            "entity id",
        ),
        (
            "email without @",
            dev("unquarantine-email", json!({"email": "alice.example.org"})),
            Bad,
            "email",
        ),
        (
            "email with a header injection",
            dev(
                "unquarantine-email",
                json!({"email": "a@example.org\r\nBcc: b@example.org"}),
            ),
            Bad,
            "email",
        ),
        (
            "email with spaces",
            dev("unquarantine-email", json!({"email": "a b@example.org"})),
            Bad,
            "email",
        ),
        (
            "unicode email",
            dev("unquarantine-email", json!({"email": "ä@example.org"})),
            Bad,
            "email",
        ),
        (
            "email as JSON",
            dev("unquarantine-email", json!({"email": {"$ne": ""}})),
            Bad,
            "`email`",
        ),
        (
            "unknown feature",
            dev(
                "set-feature",
                json!({"feature": "EVERYTHING", "enabled": true}),
            ),
            Bad,
            "feature",
        ),
        (
            "lower-case feature",
            dev(
                "set-feature",
                json!({"feature": "multipart_auto_cleanup", "enabled": true}),
            ),
            Bad,
            "feature",
        ),
        (
            "feature with a path",
            dev(
                "set-feature",
                json!({"feature": "MULTIPART_AUTO_CLEANUP/../x", "enabled": true}),
            ),
            Bad,
            "feature",
        ),
        (
            "enabled as a string",
            dev(
                "set-feature",
                json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": "yes"}),
            ),
            Bad,
            "`args.enabled`",
        ),
        (
            "enabled missing",
            dev("set-feature", json!({"feature": "MULTIPART_AUTO_CLEANUP"})),
            Bad,
            "`enabled`",
        ),
        (
            "unknown task",
            dev("delete-everything", json!({})),
            Bad,
            "task",
        ),
        ("empty task", dev("", json!({})), Bad, "task"),
        (
            "task in upper case",
            dev("REMOVE-USER", json!({"userId": "1"})),
            Bad,
            "task",
        ),
        (
            "unknown argument",
            dev("remove-user", json!({"userId": "1", "force": true})),
            Bad,
            "force",
        ),
        (
            "argument of another task",
            dev("reenable-user", json!({"userId": "1", "status": true})),
            Bad,
            "status",
        ),
        (
            "args not an object",
            dev("remove-user", json!(["1"])),
            Bad,
            "`args`",
        ),
        (
            "dryRun as a string",
            json!({"environment": "dev", "task": "remove-user", "args": {"userId": "1"}, "dryRun": "false"}),
            Bad,
            "`dryRun`",
        ),
        (
            "dry_run typo",
            json!({"environment": "dev", "task": "remove-user", "args": {"userId": "1"}, "dry_run": true}),
            Bad,
            "dry_run",
        ),
        (
            "missing environment",
            json!({"task": "remove-user", "args": {"userId": "1"}}),
            Bad,
            "`environment`",
        ),
        (
            "unknown environment",
            json!({"environment": "staging", "task": "remove-user", "args": {"userId": "1"}}),
            Bad,
            "environment",
        ),
        (
            "environment in capitals",
            json!({"environment": "DEV", "task": "remove-user", "args": {"userId": "1"}}),
            Bad,
            "environment",
        ),
        (
            "input not an object",
            json!("remove-user 1"),
            Bad,
            "JSON object",
        ),
        (
            "wrong environment",
            json!({"environment": "prod", "task": "remove-user", "args": {"userId": "1"}}),
            Wrong,
            "prod",
        ),
        (
            "wrong environment, otherwise valid dry run",
            json!({"environment": "prod", "task": "make-public", "args": {"entityId": "syn1"}, "dryRun": true}),
            Wrong,
            "prod",
        ),
    ]
}

#[tokio::test]
async fn the_bad_input_corpus_is_refused_before_any_request() {
    let server = MockSynapse::start(|_: &Recorded| Reply::empty(200)).await;
    let tokens = Arc::new(ListTokens::new(&["t"]));
    let client = server.client(tokens.clone());
    let cases = corpus();
    assert!(cases.len() >= 20);
    for (what, input, name, field) in cases {
        let err = handle(&input, Environment::Dev, &client, &AuditContext::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: {input} was accepted"));
        assert_eq!(err.error_name(), name, "{what}: {err}");
        assert!(
            err.to_string().contains(field),
            "{what}: the message should name {field}: {err}"
        );
    }
    assert!(
        server.requests().is_empty(),
        "no request may reach the server: {:?}",
        server.requests()
    );
    assert_eq!(
        tokens.calls(),
        0,
        "the token source was asked for the token"
    );

    // The same client, the same counters, with a valid input: the token is asked for and the
    // request arrives, so the checks above would have seen it.
    handle(
        &dev("reenable-user", json!({"userId": "42"})),
        Environment::Dev,
        &client,
        &AuditContext::default(),
    )
    .await
    .unwrap();
    assert_eq!(tokens.calls(), 1);
    assert_eq!(server.requests().len(), 1);
}

/// The CLI's flow in the library: validate the arguments, then run the request.
async fn cli_flow(
    env: &str,
    task: &str,
    args: &[&str],
    client: &SynapseClient<Arc<ListTokens>>,
) -> Result<AuditRecord, AdminError> {
    let request = AdminRequest::from_cli(env, Environment::Dev, task, args, false)?;
    run(&request, client, &AuditContext::default()).await
}

#[tokio::test]
async fn the_cli_form_refuses_the_same_input() {
    use ErrorName::{InvalidInput as Bad, WrongEnvironment as Wrong};
    // (--env, task, arguments, error name, what the message must name)
    let bad: Vec<(&str, &str, Vec<&str>, ErrorName, &str)> = vec![
        (
            "dev",
            "remove-user",
            vec!["123/../../admin"],
            Bad,
            "user id",
        ),
        ("dev", "remove-user", vec!["123?x=1"], Bad, "user id"),
        ("dev", "remove-user", vec!["%2e%2e"], Bad, "user id"),
        ("dev", "remove-user", vec![""], Bad, "user id"),
        ("dev", "remove-user", vec![], Bad, "USER_ID"),
        ("dev", "remove-user", vec!["1", "2"], Bad, "one target"),
        ("dev", "remove-user", vec!["1", "--force"], Bad, "--force"),
        (
            "dev",
            "verify-oauth-client",
            vec!["1", "--status", "yes"],
            Bad,
            "--status",
        ),
        (
            "dev",
            "verify-oauth-client",
            vec!["1", "--status"],
            Bad,
            "--status",
        ),
        (
            "dev",
            "verify-oauth-client",
            vec!["1", "--status=true", "--status=false"],
            Bad,
            "--status",
        ),
        (
            "dev",
            "set-feature",
            vec!["MULTIPART_AUTO_CLEANUP"],
            Bad,
            "--enabled",
        ),
        (
            "dev",
            "set-feature",
            vec!["MULTIPART_AUTO_CLEANUP", "--enabled", "1"],
            Bad,
            "--enabled",
        ),
        ("dev", "make-public", vec!["123"], Bad, "entity id"),
        ("dev", "nope", vec!["1"], Bad, "task"),
        ("qa", "remove-user", vec!["1"], Bad, "environment"),
        ("prod", "remove-user", vec!["1"], Wrong, "prod"),
    ];
    let server = MockSynapse::start(|_: &Recorded| Reply::empty(200)).await;
    let tokens = Arc::new(ListTokens::new(&["t"]));
    let client = server.client(tokens.clone());
    for (env, task, args, name, field) in bad {
        let err = cli_flow(env, task, &args, &client).await.unwrap_err();
        assert_eq!(err.error_name(), name, "{env} {task} {args:?}: {err}");
        assert!(
            err.to_string().contains(field),
            "{env} {task} {args:?}: the message should name {field}: {err}"
        );
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_eq!(
        tokens.calls(),
        0,
        "the token source was asked for the token"
    );

    // A valid argument list through the same flow reaches both.
    let rec = cli_flow("dev", "reenable-user", &["42"], &client)
        .await
        .unwrap();
    assert_eq!(rec.outcome, "done");
    assert_eq!(tokens.calls(), 1);
    assert_eq!(server.requests().len(), 1);

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
