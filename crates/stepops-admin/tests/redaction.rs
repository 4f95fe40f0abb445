//! The token's value never appears in the logs, the audit record or an error, even when the
//! service echoes it back.

mod common;

use common::{Captured, ListTokens, MockSynapse, Recorded, Reply, SECRET};
use serde_json::{Value, json};
use stepops_admin::{AuditContext, Environment, handle};
use stepops_error::TaskFailure;

/// A service that answers the reads, and echoes the Authorization header back in its errors.
fn echoing(r: &Recorded) -> Reply {
    let auth = r.header("authorization").unwrap_or_default().to_owned();
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", p) if p.ends_with("/bundle") => {
            Reply::json(200, json!({"userId": "5", "note": "hello"}))
        }
        ("POST", "/repo/v1/admin/redact/user/5") => Reply::empty(200),
        ("GET", p) if p.contains("/feature/") => Reply::json(
            200,
            json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": true}),
        ),
        ("PUT", "/repo/v1/admin/resetuserstatus/6") => {
            Reply::json(401, json!({"reason": format!("token rejected: {auth}")}))
        }
        _ => Reply::json(400, json!({"reason": format!("bad request with {auth}")})),
    }
}

#[tokio::test]
async fn the_token_never_reaches_logs_output_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockSynapse::start(echoing).await;
    let client = server.client(ListTokens::new(&[SECRET]));
    let ctx = AuditContext {
        started_by: Some("alice".into()),
        execution_id: None,
    };
    let mut outputs = Vec::new();

    // A successful task (reads, write, audit record).
    let ok = handle(
        &json!({"environment": "dev", "task": "remove-user", "args": {"userId": "5"}}),
        Environment::Dev,
        &client,
        &ctx,
    )
    .await
    .unwrap();
    outputs.push(serde_json::to_string(&ok).unwrap());
    outputs.push(format!("{ok:?}"));

    // Failures whose service answers quote the token: 400, and 401 twice (refresh + retry).
    for input in [
        json!({"environment": "dev", "task": "set-feature", "args": {"feature": "MULTIPART_AUTO_CLEANUP", "enabled": false}}),
        json!({"environment": "dev", "task": "reenable-user", "args": {"userId": "6"}}),
        json!({"environment": "prod", "task": "reenable-user", "args": {"userId": "6"}}),
        json!({"environment": "dev", "task": "reenable-user", "args": {"userId": "6/../x"}}),
    ] {
        let err = handle(&input, Environment::Dev, &client, &ctx)
            .await
            .unwrap_err();
        outputs.push(err.to_string());
        outputs.push(format!("{err:?}"));
        outputs.push(TaskFailure::from_error(&err).to_string());
    }

    // The service did receive the token, so the echo really happened.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {SECRET}").as_str()))
    );
    assert!(
        outputs.iter().any(|o| o.contains("***")),
        "the echo was scrubbed, not dropped"
    );
    for o in &outputs {
        assert!(!o.contains(SECRET), "token leaked into output: {o}");
        assert!(
            !o.contains("SECRET-7f3a9c"),
            "part of the token leaked: {o}"
        );
    }

    let logs = captured.text();
    assert!(!logs.is_empty(), "logs were captured");
    assert!(!logs.contains(SECRET), "token leaked into logs:\n{logs}");
    assert!(
        !logs.contains("SECRET-7f3a9c"),
        "part of the token leaked into logs"
    );

    // One audit line per task run (done or failed), each a JSON record.
    let audits: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["target"] == stepops_admin::AUDIT_TARGET && l["fields"]["audit"] == true)
        .map(|l| serde_json::from_str(l["fields"]["record"].as_str().unwrap()).unwrap())
        .collect();
    let outcomes: Vec<&str> = audits
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["done", "failed", "failed"], "{logs}");
    assert_eq!(audits[0]["task"], "remove-user");
    assert_eq!(audits[0]["startedBy"], "alice");
    assert_eq!(audits[2]["error"]["error"], "Stepops.Unauthorized");
    // The two validation refusals are logged too, without an audit record.
    assert_eq!(logs.matches("refused in validation").count(), 2, "{logs}");
}
